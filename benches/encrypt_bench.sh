#!/usr/bin/env bash
# Encrypted against plain repositories, in the same run, on the same
# machine: first save of TREE, no-change re-save (median of 3), and cat of
# IMAGE through a mount (first read after mounting, packs in the page
# cache). Ratios are encrypted / plain for times, encrypted / plain MB/s
# for the cat.
#
#   benches/encrypt_bench.sh [TREE] [IMAGE]
# The encrypted side opens with a cheap key file; the default key
# derivation's time is reported on its own line.
#   WORK=/var/tmp/chkfs-encbench benches/encrypt_bench.sh /var/tmp/linux/linux-source-6.1 disk.img
set -euo pipefail
cd "$(dirname "$0")/.."
CHKFS=$(realpath "${CHKFS:-target/release/chkfs}")
TREE=${1:-/usr/share}
IMAGE=${2:-}
WORK=${WORK:-/var/tmp/chkfs-encbench}
ROUNDS=${ROUNDS:-3}
rm -rf "$WORK" && mkdir -p "$WORK"
printf 'benchmark password\n' > "$WORK/pw"
export CHKFS_PASSWORD_FILE=$WORK/pw

secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
ratio() { echo "scale=3; $1 / $2" | bc -l; }
say() { printf '%-58s %s\n' "$1:" "$2"; }
# The encrypted repository's key file is made cheap to open, so that the
# ratios measure the work on data; the key derivation every command of a
# real repository adds once (about a second, by design) is reported apart.
init() { rm -rf "$WORK/$1"; if [ "$1" = enc ]; then "$CHKFS" init --encrypt --kdf-memory 64 --kdf-iterations 1 "$WORK/enc"; else "$CHKFS" init "$WORK/plain"; fi >/dev/null 2>&1; }

say "tree" "$TREE ($(du -sh "$TREE" 2>/dev/null | cut -f1))"
# ------------------------------------------------------------ first save
declare -A first
for kind in plain enc; do first[$kind]=""; done
for _ in $(seq "$ROUNDS"); do
  for kind in plain enc; do
    init $kind
    first[$kind]+="$(secs "$CHKFS" --repo "$WORK/$kind" save "$TREE") "
  done
done
p=$(median ${first[plain]}); e=$(median ${first[enc]})
say "first save, plain / encrypted (median of $ROUNDS)" "$p s / $e s = $(ratio "$e" "$p")x"
say "stored bytes, plain / encrypted" "$(du -sb "$WORK/plain" | cut -f1) / $(du -sb "$WORK/enc" | cut -f1)"

# ------------------------------------------------------------ no-change
# Tens of milliseconds, on a shared machine: more rounds than the rest.
pl=(); en=()
for _ in $(seq "${NC_ROUNDS:-15}"); do
  pl+=("$(secs "$CHKFS" --repo "$WORK/plain" save "$TREE")")
  en+=("$(secs "$CHKFS" --repo "$WORK/enc" save "$TREE")")
done
p=$(median "${pl[@]}"); e=$(median "${en[@]}")
say "no-change re-save, plain / encrypted (median of ${NC_ROUNDS:-15})" "$p s / $e s = $(ratio "$e" "$p")x"
"$CHKFS" init --encrypt "$WORK/default-kdf" >/dev/null 2>&1
say "opening with the default key derivation (key list)" "$(secs "$CHKFS" --repo "$WORK/default-kdf" key list) s"

# ------------------------------------------------------------ image cat
if [ -n "$IMAGE" ]; then
  mkdir -p "$WORK/img" "$WORK/mnt"
  cp "$IMAGE" "$WORK/img/disk.img"
  size=$(stat -c %s "$IMAGE")
  for kind in plain enc; do
    init $kind
    "$CHKFS" --repo "$WORK/$kind" save "$WORK/img" >/dev/null 2>&1
    cat "$WORK/$kind"/packs/*/* > /dev/null   # packs in the page cache, for both
  done
  declare -A cat_t
  for _ in $(seq "$ROUNDS"); do
    for kind in plain enc; do
      "$CHKFS" mount "$WORK/$kind" "$WORK/mnt" 2>/dev/null &
      mpid=$!
      for _ in $(seq 200); do [ -e "$WORK/mnt/snapshots/latest/disk.img" ] && break; sleep 0.05; done
      cat_t[$kind]+="$(secs cat "$WORK/mnt/snapshots/latest/disk.img") "
      umount "$WORK/mnt"; wait $mpid || true
    done
  done
  p=$(median ${cat_t[plain]}); e=$(median ${cat_t[enc]})
  mbp=$(echo "scale=0; $size / 1000000 / $p" | bc -l); mbe=$(echo "scale=0; $size / 1000000 / $e" | bc -l)
  say "cat of the image through the mount, plain / encrypted" "$mbp MB/s / $mbe MB/s = $(ratio "$p" "$e")x"
fi
rm -rf "$WORK"
