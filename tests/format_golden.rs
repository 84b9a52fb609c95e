//! Golden fixtures of every format version (objects are written with the
//! version that introduced their kind: `v1/` holds the kinds of version 1,
//! `v2/` the split tree, `v3/` writer markers and condemned lists, `v4/`
//! encrypted repositories' objects, `v5/` tagged snapshots): every encoder's bytes are pinned, and the
//! committed bytes must decode to the same values. A change here is a
//! format change: bump FORMAT_VERSION and keep reading the old files.
//!
//! Regenerate (only for a new format version) with
//! `CHKFS_UPDATE_GOLDEN=1 cargo test --test format_golden`.

use chkfs::format::pack::{decode_footer, footer_location, seal_block, BlobEntry, BlobKind, PackBuilder, TRAILER_LEN};
use chkfs::format::records::*;
use chkfs::format::tree::{
    decode_split_tree, decode_tree, decode_tree_object, encode_split_tree, encode_tree, Entry, Extent, HardLink, Node,
    Part, SplitTree, Tree, TreeObject, Xattr,
};
use chkfs::format::{BlobId, PackId};
use std::path::PathBuf;

fn fixture(name: &str, bytes: &[u8]) -> Vec<u8> {
    versioned_fixture("v1", name, bytes)
}

fn versioned_fixture(version: &str, name: &str, bytes: &[u8]) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(version).join(name);
    if std::env::var_os("CHKFS_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, bytes).unwrap();
    }
    let stored = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(stored, bytes, "{name}: encoder output differs from the committed fixture");
    stored
}

fn ts(secs: i64, nanos: u32) -> Timestamp {
    Timestamp { secs, nanos }
}

fn entry(name: &[u8], node: Node) -> Entry {
    Entry {
        name: name.to_vec(),
        node,
        mode: 0o4755,
        uid: 1000,
        gid: 100,
        size: 0,
        blocks: 8,
        mtime: ts(1_700_000_000, 123_456_789),
        ctime: ts(1_700_000_001, 987_654_321),
        inode: 424242,
        hard_link: None,
        xattrs: vec![],
    }
}

fn sample_tree() -> Tree {
    let mut file = entry(
        b"f-caf\xc3\xa9\nname",
        Node::File {
            content: vec![
                Extent::Data { id: BlobId(0x0123456789abcdef0123456789abcdef), len: 10 },
                Extent::Hole { len: 4096 },
            ],
        },
    );
    file.size = 4106;
    file.hard_link = Some(HardLink { group: 7, nlink: 2 });
    file.xattrs = vec![Xattr { name: b"user.k".to_vec(), value: b"v\0bin".to_vec() }];
    Tree {
        entries: vec![
            entry(b"a-dir", Node::Dir { tree: BlobId(42) }),
            entry(b"b-fifo", Node::Fifo),
            entry(b"c-sock", Node::Socket),
            entry(b"d-chr", Node::CharDevice { rdev: 0x0103 }),
            entry(b"e-blk", Node::BlockDevice { rdev: 0x0801 }),
            file,
            entry(b"\xff\xfe-not-utf8", Node::Symlink { target: b"../target".to_vec() }),
        ],
    }
}

#[test]
fn tree_v1() {
    let tree = sample_tree();
    let bytes = fixture("tree.bin", &encode_tree(&tree).unwrap());
    assert_eq!(decode_tree(&bytes).unwrap(), tree);
}

fn sample_split_tree() -> SplitTree {
    SplitTree {
        parts: vec![
            Part { first: b"a-first".to_vec(), entries: 2048, tree: BlobId(0x0123456789abcdef0123456789abcdef) },
            Part { first: b"m-\xff-middle".to_vec(), entries: 1, tree: BlobId(7) },
            Part { first: b"z-last".to_vec(), entries: 9000, tree: BlobId(u128::MAX) },
        ],
    }
}

#[test]
fn split_tree_v2() {
    let split = sample_split_tree();
    let bytes = versioned_fixture("v2", "split_tree.bin", &encode_split_tree(&split).unwrap());
    assert_eq!(bytes[5], 2, "a split tree is a version-2 object");
    assert_eq!(decode_split_tree(&bytes).unwrap(), split);
    assert_eq!(decode_tree_object(&bytes).unwrap(), TreeObject::Split(split));
    let tree = encode_tree(&sample_tree()).unwrap();
    assert_eq!(tree[5], 1, "trees are still written as version 1");
    assert_eq!(decode_tree_object(&tree).unwrap(), TreeObject::Whole(sample_tree()));
}

