//! Real FUSE mount tests: `chkfs mount` is started as a child process on a
//! temporary directory and the mounted snapshots are checked with the
//! usual tools (diff, cp, tar, stat, du, getfattr, ls, find, sha256sum)
//! and with system calls (lstat, pread, lseek SEEK_DATA/SEEK_HOLE).
//!
//! Needs /dev/fuse; without it every test prints SKIPPING and passes,
//! unless CI=true, where it fails. Run as root (or with fusermount3).

#[path = "../tests/common/mod.rs"]
mod common;

mod harness;
mod tree;

mod bigdir;
mod concurrent;
mod damage;
mod encrypted;
mod gc;
mod inodes;
mod json_ready;
mod largedir;
mod lifecycle;
mod live;
mod messages;
mod readonly;
mod roundtrip;
mod s3;
mod save_skip;
mod sparse;
mod stat;
mod trust;
mod views;
