//! Where a repository is: a local directory or `s3://BUCKET/PREFIX`.

use super::backend::Backend;
use super::local::LocalBackend;
use super::StoreError;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Location {
    /// `s3://BUCKET[/PREFIX]`, another `scheme://` (an error: never a local
    /// directory named `sftp:`), or a local path.
    pub fn parse(spec: &OsStr) -> Result<Location, StoreError> {
        let bytes = spec.as_bytes();
        let Some(at) = bytes.windows(3).position(|w| w == b"://") else {
            return Ok(Location::Local(PathBuf::from(spec)));
        };
        let scheme = String::from_utf8_lossy(&bytes[..at]).into_owned();
        let is_scheme = !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+');
        if !is_scheme {
            // restic's "s3:http://host/bucket", say: never a directory
            // named "s3:http:".
            return Err(bad(spec, "not a path nor a URL chkfs knows (s3://BUCKET/PREFIX)"));
        }
        let rest = std::str::from_utf8(&bytes[at + 3..]).map_err(|_| bad(spec, "it is not UTF-8"))?;
        match scheme.as_str() {
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                let valid = (3..=63).contains(&bucket.len())
                    && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
                if !valid {
                    return Err(bad(spec, "the bucket name must be 3 to 63 lowercase letters, digits, '-' or '.'"));
                }
                let prefix = prefix.trim_matches('/');
                if prefix.split('/').any(|p| p == "." || p == "..") || prefix.contains("//") {
                    return Err(bad(spec, "the prefix must not contain empty, '.' or '..' parts"));
                }
                Ok(Location::S3 { bucket: bucket.into(), prefix: prefix.into() })
            }
            other => Err(bad(spec, &format!("chkfs knows local paths and s3:// URLs, not {other}://"))),
        }
    }

    /// The storage backend for this location (no request is sent).
    pub fn backend(&self) -> Result<Arc<dyn Backend>, StoreError> {
        match self {
            Location::Local(p) => {
                let abs = std::path::absolute(p).map_err(|e| StoreError::io(crate::text::escape_path(p), e))?;
                Ok(Arc::new(LocalBackend::new(&abs)))
            }
            #[cfg(feature = "s3")]
            Location::S3 { bucket, prefix } => Ok(Arc::new(super::s3::S3Backend::new(bucket, prefix)?)),
            #[cfg(not(feature = "s3"))]
            Location::S3 { .. } => {
                Err(StoreError::Unsupported("this chkfs was built without S3 support (cargo feature `s3`)".into()))
            }
        }
    }

    pub fn is_remote(&self) -> bool {
        !matches!(self, Location::Local(_))
    }
}

fn bad(spec: &OsStr, why: &str) -> StoreError {
    StoreError::Unsupported(format!("{}: {why}", crate::text::escape_bytes(spec.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths() {
        let p = |s: &str| Location::parse(OsStr::new(s));
        assert_eq!(
            p("s3://my-bucket/backups/x").unwrap(),
            Location::S3 { bucket: "my-bucket".into(), prefix: "backups/x".into() }
        );
        assert_eq!(p("s3://my-bucket").unwrap(), Location::S3 { bucket: "my-bucket".into(), prefix: "".into() });
        assert_eq!(p("/tmp/repo").unwrap(), Location::Local("/tmp/repo".into()));
        assert_eq!(p("dir/with:colon").unwrap(), Location::Local("dir/with:colon".into()));
        assert!(p("sftp://host/x").unwrap_err().to_string().contains("sftp://"));
        assert!(p("s3://B/x").is_err(), "upper case bucket");
        assert!(p("s3://ab/x").is_err(), "too short");
        assert!(p("s3://bucket/../x").is_err());
        assert!(p("S3://bucket/x").is_err(), "schemes are lower case");
        assert!(p("s3:http://127.0.0.1:8333/bucket").is_err(), "restic's spelling is no local directory");
    }
}
