#!/usr/bin/env bash
# gc on a repository of several snapshots of a source tree plus a
# multi-GiB disk image, after forgetting the older half: time, peak RSS,
# bytes reclaimed against the bytes only the forgotten snapshots used.
#
# benches/gc_bench.sh TREE [IMAGE_MIB]   (WORK defaults to /var/tmp/chkfs-gc-bench)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tree=$(realpath "$1"); img_mib=${2:-2048}
WORK=${WORK:-/var/tmp/chkfs-gc-bench}
cargo build --release --manifest-path "$here/Cargo.toml" >&2
chkfs="$here/target/release/chkfs"
src="$WORK/src" repo="$WORK/repo"
rm -rf "$WORK"; mkdir -p "$src"
cp -a "$tree" "$src/tree"
head -c "${img_mib}M" /dev/urandom > "$src/disk.img"
"$chkfs" init "$repo"

mutate() { python3 - "$src" "$1" <<'PY'
import os, random, sys
root, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(root, "tree")) for f in fs)
for p in rng.sample(files, len(files) // 100):
    if os.path.islink(p): continue
    data = open(p, "rb").read()
    open(p, "wb").write(data[: len(data) // 2] + b"/* edit %d */" % seed + data[len(data) // 2 :])
img = os.path.join(root, "disk.img")
size = os.path.getsize(img)
with open(img, "r+b") as f:
    for _ in range(100):
        f.seek(rng.randrange(0, size - 65536)); f.write(os.urandom(65536))
    f.seek(0, 2); f.write(os.urandom(64 << 20))
PY
}

for i in 1 2 3 4; do
  [ "$i" -gt 1 ] && mutate "$i"
  "$chkfs" --repo "$repo" save "$src" 2>&1 | tail -1
done
ids=($("$chkfs" --repo "$repo" list --json | python3 -c 'import json,sys; print(" ".join(s["id"] for s in json.load(sys.stdin)))'))
"$chkfs" --repo "$repo" forget "${ids[0]}" "${ids[1]}" 2>&1 | tail -1
"$chkfs" --repo "$repo" gc --dry-run --json 2>/dev/null > "$WORK/plan.json"
sync; echo 3 > /proc/sys/vm/drop_caches
/usr/bin/time -f "gc: %e s wall, peak RSS %M KB, %I blocks read" "$chkfs" --repo "$repo" gc --json > "$WORK/gc.json"
python3 - "$WORK" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1] + "/plan.json")); gc = json.load(open(sys.argv[1] + "/gc.json"))
print(f"packs: {gc['packs_before']} before, {gc['packs_deleted']} deleted, {gc['packs_rewritten']} rewritten into {gc['packs_written']}")
print(f"reclaimed {gc['bytes_reclaimed']/2**20:.1f} MiB ({gc['bytes_before']/2**20:.1f} -> {gc['bytes_after']/2**20:.1f} MiB); "
      f"copied {gc['bytes_copied']/2**20:.1f} MiB raw; time {gc['duration_ms']} ms")
print(f"bytes only the forgotten snapshots used (uncompressed): {gc['bytes_unused']/2**20:.1f} MiB")
PY
"$chkfs" --repo "$repo" check 2>&1 | tail -1
