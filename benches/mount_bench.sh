#!/usr/bin/env bash
# Read performance of `chkfs mount` against native reads of the original
# data, in the same run:
#   sequential read of a large file: first read after mounting with the
#     packs in the page cache, and with the page cache dropped;
#   4 KiB random reads in that file (p50/p99);
#   find over a snapshot of a source tree, and diff -r between two
#     snapshots of it with ~1% of the files changed in place;
#   peak RSS and RssAnon of the mount process.
#
# benches/mount_bench.sh TREE BIGFILE   (run as root: drops the page cache)
# WORK (default /var/tmp/chkfs-mount-bench) holds the repository and copies.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tree=$(realpath "$1"); big=$(realpath "$2")
WORK=${WORK:-/var/tmp/chkfs-mount-bench}
mkdir -p "$WORK"
cargo build --release --manifest-path "$here/Cargo.toml" >&2
chkfs="$here/target/release/chkfs"
repo="$WORK/repo" mnt="$WORK/mnt" work="$WORK/tree" orig="$WORK/tree-orig"
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }

if [ ! -d "$repo" ]; then
  rm -rf "$work" "$orig"; mkdir -p "$WORK/big"
  cp -a "$tree" "$work"; cp -a "$tree" "$orig"; cp "$big" "$WORK/big/"
  "$chkfs" init "$repo"
  "$chkfs" --repo "$repo" save "$WORK/big" >/dev/null
  "$chkfs" --repo "$repo" save "$work" >/dev/null
  # Edit ~1% of the files in place (bytes inserted in the middle).
  python3 - "$work" <<'PY'
import os, sys
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(sys.argv[1]) for f in fs)
for p in files[::100]:
    if os.path.islink(p): continue
    data = open(p, "rb").read()
    open(p, "wb").write(data[: len(data) // 2] + b"/* edited */" + data[len(data) // 2 :])
PY
  "$chkfs" --repo "$repo" save "$work" >/dev/null
fi
ids=($("$chkfs" --repo "$repo" list --json | python3 -c 'import json,sys; print(" ".join(s["id"] for s in json.load(sys.stdin)))'))
img_id=${ids[0]} a=${ids[1]} b=${ids[2]}
name=$(basename "$big")

mkdir -p "$mnt"
mount_it() { "$chkfs" --repo "$repo" mount "$mnt" 2>/dev/null & pid=$!; until [ -d "$mnt/snapshots" ]; do sleep 0.01; done; }
unmount_it() { kill "$pid"; wait "$pid" || true; }
peak() { grep -E 'VmHWM|RssAnon' /proc/$pid/status | tr -s ' ' | tr '\n' ' '; echo; }

echo "== sequential read of $name ($(du -h --apparent-size "$big" | cut -f1))"
cat "$repo"/packs/*/* > /dev/null; cat "$big" > /dev/null
mount_it
/usr/bin/time -f "mount, packs cached: %e s" cat "$mnt/snapshots/$img_id/$name" > /dev/null
peak; unmount_it
/usr/bin/time -f "native, cached:      %e s" cat "$big" > /dev/null
drop; mount_it
/usr/bin/time -f "mount, cold:         %e s" cat "$mnt/snapshots/$img_id/$name" > /dev/null
unmount_it; drop
/usr/bin/time -f "native, cold:        %e s" cat "$big" > /dev/null

echo "== 4 KiB random reads (warm)"
cat "$repo"/packs/*/* > /dev/null
mount_it
python3 "$here/benches/randread.py" "$mnt/snapshots/$img_id/$name" 200 9 >/dev/null
echo -n "mount:  "; python3 "$here/benches/randread.py" "$mnt/snapshots/$img_id/$name" 5000 1
echo -n "native: "; python3 "$here/benches/randread.py" "$big" 5000 1
peak; unmount_it

echo "== find and diff -r (warm)"
mount_it
hyperfine --warmup 2 --runs 10 --export-csv "$WORK/find.csv" \
  -n "find (mount)" "find '$mnt/snapshots/$a' > /dev/null" \
  -n "find (native)" "find '$orig' > /dev/null"
hyperfine --warmup 1 --runs 5 --export-csv "$WORK/diff.csv" -i \
  -n "diff -r (mount)" "diff -r '$mnt/snapshots/$a' '$mnt/snapshots/$b' > /dev/null" \
  -n "diff -r (native)" "diff -r '$orig' '$work' > /dev/null"
peak; unmount_it
echo "== find, cold"
drop; mount_it
/usr/bin/time -f "find (mount, cold): %e s" find "$mnt/snapshots/$a" > /dev/null
peak; unmount_it; drop
/usr/bin/time -f "find (native, cold): %e s" find "$orig" > /dev/null