#[test]
fn snapshot_v1() {
    let snap = Snapshot {
        time: ts(1_750_000_000, 5),
        host: "host-a".into(),
        path: b"/home/u/work".to_vec(),
        message: "before upgrade".into(),
        parent: Some(0x03f9a1c2),
        root: entry(b"", Node::Dir { tree: BlobId(99) }),
        partial: true,
        errors: vec!["/home/u/work/secret: Permission denied".into()],
        stats: SnapshotStats {
            files: 1,
            dirs: 2,
            other: 3,
            bytes: 4,
            bytes_read: 5,
            added_bytes: 6,
            added_blobs: 7,
            duration_ms: 8,
        },
        chkfs_version: "0.1.0".into(),
        tags: Vec::new(),
    };
    let bytes = fixture("snapshot.bin", &encode_snapshot(&snap).unwrap());
    assert_eq!(decode_snapshot(&bytes).unwrap(), snap);
}

/// Version 5: a snapshot with tags is a tagged snapshot (kind 12); one
/// without is still written exactly as version 1 wrote it.
#[test]
fn tagged_snapshot_v5() {
    let v1 = std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1/snapshot.bin")).unwrap();
    let mut snap = decode_snapshot(&v1).unwrap();
    assert!(snap.tags.is_empty());
    assert_eq!(encode_snapshot(&snap).unwrap(), v1, "an untagged snapshot keeps the version-1 bytes");
    snap.tags = vec!["daily".into(), "before upgrade".into()];
    let bytes = versioned_fixture("v5", "tagged_snapshot.bin", &encode_snapshot(&snap).unwrap());
    assert_eq!((bytes[4], bytes[5]), (12, 5), "kind 12, version 5");
    assert_eq!(decode_snapshot(&bytes).unwrap(), snap);
    // Tags a reader must refuse.
    for bad in [vec![String::new()], vec!["a,b".into()], vec!["x\ny".into()], vec!["t".repeat(256)]] {
        let mut forged = snap.clone();
        forged.tags = bad.clone();
        assert!(encode_snapshot(&forged).is_err(), "{bad:?} written");
        // A record forged with them anyway is refused by readers.
        let payload = bitcode::encode(&forged);
        let forged_bytes = chkfs::format::seal_envelope(chkfs::format::ObjectKind::TaggedSnapshot, &payload).unwrap();
        assert!(decode_snapshot(&forged_bytes).is_err(), "{bad:?} accepted");
    }
    let mut many = snap.clone();
    many.tags = (0..1025).map(|i| format!("t{i}")).collect();
    assert!(encode_snapshot(&many).is_err(), "1025 tags written");
}

#[test]
fn config_v1() {
    let config = Config {
        repo_id: 0xfeed,
        hash_secret: (0..HASH_SECRET_LEN as u32).map(|i| (i * 7) as u8).collect(),
        chunker: ChunkerParams { min_size: 4096, avg_size: 16384, max_size: 131072 },
        created: ts(1_700_000_000, 0),
    };
    let bytes = fixture("config.bin", &encode_config(&config).unwrap());
    assert_eq!(decode_config(&bytes).unwrap(), config);
}

fn sample_pack() -> (Vec<u8>, chkfs::format::pack::PackFooter) {
    let mut b = PackBuilder::new();
    let blob = |id, kind, offset, len| BlobEntry { id: BlobId(id), kind, offset, len };
    b.add(seal_block(
        &b"one two three ".repeat(20),
        vec![blob(1, BlobKind::Data, 0, 100), blob(2, BlobKind::Data, 100, 180)],
    ));
    b.add(seal_block(b"\x01\x02\x03\x04", vec![blob(3, BlobKind::Tree, 0, 4)]));
    b.finish().unwrap()
}

#[test]
fn pack_and_index_v1() {
    let (pack, footer) = sample_pack();
    let bytes = fixture("pack.bin", &pack);
    let (start, len) = footer_location(&bytes[bytes.len() - TRAILER_LEN..], bytes.len() as u64).unwrap();
    assert_eq!(decode_footer(&bytes[start as usize..start as usize + len], start).unwrap(), footer);

    let index =
        IndexFile { packs: vec![IndexedPack { id: PackId(0xabc), size: bytes.len() as u64, blocks: footer.blocks }] };
    let bytes = fixture("index.bin", &encode_index(&index).unwrap());
    assert_eq!(decode_index(&bytes).unwrap(), index);
}

#[test]
fn damage_list_v1() {
    let list = DamageList { entries: vec![(PackId(1), BlobId(2)), (PackId(3), BlobId(4))] };
    let bytes = fixture("damaged.bin", &encode_damage_list(&list).unwrap());
    assert_eq!(decode_damage_list(&bytes).unwrap(), list);
}

