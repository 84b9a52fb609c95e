//! The ceiling an S3 server sets, measured with a plain client (no
//! chunking, hashing or compression): every file of a directory PUT with
//! 8 requests in flight, then every object under the prefix GET back the
//! same way. benches/s3_bench.sh compares chkfs with it in the same run.
//!
//!   cargo bench --bench s3_ceiling -- put DIR BUCKET/PREFIX
//!   cargo bench --bench s3_ceiling -- get BUCKET/PREFIX
//!
//! Endpoint and credentials come from the AWS_* environment variables.

use futures::{stream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::sync::Arc;
use std::time::Instant;

const IN_FLIGHT: usize = 8;

fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("reading the directory").flatten() {
        let t = e.file_type().expect("file type");
        if t.is_dir() {
            files(&e.path(), out);
        } else if t.is_file() {
            out.push(e.path());
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let (mode, dir, location) = match args.as_slice() {
        [m, d, l] if m == "put" => (m.clone(), Some(d.clone()), l.clone()),
        [m, l] if m == "get" => (m.clone(), None, l.clone()),
        _ => {
            eprintln!("usage: s3_ceiling put DIR BUCKET/PREFIX | get BUCKET/PREFIX");
            return;
        }
    };
    let (bucket, prefix) = location.split_once('/').unwrap_or((&location, ""));
    let allow_http = std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true");
    let store: Arc<dyn ObjectStore> = Arc::new(
        AmazonS3Builder::from_env().with_bucket_name(bucket).with_allow_http(allow_http).build().expect("S3 client"),
    );
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let started = Instant::now();
    let bytes: u64 = rt.block_on(async {
        if mode == "put" {
            let mut paths = Vec::new();
            files(std::path::Path::new(dir.as_deref().expect("a directory")), &mut paths);
            stream::iter(paths.into_iter().enumerate())
                .map(|(i, p)| {
                    let store = store.clone();
                    let key = ObjPath::from(format!("{prefix}/{i:08}"));
                    async move {
                        let data = tokio::task::spawn_blocking(move || std::fs::read(p)).await.unwrap().unwrap();
                        let n = data.len() as u64;
                        store.put(&key, PutPayload::from(data)).await.expect("PUT");
                        n
                    }
                })
                .buffer_unordered(IN_FLIGHT)
                .fold(0, |a, n| async move { a + n })
                .await
        } else {
            let metas: Vec<_> = store.list(Some(&ObjPath::from(prefix))).try_collect().await.expect("LIST");
            stream::iter(metas)
                .map(|m| {
                    let store = store.clone();
                    async move { store.get(&m.location).await.expect("GET").bytes().await.expect("body").len() as u64 }
                })
                .buffer_unordered(IN_FLIGHT)
                .fold(0, |a, n| async move { a + n })
                .await
        }
    });
    let secs = started.elapsed().as_secs_f64();
    println!("{mode} {bytes} bytes in {secs:.2} s: {:.1} MB/s", bytes as f64 / secs / 1e6);
}
