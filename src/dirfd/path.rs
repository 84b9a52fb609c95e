//! Opening a directory the user named, when other users may write
//! somewhere along its path: root restoring into a user's home must not be
//! sent elsewhere by a symlink that user planted, at the end of the path or
//! anywhere before it.
//!
//! The path is resolved one name at a time, each directory opened from the
//! previous one without following a symlink. A symlink is followed only
//! where nobody but root and this user could have put it: the symlink and
//! the directory holding it belong to root or this user, and that directory
//! is writable by nobody else. Everything below the directory returned is
//! then reached through it.

use super::{euid, Dir, Stat};
use std::collections::VecDeque;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

/// The most symlinks one resolution follows (as Linux's MAXSYMLINKS).
const MAX_HOPS: usize = 40;

fn trusted_owner(uid: u32) -> bool {
    uid == 0 || uid == euid()
}

/// True when the symlink `link`, held by `dir`, was put there by root or
/// this user and nobody else could have replaced it.
fn may_follow(dir: &Dir, link: &Stat) -> io::Result<bool> {
    let d = dir.stat()?;
    Ok(trusted_owner(d.uid) && d.mode & 0o022 == 0 && trusted_owner(link.uid))
}

fn components(path: &Path) -> (bool, VecDeque<Vec<u8>>) {
    let mut parts = VecDeque::new();
    let mut absolute = false;
    for c in path.components() {
        match c {
            Component::RootDir => absolute = true,
            Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => parts.push_back(b"..".to_vec()),
            Component::Normal(n) => parts.push_back(n.as_bytes().to_vec()),
        }
    }
    (absolute, parts)
}

/// What may be created where a directory of the path is missing: `None`
/// creates nothing; `Some(check)` creates after `check` approved the
/// directory it will be created in.
pub type CreateCheck<'a> = Option<&'a dyn Fn(&Dir) -> io::Result<()>>;

/// Opens the directory at `path` (missing directories are created as
/// `create` allows; the umask applies). Returns it and whether its last
/// name was created here.
pub fn open_trusted(path: &Path, create: CreateCheck) -> io::Result<(Dir, bool)> {
    let (absolute, mut parts) = components(path);
    let mut cur = Dir::open_path(Path::new(if absolute { "/" } else { "." }))?;
    let mut hops = 0;
    let mut created_last = false;
    while let Some(name) = parts.pop_front() {
        created_last = false;
        if name == b".." {
            cur = cur.parent()?;
            continue;
        }
        let st = match cur.stat_at(&name) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::NotFound && create.is_some() => {
                if let Some(check) = create {
                    check(&cur)?;
                }
                cur.mkdir(&name, 0o777)?;
                let d = cur.child(&name)?;
                if d.stat()?.uid != euid() {
                    return Err(io::Error::other("a directory it created was replaced by another one"));
                }
                cur = d;
                created_last = parts.is_empty();
                continue;
            }
            Err(e) => return Err(e),
        };
        if st.file_type() == libc::S_IFLNK {
            if !may_follow(&cur, &st)? {
                let shown = crate::text::escape_bytes(&name);
                return Err(io::Error::other(format!(
                    "its path goes through the symlink {shown}, in a directory other users can write: \
                     give the directory it points to"
                )));
            }
            hops += 1;
            if hops > MAX_HOPS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = cur.readlink(&name)?;
            let (abs, mut more) = components(Path::new(std::ffi::OsStr::from_bytes(&target)));
            if abs {
                cur = Dir::open_path(Path::new("/"))?;
            }
            more.extend(parts);
            parts = more;
            continue;
        }
        if !st.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        let d = cur.child(&name)?;
        if d.stat()?.id() != st.id() {
            return Err(super::cursor::replaced());
        }
        cur = d;
    }
    Ok((cur, created_last))
}

/// True when `dir` is one of `ancestors` or lies below one (climbing `..`).
pub fn is_within(dir: &Dir, ancestors: &[super::FileId]) -> io::Result<bool> {
    let mut cur = dir.try_clone()?;
    loop {
        let id = cur.stat()?.id();
        if ancestors.contains(&id) {
            return Ok(true);
        }
        let up = cur.parent()?;
        if up.stat()?.id() == id {
            return Ok(false);
        }
        cur = up;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_are_followed_only_where_nobody_else_could_plant_them() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path();
        std::fs::create_dir_all(base.join("real/inner")).unwrap();
        symlink("real", base.join("link")).unwrap();
        // This user's own directory, writable by nobody else: followed.
        std::fs::set_permissions(base, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let (d, created) = open_trusted(&base.join("link/inner"), None).unwrap();
        assert!(!created);
        assert_eq!(d.stat().unwrap().id(), Dir::open_path(&base.join("real/inner")).unwrap().stat().unwrap().id());
        // Writable by others: a symlink there could be anyone's.
        std::fs::set_permissions(base, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let e = open_trusted(&base.join("link/inner"), None).err().unwrap();
        assert!(e.to_string().contains("other users can write"), "{e}");
        // Created when missing, and said so.
        let (_, created) = open_trusted(&base.join("real/new/newer"), Some(&|_| Ok(()))).unwrap();
        assert!(created);
        assert!(base.join("real/new/newer").is_dir());
        let repo = Dir::open_path(&base.join("real")).unwrap().stat().unwrap().id();
        assert!(is_within(&open_trusted(&base.join("real/new"), None).unwrap().0, &[repo]).unwrap());
        assert!(!is_within(&Dir::open_path(base).unwrap(), &[repo]).unwrap());
    }
}