#[test]
fn writer_marker_and_condemned_list_v3() {
    let marker = WriterMarker {
        command: "save".into(),
        host: "laptop".into(),
        pid: 4242,
        started: ts(1_780_000_000, 5),
        lease_secs: 86_400,
        boot_id: "0b6f4f6e-2d1c-4f7a-9a55-3f1f0c2d9e11".into(),
        pid_namespace: 4_026_531_836,
    };
    let bytes = versioned_fixture("v3", "writer_marker.bin", &encode_writer_marker(&marker).unwrap());
    assert_eq!(bytes[5], 3, "a writer marker is a version-3 object");
    assert_eq!(decode_writer_marker(&bytes).unwrap(), marker);
    let list = CondemnedList { packs: vec![PackId(7), PackId(0xabc)], written: ts(1_780_000_100, 0) };
    let bytes = versioned_fixture("v3", "condemned.bin", &encode_condemned(&list).unwrap());
    assert_eq!(bytes[5], 3, "a condemned list is a version-3 object");
    assert_eq!(decode_condemned(&bytes).unwrap(), list);
    for cut in 0..bytes.len() {
        assert!(decode_condemned(&bytes[..cut]).is_err());
    }
}

/// Hostile inputs: every truncation and every single-bit flip of every
/// fixture is an error or (for flips the checksum cannot see, none in v1)
/// a value, never a panic.
#[test]
fn damaged_fixtures_never_panic() {
    let tree = encode_tree(&sample_tree()).unwrap();
    for cut in 0..tree.len() {
        assert!(decode_tree(&tree[..cut]).is_err());
    }
    for i in 0..tree.len() {
        for bit in 0..8 {
            let mut t = tree.clone();
            t[i] ^= 1 << bit;
            assert!(decode_tree(&t).is_err(), "flip at byte {i} bit {bit} went unnoticed");
        }
    }
    let split = encode_split_tree(&sample_split_tree()).unwrap();
    for cut in 0..split.len() {
        assert!(decode_tree_object(&split[..cut]).is_err());
    }
    for i in 0..split.len() {
        for bit in 0..8 {
            let mut t = split.clone();
            t[i] ^= 1 << bit;
            assert!(decode_tree_object(&t).is_err(), "flip at byte {i} bit {bit} of a split tree went unnoticed");
        }
    }
    let (pack, _) = sample_pack();
    for i in pack.len() - 64..pack.len() {
        let mut p = pack.clone();
        p[i] ^= 0x55;
        let n = p.len();
        if let Ok((start, len)) = footer_location(&p[n - TRAILER_LEN..], n as u64) {
            let _ = decode_footer(&p[start as usize..(start as usize + len).min(n)], start);
        }
    }
}

