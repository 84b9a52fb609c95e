#!/usr/bin/env bash
# chkfs against restic (0.14), borg (1.2), chkpt and native tools on the
# same data in the same run. Prints one table (figure x tool, then the
# ratios chkfs/native, chkfs/restic, chkfs/borg, chkfs/chkpt, and notes)
# and writes the raw numbers to $WORK/results.csv (figure,tool,value,unit)
# and the notes to $WORK/notes.csv. A section run alone replaces only its
# own rows; the others are kept from earlier runs (and said to be).
#
# Sections (benches/compare/*.sh):
#   save   a source tree: first save (warm page cache), repository size,
#          no-change re-save, restore into an empty directory (with a
#          fidelity check of content, modes, mtimes and hard links; each
#          restore goes to a new empty ext4 file system, see
#          compare/freshfs.sh), save
#          and bytes added by a mutated version applied in place (rsync).
#          Native: tar | lz4 -1, find -printf, cp -a.
#   image  a disk image (ext4 made from part of the tree, then random
#          bytes), alone in a directory: save v1 (time, peak RSS), save v2
#          (100 random 64 KiB regions rewritten, 64 MiB appended) and the
#          bytes it adds against the bytes that changed (native).
#   mount  chkfs mount vs restic mount and borg mount (if it works): time
#          to ready with 2 and MANY snapshots, find (warm, cold), cat of
#          the image, 4 KiB random reads, diff -r of two snapshots, memory
#          of the mount process. Native: the same on the files on disk.
#   gc     the older half of the snapshots forgotten, then chkfs gc vs
#          restic forget+prune, borg delete+compact, chkpt delete: time,
#          peak RSS, bytes read from disk, bytes reclaimed.
#   shapes the mount on real directory shapes (/usr, man1, directories of
#          20,000 / 100,000 / 1,000,000 entries): ls -l first and repeated,
#          ls -laR and tar of /usr, cat of 20,000 files, RssAnon max;
#          native: the same commands on the sources (compare/shapes.sh).
#
# Usage (Debian, as root: installs what is missing with apt-get, drops the
# page cache, mounts with FUSE):
#   benches/compare.sh [TREE]
#   CHKFS=/path/to/chkfs SECTIONS="save mount" nice -n 10 benches/compare.sh ~/src/linux
# TREE defaults to Debian's linux-source-6.1, unpacked into $WORK/linux.
# With the defaults (Linux tree, 2 GiB image) WORK needs about 20 GB free.
#
# Environment:
#   CHKFS=PATH      use this chkfs binary (default: cargo build --release,
#                   then target/release/chkfs)
#   WORK=DIR        scratch directory (default /var/tmp/chkfs-compare)
#   RUNS=N          hyperfine runs per timing (default 3)
#   SECTIONS=LIST   sections to run (default "save image mount gc shapes"); mount
#                   uses the repositories the save and image sections left
#   TOOLS=LIST      tools to compare (default "chkfs restic borg chkpt")
#   IMAGE_MIB=N     size of the disk image (default 2048)
#   MANY=N          snapshots of the many-snapshot mount repository (200)
#   READY_RUNS=N    mounts timed per mount-ready figure (default 10)
#
# restic (encrypted, compression auto) and borg (-e none, lz4) come from
# apt; chkpt from `cargo install --locked chkpt-cli`. A tool that cannot be
# installed is skipped with a note.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bench="$here/benches/compare"
WORK=${WORK:-/var/tmp/chkfs-compare}
RUNS=${RUNS:-3}
SECTIONS=${SECTIONS:-save image mount gc shapes}
IMAGE_MIB=${IMAGE_MIB:-2048}
MANY=${MANY:-200}
READY_RUNS=${READY_RUNS:-10}
read -r -a TOOLS <<< "${TOOLS:-chkfs restic borg chkpt}"
mkdir -p "$WORK/log" "$WORK/corpus" "$WORK/repo" "$WORK/mnt" "$WORK/cache"
WORK=$(realpath "$WORK")
# Each section writes its own results/SECTION.{csv,notes}; results.csv and
# notes.csv join them, so a section rerun alone replaces only its rows.
mkdir -p "$WORK/results"
LOGF="$WORK/log/run.log" CSV="$WORK/results/tools.csv" NOTES="$WORK/results/tools.notes"
: > "$LOGF"; : > "$WORK/log/pids"; : > "$CSV"; : > "$NOTES"
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$WORK/cache/restic" BORG_BASE_DIR="$WORK/cache/borg"
export BORG_PASSPHRASE=bench BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

