//! A flaky network between chkfs and the store: connections dropped,
//! delayed and cut mid-answer. Retries carry every command through; no
//! command hangs, and no wrong byte is stored or restored.

use super::proxy::{Faults, Proxy};
use super::*;

#[test]
fn save_restore_check_gc_through_a_flaky_network() {
    let Some(endpoint) = endpoint() else { return };
    let mut w = s3_world(&endpoint);
    let faults = Faults { drop: 60, slow: 60, delay: Duration::from_millis(1500), cut: 40 };
    let proxy = Proxy::start(&endpoint, faults);
    w.env = s3_env(&proxy.endpoint);
    let src = w.path("src");
    write_files(&src.join("big"), "b", 6, 3 << 20, 5);
    write_files(&src.join("small"), "s", 200, 2_000, 6);
    let first = id_of(&w.save(&src, &[]));
    write_files(&src.join("more"), "m", 3, 1 << 20, 7);
    w.save(&src, &[]);
    assert_restores(&w, "latest", &src, "flaky");
    check_ok(&w, "flaky");
    w.chkfs(["forget", &first]).ok();
    gc(&w, &[]);
    check_ok(&w, "flaky after gc");
    assert!(proxy.requests() > 50, "the proxy saw {} requests", proxy.requests());
    // The same repository read without the proxy: nothing wrong was stored.
    w.env = s3_env(&endpoint);
    fs::remove_dir_all(w.home.join(".cache")).unwrap();
    check_ok(&w, "direct");
    assert_restores(&w, "latest", &src, "direct");
}
