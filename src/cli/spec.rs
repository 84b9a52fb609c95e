//! `SNAPSHOT[:PATH]` arguments.

use super::exit::UsageError;
use anyhow::Result;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// The snapshot (an id prefix or `latest`) and the path inside it (raw
/// bytes, empty for its root).
pub fn snapshot_and_path(arg: &OsStr) -> Result<(&str, &[u8])> {
    let arg = arg.as_bytes();
    let (spec, path) = match arg.iter().position(|&b| b == b':') {
        Some(i) => (&arg[..i], &arg[i + 1..]),
        None => (arg, &b""[..]),
    };
    let spec = std::str::from_utf8(spec).map_err(|_| UsageError(format!("{:?} is not a snapshot id", arg)))?;
    Ok((spec, path))
}