for part in lib corpus save image mount gc shapes; do source "$bench/$part.sh"; done
trap 'cleanup_mounts' EXIT
trap 'exit 130' INT TERM
[ "$(id -u)" -eq 0 ] || warn "not root: installing packages, dropping the page cache and mounting may fail"

# ------------------------------------------------------------------ tools
for c in "hyperfine hyperfine" "lz4 lz4" "rsync rsync" "fusermount fuse3" "python3 python3"; do
  install_pkg $c || { echo "error: ${c% *} is required" >&2; exit 1; }
done
[ -x /usr/bin/time ] || install_pkg /usr/bin/time time || { echo "error: /usr/bin/time is required" >&2; exit 1; }
if [ -n "${CHKFS:-}" ]; then
  chkfs=$(realpath "$CHKFS")
else
  cargo build --release --manifest-path "$here/Cargo.toml" >&2
  chkfs="$here/target/release/chkfs"
fi
PATH="$PATH:$HOME/.cargo/bin"
available=()
for t in "${TOOLS[@]}"; do
  case $t in
    chkfs) available+=(chkfs) ;;
    restic) install_pkg restic restic && available+=(restic) || warn "restic not installable; skipped" ;;
    borg) install_pkg borg borgbackup && available+=(borg) || warn "borg not installable; skipped" ;;
    chkpt)
      if ! have chkpt && have cargo; then log "installing chkpt: cargo install --locked chkpt-cli"; cargo install --locked chkpt-cli >> "$LOGF" 2>&1 || true; fi
      have chkpt && available+=(chkpt) || warn "chkpt not installable (needs cargo); skipped" ;;
    *) warn "unknown tool $t; skipped" ;;
  esac
done
TOOLS=("${available[@]}")
chkpt=$(command -v chkpt || true)
for t in "${TOOLS[@]}"; do
  case $t in
    chkfs) log "chkfs: $("$chkfs" --version)" ;;
    restic) log "$(restic version | cut -d' ' -f1-2)"; note "" restic "encrypted; compression auto (repository v2); mount: MNT/ids/<id>/<absolute source path>" ;;
    borg) log "$(borg --version)"; note "" borg "borg init -e none, create --compression lz4; mount: MNT/<archive>/<source path>" ;;
    chkpt) log "chkpt: $chkpt"; note "" chkpt "saves the current directory (--include-deps) into \$HOME/.chkpt/stores/<hash>; skips files and directories named target or .git; restores in place (into the emptied workspace); no mount" ;;
  esac
done

# ------------------------------------------------------------------ corpus
tree=${1:-}
[ -n "$tree" ] || tree=$(corpus_default_tree)
tree=$(realpath "$tree")
work="$WORK/work" workc="$WORK/work-chkpt" out="$WORK/out"
mutated="$WORK/corpus/mutated" img_v1="$WORK/corpus/disk-v1.img" imgdir="$WORK/image" tiny="$WORK/corpus/tiny"
corpus_mutated

for s in save image mount gc shapes; do
  [[ " $SECTIONS " == *" $s "* ]] || continue
  log "section $s"
  CSV="$WORK/results/$s.csv" NOTES="$WORK/results/$s.notes"
  : > "$CSV"; : > "$NOTES"
  "section_$s"
done

parts=(tools)
for s in save image mount gc shapes; do
  [ -f "$WORK/results/$s.csv" ] || continue
  parts+=("$s")
  [[ " $SECTIONS " == *" $s "* ]] || warn "the $s figures are from an earlier run ($(date -r "$WORK/results/$s.csv" '+%F %T'))"
done
{ echo "figure,tool,value,unit"; for s in "${parts[@]}"; do cat "$WORK/results/$s.csv"; done; } > "$WORK/results.csv"
for s in "${parts[@]}"; do cat "$WORK/results/$s.notes"; done > "$WORK/notes.csv"
echo
python3 "$bench/table.py" "$WORK/results.csv" "$WORK/notes.csv"
echo
echo "raw numbers: $WORK/results.csv, notes: $WORK/notes.csv, log: $LOGF"
