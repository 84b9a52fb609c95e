//! man/chkfs.1 is generated from the clap definitions; this keeps the
//! committed page identical to what the code would generate.
//! Regenerate with `CHKFS_UPDATE_MAN=1 cargo test --test man_page`.

#[test]
fn man_page_is_in_sync_with_the_command_line() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man/chkfs.1");
    let generated = chkfs::cli::man::render();
    if std::env::var_os("CHKFS_UPDATE_MAN").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(committed == generated, "man/chkfs.1 is out of date: run CHKFS_UPDATE_MAN=1 cargo test --test man_page");
    for needle in [
        "EXIT STATUS",
        "save \\-\\-json",
        "\\-\\-read\\-data",
        "CHKFS_REPO",
        "s3://",
        "AWS_ENDPOINT_URL",
        "\\-\\-grace",
        "\\-\\-full\\-path",
        "\\fBlatest\\fR is resolved per source",
    ] {
        assert!(generated.contains(needle), "man page lacks {needle}");
    }
}
