//! End-to-end tests for Quarry.
//!
//! Every test spawns the real `quarry` binary (built by cargo for this test
//! target, see `CARGO_BIN_EXE_quarry`) on an ephemeral port with its own temporary
//! data directory, and talks to it with the official AWS SDK for Rust (plus a raw
//! hyper client where exact HTTP behaviour matters, e.g. presigned URLs).
//!
//! Run with `cargo test -p quarry --test e2e` (optionally followed by a filter such
//! as `-- listing`). A failing test prints the tail of the server's stderr; set
//! `QUARRY_E2E_KEEP_TMP=1` to also keep its temp dir (data dir, logs) for inspection.

mod harness;

mod abuse_engine;
mod access;
mod acl;
mod attributes;
mod auth;
mod buckets;
mod catalog;
mod conditional;
mod connections;
mod core_ring;
mod cors;
mod crash_cycles;
mod disk_full;
mod encryption;
mod erasure;
mod forwarded;
mod integrity;
mod lifecycle;
mod limits;
mod listing;
mod logging;
mod memory;
mod multipart;
mod object_lock;
mod objects;
mod policy;
mod post_form;
mod presigned;
mod restart;
mod select;
mod signatures;
mod sql;
mod strict;
mod tagging;
mod tls;
mod users;
mod versioning;
mod vhost;
