//! A repository in an S3-compatible object store (`s3://BUCKET/PREFIX`),
//! through the `object_store` crate: it signs requests, retries 5xx,
//! timeouts and dropped connections with backoff, and sends
//! `If-None-Match: *` for create-if-absent. Credentials, region and
//! endpoint come from the standard AWS environment variables.
//!
//! Every write is one PUT, atomic and durable when it returns, so `sync`
//! has nothing to do.

use super::backend::{Backend, Listed};
use super::StoreError;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig};
use std::time::Duration;

pub struct S3Backend {
    store: AmazonS3,
    bucket: String,
    /// Without leading or trailing '/'; empty for the bucket's top.
    prefix: String,
    runtime: tokio::runtime::Runtime,
}

/// How long one request may take, body included, before it is retried:
/// a 32 MiB pack sent beside five others over a 10 Mbit/s uplink fits.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

impl S3Backend {
    /// Connects to `bucket` (no request is sent yet).
    pub fn new(bucket: &str, prefix: &str) -> Result<S3Backend, StoreError> {
        let location = format!("s3://{bucket}/{prefix}");
        // These options replace the ones from_env read: AWS_ALLOW_HTTP is
        // carried over by hand.
        let allow_http = std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        let client = ClientOptions::new()
            .with_timeout(REQUEST_TIMEOUT)
            .with_connect_timeout(Duration::from_secs(10))
            .with_allow_http(allow_http);
        let retry = RetryConfig { max_retries: 10, retry_timeout: Duration::from_secs(60), ..Default::default() };
        // Bodies are not hashed into the signature unless asked for
        // (AWS_UNSIGNED_PAYLOAD=false): every object is checked on read
        // against its name or checksum, TLS protects the bytes on the way,
        // and hashing each pack twice cost a third of a save's CPU here.
        let unsigned = std::env::var("AWS_UNSIGNED_PAYLOAD").map_or(true, |v| !v.eq_ignore_ascii_case("false"));
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_client_options(client)
            .with_retry(retry)
            .with_unsigned_payload(unsigned)
            .build()
            .map_err(|e| remote(&location, e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("chkfs-s3")
            .enable_all()
            .build()
            .map_err(|e| StoreError::io("the S3 client's runtime", e))?;
        Ok(S3Backend { store, bucket: bucket.into(), prefix: prefix.trim_matches('/').into(), runtime })
    }

    fn path(&self, key: &str) -> ObjPath {
        if self.prefix.is_empty() {
            ObjPath::from(key)
        } else {
            ObjPath::from(format!("{}/{key}", self.prefix))
        }
    }

    fn key_of<'a>(&self, path: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            return Some(path);
        }
        path.strip_prefix(self.prefix.as_str())?.strip_prefix('/')
    }

    fn what(&self, key: &str) -> String {
        format!("{}/{key}", self.location())
    }
}

/// Attempts of one operation at this layer, on top of object_store's own
/// retries: it does not resend a conditional PUT whose connection broke
/// (it cannot know whether the first one landed), and a body cut short
/// mid-read is not retried there either.
const ATTEMPTS: u32 = 4;

/// True for errors worth another attempt: anything but a refusal by the
/// server that says the request itself is wrong.
fn is_transient(e: &object_store::Error) -> bool {
    use object_store::Error::*;
    !matches!(
        e,
        NotFound { .. }
            | AlreadyExists { .. }
            | Precondition { .. }
            | PermissionDenied { .. }
            | Unauthenticated { .. }
            | InvalidPath { .. }
            | NotSupported { .. }
            | NotImplemented { .. }
            | UnknownConfigurationKey { .. }
    )
}

