//! What tells this machine's processes apart: the kernel's boot id, the
//! pid namespace, and whether a pid still names a process. Writer markers
//! and local temporary files carry them, so that a writer on this machine
//! whose process is gone is known dead at once.

use std::os::unix::fs::MetadataExt;

/// The kernel's boot id (empty when it cannot be read).
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// The inode of this process's pid namespace (0 when unknown): containers
/// on one kernel share the boot id, not their pids.
pub fn pid_namespace() -> u64 {
    std::fs::metadata("/proc/self/ns/pid").map(|m| m.ino()).unwrap_or(0)
}

/// True when no process has this pid (in this namespace). A reused pid
/// counts as alive, which only delays whoever asks.
pub fn process_is_gone(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid, 0) } != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}
