//! The S3 test server (SeaweedFS on loopback, started by ./test.sh) and
//! worlds whose repository lives there.

use super::{poll_until, run_with_timeout, World};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The S3 endpoint, or None (after saying so) when there is none.
pub fn endpoint() -> Option<String> {
    match std::env::var("CHKFS_TEST_S3") {
        Ok(e) if !e.is_empty() => Some(e),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CHKFS_TEST_S3 is not set under CI=true: run the tests through ./test.sh, which starts SeaweedFS")
        }
        _ => {
            eprintln!("\n*** SKIPPED: no S3 server (CHKFS_TEST_S3 unset); run ./test.sh to start SeaweedFS ***\n");
            None
        }
    }
}

/// The bucket the tests share (each world works under a prefix of its
/// own), created when missing (CreateBucket; the test server takes any
/// credentials). Returns `BUCKET/PREFIX` for a new, empty repository.
pub fn new_location(endpoint: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let bucket = std::env::var("CHKFS_TEST_S3_BUCKET").unwrap_or_else(|_| "chkfs-tests".into());
    let url = format!("{endpoint}/{bucket}");
    poll_until(Duration::from_secs(60), "the S3 server to have the test bucket", || {
        let out = run_with_timeout(
            Command::new("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "10", "-X", "PUT", &url]),
            Duration::from_secs(20),
        );
        // 409: it exists already.
        matches!(out.stdout_str().trim(), "200" | "409")
    });
    format!("{bucket}/{}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst), random_suffix())
}

fn random_suffix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{nanos:08x}")
}

/// The environment that points chkfs at `endpoint`.
pub fn s3_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "chkfs-test"),
        ("AWS_SECRET_ACCESS_KEY", "chkfs-test-secret"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A world whose repository is `s3://<new bucket>/repo`, initialised.
pub fn s3_world(endpoint: &str) -> World {
    let mut w = World::new();
    w.repo = PathBuf::from(format!("s3://{}", new_location(endpoint)));
    w.env = s3_env(endpoint);
    w.chkfs(["init"]).ok();
    w
}
