# The data every tool saves (sourced by benches/compare.sh). All of it is
# generated from TREE with seeded randomness, so reruns see the same bytes.
#
#   $tree              TREE, version 1 of the tree (read only)
#   $mutated           version 2: 1% of the files edited in the middle, 200
#                      added, 200 deleted, one directory renamed
#   $work, $workc      working copies the tools save (chkpt gets its own,
#                      since its restore rewrites the workspace in place)
#   $img_v1            disk image, version 1: ext4 (70% of IMAGE_MIB) made
#                      with mkfs.ext4 -d from ~30% of IMAGE_MIB of the tree,
#                      then random bytes to IMAGE_MIB
#   $imgdir/disk.img   the image the tools save, alone in its directory;
#                      image_v2 turns it into version 2 in place
#   $tiny              a small directory, saved many times for the mount

corpus_default_tree() { # Debian's linux-source-6.1, unpacked into $WORK/linux
  local t="$WORK/linux"
  if [ ! -d "$t" ]; then
    install_pkg xz xz-utils
    [ -f /usr/src/linux-source-6.1.tar.xz ] || apt_install linux-source-6.1 >&2
    mkdir -p "$t.tmp" && tar -xf /usr/src/linux-source-6.1.tar.xz -C "$t.tmp" --strip-components=1 && mv "$t.tmp" "$t"
  fi
  echo "$t"
}

# Rebuilds a cached corpus file only when its recipe (key) changed.
fresh() { [ -e "$1" ] && [ "$(cat "$1.key" 2>/dev/null)" = "$2" ]; }

corpus_mutated() {
  local key="tree=$tree v=2"
  fresh "$mutated" "$key" && return 0
  log "corpus: making the mutated tree"
  rm -rf "$mutated" "$mutated.key"; cp -a "$tree" "$mutated"
  python3 - "$mutated" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(42)
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if not os.path.islink(os.path.join(d, f)))
for p in rng.sample(files, len(files) // 100):
    data = open(p, "rb").read()
    open(p, "wb").write(data[: len(data) // 2] + b"/* mutated */" + data[len(data) // 2 :])
for p in rng.sample(files, min(200, len(files) // 4)):
    if os.path.exists(p): os.remove(p)
for i in range(200):
    with open(os.path.join(root, f"added-{i}.txt"), "wb") as f: f.write(rng.randbytes(rng.randrange(100, 20000)))
dirs = sorted(d for d, _, _ in os.walk(root) if d != root)
src = rng.choice(dirs); os.rename(src, src + "-renamed")
PY
  echo "$key" > "$mutated.key"
}

corpus_image() {
  local key="tree=$tree mib=$IMAGE_MIB v=1"
  fresh "$img_v1" "$key" && return 0
  install_pkg mkfs.ext4 e2fsprogs || { warn "mkfs.ext4 missing"; return 1; }
  local ext_mib=$((IMAGE_MIB * 7 / 10)) stage="$WORK/corpus/stage"
  log "corpus: making a $IMAGE_MIB MiB disk image (ext4 of $ext_mib MiB + random bytes)"
  rm -rf "$stage" "$img_v1" "$img_v1.key"
  # The first files of the tree (sorted walk) up to 30% of the image.
  python3 - "$tree" "$stage" $((IMAGE_MIB * 3 / 10 * 1048576)) <<'PY'
import os, shutil, sys
src, dst, budget = sys.argv[1], sys.argv[2], int(sys.argv[3])
total = 0
for d, dirs, files in os.walk(src):
    dirs.sort()
    for f in sorted(files):
        p = os.path.join(d, f)
        if os.path.islink(p) or not os.path.isfile(p): continue
        q = os.path.join(dst, os.path.relpath(p, src))
        os.makedirs(os.path.dirname(q), exist_ok=True)
        try: os.link(p, q)
        except OSError: shutil.copy2(p, q)
        total += os.path.getsize(p)
        if total >= budget: sys.exit(0)
PY
  truncate -s "${ext_mib}M" "$img_v1"
  E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -q -F -U 6a1c3e4f-0000-4000-8000-000000000001 \
    -E hash_seed=6a1c3e4f-0000-4000-8000-000000000002,root_owner=0:0 -d "$stage" "$img_v1" >> "$LOGF" 2>&1
  rm -rf "$stage"
  python3 - "$img_v1" $((IMAGE_MIB - ext_mib)) <<'PY'
import random, sys
rng = random.Random(7)
with open(sys.argv[1], "ab") as f:
    for _ in range(int(sys.argv[2])): f.write(rng.randbytes(1 << 20))
PY
  echo "$key" > "$img_v1.key"
}

image_place_v1() { mkdir -p "$imgdir"; rm -f "$imgdir/disk.img"; cp --sparse=always "$img_v1" "$imgdir/disk.img"; }

# Version 2, in place: 100 random 64 KiB regions overwritten with random
# bytes, 64 MiB of random bytes appended.
IMAGE_CHANGED_BYTES=$((100 * 65536 + 64 * 1048576))
image_v2() {
  python3 - "$imgdir/disk.img" <<'PY'
import os, random, sys
rng = random.Random(2)
with open(sys.argv[1], "r+b") as f:
    size = os.fstat(f.fileno()).st_size
    for _ in range(100):
        f.seek(rng.randrange(0, size - 65536)); f.write(rng.randbytes(65536))
    f.seek(0, 2); f.write(rng.randbytes(64 << 20))
PY
}

corpus_tiny() {
  [ -d "$tiny" ] && return 0
  mkdir -p "$tiny"
  for i in $(seq 10); do head -c 4096 /dev/zero | tr '\0' "$((i % 10))" > "$tiny/file-$i"; done
}
