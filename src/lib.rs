//! chkfs: content-addressed checkpoints of a directory tree.
//!
//! Layers, from the bottom: `format` (pure bytes), `chunking`, `store`
//! (repository, packs, index), then the operations `save`, `restore`,
//! `check`, and the command line in `cli`.

pub mod browse;
pub mod check;
pub mod chunking;
pub mod cli;
pub mod copy;
pub mod diff;
pub mod dirfd;
pub mod forget;
pub mod format;
pub mod fs;
pub mod fuse;
pub mod fuzzing;
pub mod gc;
pub mod mounts;
pub mod progress;
pub mod restore;
pub mod save;
pub mod stats;
pub mod store;
pub mod tag;
pub mod text;
pub mod walk;
