//! Readers of client data can panic on malformed input (a Parquet footer whose length
//! points before the file's start overflowed a subtraction in the parquet crate). Such a
//! panic is the request's error, answered as one, never a connection dropped unanswered.

use futures::FutureExt;
use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

/// Runs `future`, turning a panic inside it into `Err(panic message)`. The future's state
/// is dropped with the panic, so nothing half-updated is used again.
pub async fn catching<F: Future>(future: F) -> Result<F::Output, String> {
    AssertUnwindSafe(future).catch_unwind().await.map_err(|panic| panic_message(panic.as_ref()))
}

pub fn panic_message(panic: &(dyn Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(text), _) => (*text).to_owned(),
        (_, Some(text)) => text.clone(),
        _ => "the reader failed".to_owned(),
    }
}