/// Bytes made with randomness (nonces, salts): committed once, and what
/// must hold is that they still open, not that an encoder repeats them.
fn committed_once(name: &str, make: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v4").join(name);
    if std::env::var_os("CHKFS_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, make()).unwrap();
    }
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn encrypted_config_key_file_and_sealed_objects_v4() {
    use chkfs::format::keyfile::*;
    use chkfs::format::sealed::Cipher;
    use chkfs::format::ObjectKind;
    let chunker = ChunkerParams { min_size: 4096, avg_size: 16384, max_size: 131072 };
    let config =
        EncryptedConfig { repo_id: 0x1234, chunker: chunker.clone(), created: ts(1_790_000_000, 0), scheme: 1 };
    let bytes = versioned_fixture("v4", "encrypted_config.bin", &encode_encrypted_config(&config).unwrap());
    assert_eq!(bytes[5], 4, "an encrypted repository's config is a version-4 object");
    assert_eq!(decode_encrypted_config(&bytes).unwrap(), config);

    // A key file opens with its password into the same keys.
    let keys = MasterKeys {
        repo_id: 0x1234,
        data_key: vec![0x11; 32],
        hash_secret: vec![0x22; HASH_SECRET_LEN],
        gear_seed: 0x3333,
        chunker,
    };
    let name = "keys/000000000000000000000000000000aa.key";
    let file = committed_once("key_file.bin", || {
        let meta = KeyMeta {
            created: ts(1_790_000_000, 0),
            host: "golden".into(),
            user: "tester".into(),
            kdf: new_kdf_params(64, 1).unwrap(),
        };
        encode_key_file(&keys.wrap(name, b"golden password", meta).unwrap()).unwrap()
    });
    assert_eq!(file[5], 4, "a key file is a version-4 object");
    let decoded = decode_key_file(&file).unwrap();
    assert_eq!(decoded.meta.host, "golden");
    assert_eq!(decoded.unwrap_with(name, b"golden password").unwrap(), Some(keys.clone()));
    assert_eq!(decoded.unwrap_with(name, b"golden passwore").unwrap(), None);

    // A sealed object and a sealed pack open with the data key.
    let cipher = Cipher::new(&keys.data_key).unwrap();
    let snapshot =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1/snapshot.bin")).unwrap();
    let binding = b"snapshots/03f9a1c2.snap";
    let sealed =
        committed_once("sealed_snapshot.bin", || cipher.seal_object(ObjectKind::Snapshot, binding, &snapshot).unwrap());
    assert_eq!(cipher.open_object(ObjectKind::Snapshot, binding, &sealed).unwrap(), snapshot);
    let pack = committed_once("sealed_pack.bin", || {
        let mut b = PackBuilder::new();
        b.set_sealed();
        for (i, text) in [&b"first block"[..], b"second block", b"third block"].into_iter().enumerate() {
            let mut block = seal_block(
                text,
                vec![BlobEntry { id: BlobId(i as u128), kind: BlobKind::Data, offset: 0, len: text.len() as u32 }],
            );
            block.bytes = cipher.seal_block(BlobKind::Data, &[BlobId(i as u128)], block.bytes).unwrap();
            b.add(block);
        }
        b.finish_sealed(&cipher, Vec::new()).unwrap().0
    });
    assert_eq!(chkfs::format::pack::check_header(&pack), Ok(true));
    let (start, len) = footer_location(&pack[pack.len() - TRAILER_LEN..], pack.len() as u64).unwrap();
    let footer = cipher.open_object(ObjectKind::PackFooter, b"", &pack[start as usize..start as usize + len]).unwrap();
    let footer = decode_footer(&footer, start).unwrap();
    let mut texts: Vec<(u128, Vec<u8>)> = footer
        .blocks
        .iter()
        .map(|b| {
            let stored = pack[b.offset as usize..(b.offset + u64::from(b.stored_len)) as usize].to_vec();
            let stored = cipher.open_block(BlobKind::Data, &[b.blobs[0].id], stored).unwrap();
            (b.blobs[0].id.0, chkfs::format::pack::open_block(b.codec, b.raw_len, &stored).unwrap())
        })
        .collect();
    texts.sort();
    let want: Vec<(u128, Vec<u8>)> =
        vec![(0, b"first block".to_vec()), (1, b"second block".to_vec()), (2, b"third block".to_vec())];
    assert_eq!(texts, want);
}

/// Index tables (the local cache's format, version 1): the bytes of a
/// table of two packs, with a blob stored twice and a tree sharing a
/// chunk's id, are fixed; the committed table opens and finds every blob.
#[test]
fn index_table_v1() {
    use chkfs::format::index_table::{TableRecords, TableView};
    use chkfs::format::pack::{BlobEntry, BlobKind, BlockInfo, Codec};
    use chkfs::format::records::IndexedPack;
    use chkfs::format::{BlobId, PackId};
    let blob = |id: u128, kind, offset| BlobEntry { id: BlobId(id), kind, offset, len: 10 };
    let block = |offset, codec, blobs| BlockInfo { offset, stored_len: 20, raw_len: 30, codec, blobs };
    let packs = vec![
        IndexedPack {
            id: PackId(0x7777),
            size: 100,
            blocks: vec![
                block(16, Codec::Lz4, vec![blob(5 << 120, BlobKind::Data, 0), blob(3, BlobKind::Data, 10)]),
                block(36, Codec::Raw, vec![blob(3, BlobKind::Tree, 0)]),
            ],
        },
        IndexedPack {
            id: PackId(0x2222),
            size: 50,
            blocks: vec![block(16, Codec::Raw, vec![blob(3, BlobKind::Data, 0)])],
        },
    ];
    let mut records = TableRecords { covers: vec![PackId(0xabcd)], ..Default::default() };
    records.add_packs(&packs, |_| true, |_| false);
    let bytes = versioned_fixture("tables", "index_table_v1.bin", &records.encode(0).unwrap());
    let t = TableView::open(&bytes).unwrap();
    t.verify_body().unwrap();
    assert_eq!(&bytes[..8], b"CHKFSIDX");
    assert_eq!(t.covers().collect::<Vec<_>>(), vec![PackId(0xabcd)]);
    for (slot, p) in packs.iter().enumerate() {
        assert_eq!(t.indexed_pack(slot as u32), *p);
    }
    assert_eq!(t.find(BlobKind::Data, BlobId(3)).len(), 2);
    assert_eq!(t.find(BlobKind::Tree, BlobId(3)).len(), 1);
    assert_eq!(t.find(BlobKind::Data, BlobId(5 << 120)).len(), 1);
}