/// Runs `op` until it succeeds, fails for good, or runs out of attempts,
/// waiting longer after each transient failure.
fn retrying<T>(mut op: impl FnMut(u32) -> Result<T, object_store::Error>) -> Result<T, object_store::Error> {
    let mut attempt = 0;
    loop {
        match op(attempt) {
            Err(e) if is_transient(&e) && attempt + 1 < ATTEMPTS => {
                std::thread::sleep(Duration::from_millis(200 << attempt));
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// An object store error as a store error: "not found" is `Missing`, the
/// rest an I/O error naming the object.
fn remote(what: &str, e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::NotFound { .. } => StoreError::Missing { what: what.to_string() },
        other => StoreError::io(what, std::io::Error::other(other.to_string())),
    }
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    fn create(&self) -> Result<(), StoreError> {
        let prefix = if self.prefix.is_empty() { None } else { Some(ObjPath::from(self.prefix.as_str())) };
        let first = self.runtime.block_on(async { self.store.list(prefix.as_ref()).try_next().await });
        match first.map_err(|e| remote(&self.location(), e))? {
            Some(_) => Err(StoreError::AlreadyExists(self.location())),
            None => Ok(()),
        }
    }

    fn list(&self, dir: &str) -> Result<Vec<Listed>, StoreError> {
        let prefix = self.path(dir);
        let metas: Vec<object_store::ObjectMeta> =
            retrying(|_| self.runtime.block_on(self.store.list(Some(&prefix)).try_collect()))
                .map_err(|e| remote(&self.what(dir), e))?;
        let mut out: Vec<Listed> = metas
            .into_iter()
            .filter_map(|m| {
                let key = self.key_of(m.location.as_ref())?.to_string();
                Some(Listed { key, size: m.size, modified: m.last_modified.into() })
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn read(&self, key: &str, max_len: u64) -> Result<Vec<u8>, StoreError> {
        let what = self.what(key);
        let path = self.path(key);
        let got = retrying(|_| {
            self.runtime.block_on(async {
                let got = self.store.get(&path).await?;
                // The size is known from the response headers, before the body.
                if got.meta.size > max_len {
                    return Ok(Err(too_large(&what, got.meta.size, max_len)));
                }
                Ok(Ok(got.bytes().await?))
            })
        });
        let bytes = got.map_err(|e| remote(&what, e))??;
        if bytes.len() as u64 > max_len {
            return Err(too_large(&what, bytes.len() as u64, max_len));
        }
        // The body was gathered into one buffer: taken over, not copied.
        Ok(Vec::from(bytes))
    }

    fn read_range(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>, StoreError> {
        let what = self.what(key);
        let end = offset.checked_add(len as u64).ok_or_else(|| beyond_end(&what, offset, len))?;
        if len == 0 {
            return Ok(Vec::new());
        }
        let path = self.path(key);
        let got = retrying(|_| self.runtime.block_on(self.store.get_range(&path, offset..end)));
        match got {
            Ok(bytes) if bytes.len() == len => Ok(Vec::from(bytes)),
            Ok(_) => Err(beyond_end(&what, offset, len)),
            Err(object_store::Error::NotFound { .. }) => Err(StoreError::Missing { what }),
            // A range past the end is refused by the server (416), which
            // the error does not say in a form to rely on: the object's
            // size does. Past its end is damage; otherwise the request
            // failed.
            Err(e) => match self.runtime.block_on(self.store.head(&path)) {
                Ok(meta) if end > meta.size => Err(beyond_end(&what, offset, len)),
                _ => Err(remote(&what, e)),
            },
        }
    }

    /// A conditional PUT (`If-None-Match: *`). When an attempt failed on
    /// the way (the connection broke) and a later one finds the name
    /// taken, the first may have landed: the object is read back, and it
    /// is ours when its bytes are ours (every name written here is the
    /// hash of its bytes, or random), so that no caller ever writes a
    /// second copy of something it already wrote.
    fn write_if_absent(&self, key: &str, data: &[u8]) -> Result<bool, StoreError> {
        let path = self.path(key);
        let body = bytes::Bytes::copy_from_slice(data);
        let put = retrying(|_| {
            let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
            self.runtime.block_on(self.store.put_opts(&path, PutPayload::from(body.clone()), opts))
        });
        match put {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                match self.read(key, data.len() as u64) {
                    Ok(stored) => Ok(stored == data),
                    // Larger than ours: not ours.
                    Err(e) if e.is_damage() => Ok(false),
                    // A conflict answered for a write that did not land
                    // (409 while another PUT of the name was in flight):
                    // the name is free again, or taken by now.
                    Err(e) if e.is_missing() => self.write_if_absent(key, data),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(remote(&self.what(key), e)),
        }
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        match retrying(|_| self.runtime.block_on(self.store.delete(&self.path(key)))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(remote(&self.what(key), e)),
        }
    }

    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn parallel_writes(&self) -> usize {
        6
    }

    fn lists_cheaply(&self) -> bool {
        false
    }
}

fn too_large(what: &str, len: u64, max: u64) -> StoreError {
    let detail = format!("{len} bytes, more than such an object can hold ({max})");
    StoreError::format(what, crate::format::FormatError::Invalid { what: "object", detail })
}

fn beyond_end(what: &str, offset: u64, len: usize) -> StoreError {
    let detail = format!("range {offset}+{len} lies beyond its end");
    StoreError::format(what, crate::format::FormatError::Invalid { what: "object", detail })
}
