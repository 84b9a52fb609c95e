//! How chkfs's costs grow with the repository: 1 M, 10 M and 100 M chunks
//! and 10,000 snapshots, without terabytes of data.
//!
//!     cargo build --release && cargo bench --bench scale -- [SIZES] [--snapshots N] [--work DIR]
//!
//! SIZES are chunk counts (default 1000000,10000000). WORK (default
//! /var/tmp/chkfs-scale) holds the repositories, `results.json` and
//! `scale.png`. Run as root on an otherwise idle machine.
//!
//! How a repository is built: the bulk is N unique 16-byte chunks written
//! through chkfs's own writer (packs, index files and index tables exactly
//! as a save writes them), listed by trees of files of 1,000 chunks, 100
//! files to a directory, under one "bulk" snapshot, so that every chunk
//! is live and gc and check walk all of them. A further 1% of chunks sits
//! in packs of their own under an "extra" snapshot, which the benchmark
//! forgets so that gc has packs to delete and every index file to
//! rewrite. Then a real source of 2,000 files of 16 KiB is saved with the
//! chkfs binary, and its record is copied to make 10,000 snapshots.
//!
//! Why the figures hold for real data: everything measured here depends
//! on the number of chunks and snapshots (index entries, tree entries,
//! records), not on chunk sizes. A real 16 KiB chunk costs the same index
//! entry, tree extent and lookup as a 16-byte one; only reading contents
//! would cost more, and the measured operations read none beyond the
//! 1%-change save's own files.

mod common;

use chkfs::format::pack::BlobKind;
use chkfs::format::records::{Snapshot, SnapshotStats, Timestamp};
use chkfs::format::tree::{Entry, Extent, Node, Tree};
use chkfs::format::BlobId;
use chkfs::store::{BlobWriter, BlockBuilder, Index, Repository};
use common::Rng;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHUNKS_PER_FILE: usize = 1000;
const FILES_PER_DIR: usize = 100;
const CHUNKS_PER_WRITER: u64 = 1 << 20;
const SOURCE_FILES: usize = 2000;
const SOURCE_FILE_LEN: usize = 16 << 10;

#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
struct Figures {
    chunks: u64,
    snapshots: usize,
    build_s: f64,
    index_files_bytes: u64,
    index_table_bytes: u64,
    mount_ready_ms: f64,
    mount_rss_anon_kib: u64,
    save_s: f64,
    save_max_rss_kib: u64,
    small_save_s: f64,
    small_save_max_rss_kib: u64,
    #[serde(default)]
    save_10k_s: f64,
    #[serde(default)]
    save_10k_max_rss_kib: u64,
    list_s: f64,
    forget_s: f64,
    gc_s: f64,
    gc_max_rss_kib: u64,
    check_s: f64,
    check_max_rss_kib: u64,
    lookup_p50_ns: u64,
    lookup_p99_ns: u64,
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut sizes = vec![1_000_000u64, 10_000_000];
    let mut snapshots = 10_000usize;
    let mut work = PathBuf::from("/var/tmp/chkfs-scale");
    while let Some(a) = args.next() {
        match a.as_str() {
            "--snapshots" => snapshots = args.next().and_then(|n| n.parse().ok()).expect("--snapshots N"),
            "--work" => work = args.next().map(PathBuf::from).expect("--work DIR"),
            "--plot" => sizes.clear(),
            list => sizes = list.split(',').map(|n| n.parse().expect("chunk counts")).collect(),
        }
    }
    let chkfs = std::env::var_os("CHKFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/chkfs"));
    assert!(chkfs.exists(), "build the binary first: cargo build --release ({})", chkfs.display());
    std::fs::create_dir_all(&work).unwrap();
    let results_path = work.join("results.json");
    let mut results: Vec<Figures> =
        std::fs::read(&results_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    for &n in &sizes {
        let f = measure(&chkfs, &work, n, snapshots);
        eprintln!("{}", serde_json::to_string_pretty(&f).unwrap());
        results.retain(|r| r.chunks != n);
        results.push(f);
        results.sort_by_key(|r| r.chunks);
        std::fs::write(&results_path, serde_json::to_vec_pretty(&results).unwrap()).unwrap();
    }
    print_table(&results);
    plot(&results, &work.join("scale.png"));
}

