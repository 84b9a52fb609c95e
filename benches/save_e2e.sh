#!/usr/bin/env bash
# End-to-end save benchmark on a generated tree, against native tools in the
# same run:
#   first save        vs  tar -cf - TREE | lz4 -1 > /dev/null
#   no-change save    vs  find TREE -printf '%s %T@\n'
#   repository size   vs  tar -cf - TREE | lz4 -1 | wc -c
#
# benches/save_e2e.sh [TREE]   (default: a generated tree in $WORK)
# Needs hyperfine and lz4 (Debian: apt-get install hyperfine lz4).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/var/tmp/chkfs-bench}
mkdir -p "$WORK"
cargo build --release --manifest-path "$here/Cargo.toml" >&2
chkfs="$here/target/release/chkfs"

tree=${1:-}
if [ -z "$tree" ]; then
  tree="$WORK/tree"
  if [ ! -d "$tree" ]; then
    # 40,000 files: mostly small text, some medium, a few large (random and
    # compressible), in 400 directories.
    python3 - "$tree" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(1)
words = [b"static ", b"int ", b"return ", b"struct ", b"if (", b"x->", b"++i", b";\n", b"\t", b"0x1f"]
def text(n):
    out = bytearray()
    while len(out) < n:
        out += rng.choice(words)
    return bytes(out[:n])
for d in range(400):
    p = os.path.join(root, f"d{d//20:02}", f"sub{d:03}")
    os.makedirs(p, exist_ok=True)
    for f in range(100):
        size = int(rng.lognormvariate(8, 1.5))
        with open(os.path.join(p, f"f{f}.c"), "wb") as fh:
            fh.write(text(min(size, 4 << 20)))
big = os.path.join(root, "big")
os.makedirs(big, exist_ok=True)
for i in range(3):
    with open(os.path.join(big, f"random{i}.bin"), "wb") as fh:
        fh.write(os.urandom(200 << 20))
    with open(os.path.join(big, f"text{i}.log"), "wb") as fh:
        fh.write(text(100 << 20))
PY
  fi
fi

repo="$WORK/repo"
echo "tree: $tree ($(find "$tree" -type f | wc -l) files, $(du -sh --apparent-size "$tree" | cut -f1))"
hyperfine --warmup 1 --runs 5 --export-csv "$WORK/first-save.csv" \
  --prepare "rm -rf '$repo' && '$chkfs' init '$repo' 2>/dev/null" \
  -n "chkfs save (first)" "'$chkfs' --repo '$repo' save --force-read '$tree' 2>/dev/null" \
  -n "tar | lz4 -1" "tar -cf - -C '$tree' . | lz4 -1 > /dev/null"
hyperfine --warmup 2 --runs 10 --export-csv "$WORK/resave.csv" \
  -n "chkfs save (no change)" "'$chkfs' --repo '$repo' save '$tree' 2>/dev/null" \
  -n "find -printf" "find '$tree' -printf '%s %T@\n' > /dev/null"
repo_bytes=$(du -sb "$repo" | cut -f1)
tar_bytes=$(tar -cf - -C "$tree" . | lz4 -1 | wc -c)
echo "repository size: $repo_bytes bytes after $(ls "$repo/snapshots" | wc -l) snapshots; tar | lz4 -1: $tar_bytes bytes; ratio $(python3 -c "print(round($repo_bytes/$tar_bytes, 3))")"
