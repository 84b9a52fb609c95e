//! A fault hook for crash tests: with CHKFS_FAULT_ABORT_AFTER_WRITES=N in
//! the environment, the process aborts at its (N+1)-th storage write or
//! delete: a write is cut off halfway through its temporary file, a
//! delete does not happen, exactly as a crash or kill -9 would leave them.
//! Without the variable it costs one atomic increment per operation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

pub const ENV: &str = "CHKFS_FAULT_ABORT_AFTER_WRITES";

static LIMIT: OnceLock<Option<u64>> = OnceLock::new();
static WRITES: AtomicU64 = AtomicU64::new(0);

/// Called once a write has put some bytes in its temporary file, or
/// before a delete; `what` says which, in the message.
pub fn before_commit(what: &str) {
    let limit = *LIMIT.get_or_init(|| std::env::var(ENV).ok().and_then(|v| v.parse().ok()));
    if let Some(limit) = limit {
        if WRITES.fetch_add(1, Ordering::SeqCst) >= limit {
            eprintln!("chkfs: fault hook: aborting after {limit} storage writes, at a {what}");
            std::process::abort();
        }
    }
}
