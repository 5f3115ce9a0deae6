//! Prints, as hex, the bytes a fuzz target hands to the decoder for a saved input
//! (a crash artifact or a corpus file), then what the decoder returns for them.
//!
//!     cd fuzz && cargo run --example show_input -- sidecar_decode artifacts/sidecar_decode/crash-...
//!
//! A plain (non-fuzz) build; a panic in the decoder shows up as a panic here.

use bytes::Bytes;
use storage_core::{record, sidecar};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, target, path] = &args[..] else {
        eprintln!("usage: show_input <record_decode|sidecar_decode|raw-record|raw-sidecar> <file>");
        std::process::exit(2);
    };
    let data = std::fs::read(path).expect("read input");
    println!("fuzz input ({} bytes): {}", data.len(), hex(&data));
    match target.as_str() {
        "record_decode" | "raw-record" => {
            let bytes = if target == "raw-record" { Some(data) } else { quarry_fuzz::record_bytes(&data) };
            let Some(bytes) = bytes else { return println!("input skipped by the target (too short)") };
            println!("record ({} bytes): {}", bytes.len(), hex(&bytes));
            println!("decode_prefix: {:?}", record::decode_prefix(&bytes));
            println!("decode: {:?}", record::decode(Bytes::from(bytes)).map(|r| r.entry));
        }
        "sidecar_decode" | "raw-sidecar" => {
            let bytes = if target == "raw-sidecar" { Some(data) } else { quarry_fuzz::sidecar_bytes(&data) };
            let Some(bytes) = bytes else { return println!("input skipped by the target (empty)") };
            println!("sidecar ({} bytes): {}", bytes.len(), hex(&bytes));
            let entries = sidecar::decode(quarry_fuzz::SIDECAR_SEGMENT_ID, &bytes);
            println!("decode: {entries:?}");
            for e in entries.iter().flatten() {
                println!("entry() of lsn {}: {:?}", e.lsn, e.entry());
            }
        }
        other => {
            eprintln!("unknown target {other}");
            std::process::exit(2);
        }
    }
}