fn measure(chkfs: &Path, work: &Path, chunks: u64, snapshots: usize) -> Figures {
    let dir = work.join(format!("n{chunks}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cache = dir.join("cache");
    let env = |c: &mut Command| {
        c.env("XDG_CACHE_HOME", &cache).env("CHKFS_PASSWORD", "").env_remove("CHKFS_REPO");
    };
    let repo = dir.join("repo");
    let small = dir.join("small");
    let src = dir.join("src");
    let mut f = Figures { chunks, snapshots, ..Default::default() };
    // SAFETY: single-threaded here; the library reads it when it opens
    // the cache.
    unsafe { std::env::set_var("XDG_CACHE_HOME", &cache) };

    let started = Instant::now();
    for r in [&repo, &small] {
        run(chkfs, env, &["init", r.to_str().unwrap()]);
    }
    let extra = build_bulk(&repo, chunks);
    make_source(&src, 1);
    save(chkfs, env, &repo, &src);
    save(chkfs, env, &small, &src);
    // The same 1% change saved into both, before the 10,000 records: what
    // the number of chunks costs a save.
    make_source(&src, 2);
    let (base, t, rss) = save(chkfs, env, &repo, &src);
    (f.save_s, f.save_max_rss_kib) = (t, rss);
    let (_, t, rss) = save(chkfs, env, &small, &src);
    (f.small_save_s, f.small_save_max_rss_kib) = (t, rss);
    copy_records(&repo, &base, snapshots.saturating_sub(4));
    // One load: every index table made and merged, as any first command
    // after the bulk writes would.
    let _ = Repository::open_local(&repo).unwrap().load_index().unwrap();
    f.build_s = started.elapsed().as_secs_f64();
    f.index_files_bytes = dir_bytes(&repo.join("index"));
    f.index_table_bytes = dir_bytes(&cache);
    eprintln!("n={chunks}: built in {:.1} s", f.build_s);

    (f.mount_ready_ms, f.mount_rss_anon_kib) = mount_figures(chkfs, env, &repo, &dir.join("mnt"), &base);
    (f.lookup_p50_ns, f.lookup_p99_ns) = lookups(&repo);

    // And once more with 10,000 snapshots: what their records cost.
    make_source(&src, 3);
    let (_, t, rss) = save(chkfs, env, &repo, &src);
    (f.save_10k_s, f.save_10k_max_rss_kib) = (t, rss);

    let r = |args: &[&str]| {
        let mut all = vec!["--repo", repo.to_str().unwrap()];
        all.extend_from_slice(args);
        run(chkfs, env, &all)
    };
    f.list_s = r(&["list"]).0;
    f.forget_s = r(&["forget", "--keep-last", "10"]).0;
    r(&["forget", &extra]);
    (f.gc_s, f.gc_max_rss_kib) = r(&["gc"]);
    (f.check_s, f.check_max_rss_kib) = r(&["check"]);
    f
}

/// Writes `chunks` unique chunks under a "bulk" snapshot and 1% more
/// under an "extra" one; returns the extra snapshot's id.
fn build_bulk(repo: &Path, chunks: u64) -> String {
    let repo = Arc::new(Repository::open_local(repo).unwrap());
    let root = write_chunks(&repo, 0, chunks);
    write_record(&repo, "bulk", root, chunks);
    let extra = (chunks / 100).max(CHUNKS_PER_FILE as u64);
    let root = write_chunks(&repo, chunks, extra);
    write_record(&repo, "extra", root, extra)
}

/// Chunks `first..first + count` (their bytes are their numbers), in
/// files of 1,000 and directories of 100 files; returns the root tree.
fn write_chunks(repo: &Arc<Repository>, first: u64, count: u64) -> BlobId {
    let empty = Arc::new(Index::default());
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    let mut extents = Vec::with_capacity(CHUNKS_PER_FILE);
    let mut next = first;
    let end = first + count;
    while next < end {
        let writer = BlobWriter::new(repo.clone(), empty.clone());
        let mut data = BlockBuilder::new(BlobKind::Data);
        let mut trees = BlockBuilder::new(BlobKind::Tree);
        let stop = (next + CHUNKS_PER_WRITER).min(end);
        while next < stop {
            let bytes: Vec<u8> = [0x5ca1e_u64, next].iter().flat_map(|n| n.to_le_bytes()).collect();
            let id = writer.add(&mut data, &bytes).unwrap();
            extents.push(Extent::Data { id, len: 16 });
            next += 1;
            if extents.len() == CHUNKS_PER_FILE || next == end {
                let name = format!("f{:07}", files.len());
                files.push(entry(name, Node::File { content: std::mem::take(&mut extents) }));
            }
            if files.len() == FILES_PER_DIR || (next == end && !files.is_empty()) {
                let tree = writer.add_tree(Tree { entries: std::mem::take(&mut files) }, &mut trees).unwrap();
                dirs.push(entry(format!("d{:07}", dirs.len()), Node::Dir { tree }));
            }
        }
        let root = (next == end).then(|| writer.add_tree(Tree { entries: std::mem::take(&mut dirs) }, &mut trees));
        writer.flush(&mut data).unwrap();
        writer.flush(&mut trees).unwrap();
        writer.finish().unwrap();
        if let Some(root) = root {
            return root.unwrap();
        }
    }
    unreachable!("count > 0")
}

fn entry(name: String, node: Node) -> Entry {
    let size = match &node {
        Node::File { content } => content.iter().map(|x| x.len()).sum(),
        _ => 0,
    };
    Entry {
        name: name.into_bytes(),
        node,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size,
        blocks: size.div_ceil(512),
        mtime: Timestamp { secs: 1_700_000_000, nanos: 0 },
        ctime: Timestamp { secs: 1_700_000_000, nanos: 0 },
        inode: 1,
        hard_link: None,
        xattrs: Vec::new(),
    }
}

fn write_record(repo: &Repository, what: &str, root: BlobId, chunks: u64) -> String {
    let mut root_entry = entry(String::new(), Node::Dir { tree: root });
    root_entry.mode = 0o755;
    let mut snapshot = Snapshot {
        time: Timestamp { secs: 1_700_000_000, nanos: 0 },
        host: what.into(),
        path: format!("/{what}").into_bytes(),
        message: String::new(),
        parent: None,
        root: root_entry,
        partial: false,
        errors: Vec::new(),
        stats: SnapshotStats {
            files: chunks.div_ceil(CHUNKS_PER_FILE as u64),
            bytes: chunks * 16,
            added_blobs: chunks,
            ..Default::default()
        },
        chkfs_version: env!("CARGO_PKG_VERSION").into(),
        tags: Vec::new(),
    };
    repo.write_snapshot(&mut snapshot, |_, _| {}).unwrap().0.to_hex()
}

/// Copies snapshot `base`'s record `copies` times, a second apart before
/// it, as if the source had been saved unchanged that often.
fn copy_records(repo: &Path, base: &str, copies: usize) {
    let repo = Repository::open_local(repo).unwrap();
    let id = repo.resolve_snapshot_id(base).unwrap();
    let record = repo.read_snapshot(id).unwrap().unwrap();
    for i in 0..copies {
        let mut copy = record.clone();
        copy.time.secs -= 1 + i as i64;
        repo.write_snapshot(&mut copy, |_, _| {}).unwrap();
    }
}

/// Fills `src` with 2,000 files of 16 KiB; later rounds rewrite 1% of
/// them (a different 1% each round).
fn make_source(src: &Path, round: u64) {
    std::fs::create_dir_all(src).unwrap();
    let mut rng = Rng::new(round * 7919);
    for i in 0..SOURCE_FILES {
        if round > 1 && i % 100 != round as usize {
            continue;
        }
        let bytes: Vec<u8> = (0..SOURCE_FILE_LEN / 8).flat_map(|_| rng.next_u64().to_le_bytes()).collect();
        std::fs::write(src.join(format!("file{i:04}")), bytes).unwrap();
    }
}

fn save(chkfs: &Path, env: impl Fn(&mut Command), repo: &Path, src: &Path) -> (String, f64, u64) {
    let out = dir_of(repo).join("save.json");
    let file = std::fs::File::create(&out).unwrap();
    let args = ["--repo", repo.to_str().unwrap(), "save", "--json", "--host", "bench", src.to_str().unwrap()];
    let (t, rss) = measured(chkfs, &args, env, file.into());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    (v["id"].as_str().unwrap().to_string(), t, rss)
}

fn dir_of(p: &Path) -> &Path {
    p.parent().unwrap()
}

fn run(chkfs: &Path, env: impl Fn(&mut Command), args: &[&str]) -> (f64, u64) {
    measured(chkfs, args, env, Stdio::null())
}

/// Runs chkfs to its end under GNU time: wall time in seconds and peak
/// RSS in KiB; panics when it fails. (The peak RSS of a child this process
/// forked itself would start at this process's own size.)
fn measured(chkfs: &Path, args: &[&str], env: impl Fn(&mut Command), stdout: Stdio) -> (f64, u64) {
    let report = std::env::temp_dir().join(format!("chkfs-scale-time-{}", std::process::id()));
    let mut c = Command::new("/usr/bin/time");
    c.arg("-f").arg("%e %M").arg("-o").arg(&report).arg(chkfs).args(args);
    env(&mut c);
    c.stdout(stdout).stderr(Stdio::piped());
    let started = Instant::now();
    let out = c.output().expect("running /usr/bin/time (apt-get install time)");
    let elapsed = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "chkfs {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    let figures = std::fs::read_to_string(&report).unwrap_or_default();
    let rss = figures.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
    (elapsed, rss)
}

/// Time from starting `chkfs mount` to reading a file of the newest
/// snapshot (the index loaded), then the mount's RssAnon after `find` of
/// that snapshot. The best of three mounts.
fn mount_figures(chkfs: &Path, env: impl Fn(&mut Command), repo: &Path, mnt: &Path, base: &str) -> (f64, u64) {
    std::fs::create_dir_all(mnt).unwrap();
    let file = mnt.join("snapshots").join(base).join("file0000");
    let mut best = f64::MAX;
    let mut rss = 0;
    for _ in 0..3 {
        let mut c = Command::new(chkfs);
        c.args(["--repo", repo.to_str().unwrap(), "mount", mnt.to_str().unwrap()]);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        env(&mut c);
        let started = Instant::now();
        let mut child = c.spawn().unwrap();
        while std::fs::read(&file).map(|b| b.len()).ok() != Some(SOURCE_FILE_LEN) {
            assert!(started.elapsed() < Duration::from_secs(900), "the mount did not come up");
            std::thread::sleep(Duration::from_micros(500));
        }
        best = best.min(started.elapsed().as_secs_f64() * 1000.0);
        let found = Command::new("find").arg(mnt.join("snapshots").join(base)).stdout(Stdio::null()).status();
        assert!(found.unwrap().success());
        rss = rss_anon(child.id());
        let _ = Command::new("umount").arg(mnt).status();
        let _ = child.wait();
    }
    (best, rss)
}

fn rss_anon(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap_or("RssAnon: 0 kB");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// p50 and p99 of single `has_healthy` lookups of known chunks, warm (a
/// first pass over the same ids before the measured one).
fn lookups(repo: &Path) -> (u64, u64) {
    let repo = Repository::open_local(repo).unwrap();
    let index = repo.load_index().unwrap().index;
    let mut rng = Rng::new(42);
    let blocks = index.block_count();
    let ids: Vec<BlobId> = (0..200_000)
        .filter_map(|_| {
            let b = index.blobs_in_block(rng.below(blocks as usize) as u32);
            b.get(rng.below(b.len().max(1))).filter(|l| l.kind == BlobKind::Data).map(|l| l.id)
        })
        .collect();
    for id in &ids {
        assert!(index.has_healthy(BlobKind::Data, *id));
    }
    let mut times: Vec<u64> = ids
        .iter()
        .map(|id| {
            let t = Instant::now();
            std::hint::black_box(index.has_healthy(BlobKind::Data, *id));
            t.elapsed().as_nanos() as u64
        })
        .collect();
    times.sort_unstable();
    (times[times.len() / 2], times[times.len() * 99 / 100])
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

fn print_table(results: &[Figures]) {
    println!("| chunks | mount ready | mount RssAnon | 1% save (small repo) | save peak RSS | 1% save, 10k snapshots | list | forget | gc | gc peak RSS | check | check peak RSS | lookup p50 / p99 | index files / tables |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for f in results {
        println!(
            "| {} | {:.0} ms | {} MiB | {:.3} s ({:.3} s) | {} MiB | {:.3} s | {:.2} s | {:.2} s | {:.1} s | {} MiB | {:.1} s | {} MiB | {} / {} ns | {} / {} MiB |",
            f.chunks,
            f.mount_ready_ms,
            f.mount_rss_anon_kib / 1024,
            f.save_s,
            f.small_save_s,
            f.save_max_rss_kib / 1024,
            f.save_10k_s,
            f.list_s,
            f.forget_s,
            f.gc_s,
            f.gc_max_rss_kib / 1024,
            f.check_s,
            f.check_max_rss_kib / 1024,
            f.lookup_p50_ns,
            f.lookup_p99_ns,
            f.index_files_bytes >> 20,
            f.index_table_bytes >> 20,
        );
    }
}

/// A named figure of a run.
type Figure = fn(&Figures) -> f64;

/// Two panels against the number of chunks (log scales): times, and peak
/// memory.
fn plot(results: &[Figures], out: &Path) {
    use plotters::prelude::*;
    let font = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"].iter().find_map(|p| std::fs::read(p).ok());
    let Some(font) = font else {
        eprintln!("no DejaVuSans.ttf (apt-get install fonts-dejavu-core): no plot");
        return;
    };
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(font.into_boxed_slice()))
        .map_err(|_| ())
        .expect("font");
    if results.is_empty() {
        return;
    }
    let root = BitMapBackend::new(out, (1400, 600)).into_drawing_area();
    root.fill(&WHITE).unwrap();
    let (left, right) = root.split_horizontally(700);
    let xs = (results[0].chunks as f64 * 0.7)..(results[results.len() - 1].chunks as f64 * 1.4);
    let times: [(&str, Figure); 7] = [
        ("mount ready", |f| f.mount_ready_ms / 1000.0),
        ("1% save", |f| f.save_s),
        ("list", |f| f.list_s),
        ("forget --keep-last", |f| f.forget_s),
        ("gc", |f| f.gc_s),
        ("check", |f| f.check_s),
        ("lookup p99 (µs)", |f| f.lookup_p99_ns as f64 / 1e3),
    ];
    let mems: [(&str, Figure); 4] = [
        ("mount RssAnon", |f| f.mount_rss_anon_kib as f64 / 1024.0),
        ("1% save peak RSS", |f| f.save_max_rss_kib as f64 / 1024.0),
        ("gc peak RSS", |f| f.gc_max_rss_kib as f64 / 1024.0),
        ("check peak RSS", |f| f.check_max_rss_kib as f64 / 1024.0),
    ];
    draw(&left, "time (s) against chunks", xs.clone(), 0.0005..2000.0, &times, results);
    draw(&right, "peak memory (MiB) against chunks", xs, 1.0..20000.0, &mems, results);
    root.present().unwrap();
    eprintln!("plot: {}", out.display());
}

fn draw(
    area: &plotters::drawing::DrawingArea<plotters::backend::BitMapBackend, plotters::coord::Shift>,
    title: &str,
    xs: std::ops::Range<f64>,
    ys: std::ops::Range<f64>,
    series: &[(&str, Figure)],
    results: &[Figures],
) {
    use plotters::prelude::*;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(xs.log_scale(), ys.log_scale())
        .unwrap();
    chart.configure_mesh().x_desc("chunks").draw().unwrap();
    for (i, (name, value)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = results.iter().map(|f| (f.chunks as f64, value(f).max(1e-4))).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .unwrap()
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled()))).unwrap();
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().unwrap();
}
