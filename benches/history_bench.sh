#!/usr/bin/env bash
# The views through time on a long history: N snapshots of TREE, each
# with 20 files edited (FILE in one of every four), then one with 1% of the
# files edited. Measures, on fresh mounts:
#   * ls -l of FILE's history directory (history/<host>/<path>/FILE/):
#     cold (page cache dropped, first listing after mounting) and warm;
#   * find of changes/<id> for the 1%-edited snapshot against
#     diff -qr --no-dereference of snapshots/<before> and snapshots/<id>;
#   * with BORG=1, borg mount -o versions of a borg repository holding the
#     same N archives, until FILE's versions are listed, against chkfs's
#     mount until the same listing.
#
#   benches/history_bench.sh [TREE] [FILE]
#   N=200 BORG=1 WORK=/var/tmp/chkfs-history benches/history_bench.sh /var/tmp/linux/linux-source-6.1 kernel/sched/core.c
# Set KEEP=1 to reuse the repositories of an earlier run (same N).
set -euo pipefail
cd "$(dirname "$0")/.."
CHKFS=$(realpath "${CHKFS:-target/release/chkfs}")
TREE=$(realpath "${1:-/usr/share/doc}")
FILE=${2:-$(cd "$TREE" && find . -type f -size +1k | sort | sed -n 1p | cut -c3-)}
WORK=${WORK:-/var/tmp/chkfs-history}
N=${N:-200}
BORG=${BORG:-0}
HOST=bench
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
say() { printf '%-62s %s\n' "$1:" "$2"; }
cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }
mnt_up() { timeout 60 "$CHKFS" --repo "$WORK/repo" mount --daemon "$WORK/mnt"; }
mnt_down() { umount "$WORK/mnt" 2>/dev/null || fusermount3 -u "$WORK/mnt" 2>/dev/null || true; }
trap 'mnt_down; umount "$WORK/bmnt" 2>/dev/null || true' EXIT

build() {
  rm -rf "$WORK" && mkdir -p "$WORK/mnt" "$WORK/bmnt"
  cp -a "$TREE" "$WORK/src"
  "$CHKFS" init "$WORK/repo" >/dev/null
  if [ "$BORG" = 1 ]; then borg init -e none "$WORK/borg" >/dev/null; fi
  (cd "$WORK/src" && find . -type f | sort) > "$WORK/files"
  local count; count=$(wc -l < "$WORK/files")
  for i in $(seq 0 "$N"); do
    if [ "$i" -gt 0 ]; then
      for k in $(seq 1 20); do
        f=$(sed -n "$(( (i * 7919 + k * 104729) % count + 1 ))p" "$WORK/files")
        printf '// edit %d\n' "$i" >> "$WORK/src/$f"
      done
      if [ $((i % 4)) = 0 ]; then printf '// edit %d\n' "$i" >> "$WORK/src/$FILE"; fi
    fi
    if [ "$i" = "$N" ]; then
      awk 'NR % 100 == 0' "$WORK/files" | while read -r f; do echo "// one percent" >> "$WORK/src/$f"; done
    fi
    "$CHKFS" --repo "$WORK/repo" save --host "$HOST" --time "$(date -u -d "2026-01-01 + $i hours" +%FT%TZ)" "$WORK/src" >/dev/null 2>&1
    if [ "$BORG" = 1 ]; then (cd "$WORK" && borg create "$WORK/borg::s$i" src >/dev/null); fi
  done
}

if [ "${KEEP:-0}" != 1 ] || [ ! -d "$WORK/repo" ]; then build; fi
say "tree, file" "$TREE ($(du -sh "$TREE" | cut -f1)), $FILE"
say "snapshots" "$(( N + 1 ))"
HIST="$WORK/mnt/history/$HOST$WORK/src/$FILE"

# ------------------------------------------------------------ history ls
colds=(); warms=()
for _ in 1 2 3; do
  mnt_down; cold; mnt_up
  colds+=("$(secs ls -l "$HIST/")")
  for _ in $(seq 10); do warms+=("$(secs ls -l "$HIST/")"); done
done
say "versions of $FILE listed" "$(ls "$HIST" | wc -l)"
say "ls -l of its history, cold (median of 3)" "$(median "${colds[@]}") s"
say "ls -l of its history, warm (median of 30)" "$(median "${warms[@]}") s"
mnt_down; cold
t_chkfs=$(secs bash -c "$(declare -f mnt_up); CHKFS=$CHKFS WORK=$WORK; mnt_up && ls '$HIST/'")
say "chkfs: mount, then list the versions (cold)" "$t_chkfs s"

# ------------------------------------------------------------ changes
ids=($("$CHKFS" --repo "$WORK/repo" list --json | python3 -c 'import json,sys; print(" ".join(s["id"] for s in json.load(sys.stdin)[-2:]))'))
before=${ids[0]}; last=${ids[1]}
finds=(); diffs=()
for _ in 1 2 3; do
  mnt_down; mnt_up
  finds+=("$(secs find "$WORK/mnt/changes/$last")")
  mnt_down; mnt_up
  diffs+=("$(secs diff -qr --no-dereference "$WORK/mnt/snapshots/$before" "$WORK/mnt/snapshots/$last")")
done
changed=$(find "$WORK/mnt/changes/$last" -type f | wc -l)
reported=$(diff -qr --no-dereference "$WORK/mnt/snapshots/$before" "$WORK/mnt/snapshots/$last" | wc -l || true)
f=$(median "${finds[@]}"); d=$(median "${diffs[@]}")
say "files in changes/<id> / lines of diff -qr" "$changed / $reported"
say "find changes/<id>, fresh mount (median of 3)" "$f s"
say "diff -qr of the two snapshot directories, fresh mount" "$d s"
say "ratio" "$(echo "scale=4; $f / $d" | bc -l)x"
mnt_down

# ------------------------------------------------------------ borg
if [ "$BORG" = 1 ]; then
  cold
  t0=$(date +%s.%N)
  borg mount -o versions "$WORK/borg" "$WORK/bmnt"
  ls "$WORK/bmnt/src/$FILE" > "$WORK/borg-versions"
  t1=$(date +%s.%N)
  umount "$WORK/bmnt"
  say "borg mount -o versions, then list the versions (cold)" "$(echo "$t1 - $t0" | bc -l) s ($(wc -l < "$WORK/borg-versions") versions)"
  say "borg / chkfs" "$(echo "scale=1; ($t1 - $t0) / $t_chkfs" | bc -l)x"
fi
