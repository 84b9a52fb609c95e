# Helpers for benches/compare.sh (sourced): logging, results, timing,
# per-tool command adapters, mounts and cleanup.
#
# Globals set by the driver: here, bench, WORK, RUNS, chkfs, chkpt, CSV,
# NOTES, LOGF, tree, work, workc, mutated, imgdir, out.
# Paths are assumed to contain no spaces (WORK, TREE).

log() { printf '== [%4ds] %s\n' "$SECONDS" "$*" | tee -a "$LOGF" >&2; }
warn() { printf 'note: %s\n' "$*" >&2; printf 'note: %s\n' "$*" >> "$LOGF"; }
have() { command -v "$1" >/dev/null 2>&1; }

# ------------------------------------------------------------------ results
record() { # figure tool value unit; an empty value (a failed measurement) is an error
  [ -n "$3" ] || { warn "no value for $1 $2"; return 1; }
  printf '%s,%s,%s,%s\n' "$1" "$2" "$3" "$4" >> "$CSV"
}
note() { # figure tool text  (figure "" = a general note on the tool)
  local text=${3//\"/\'}
  printf '%s,%s,"%s"\n' "$1" "$2" "$text" >> "$NOTES"
}
bytes_of() { du -sb "$1" | cut -f1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB\n", b / 1048576 }'; }

# ------------------------------------------------------------------ install
apt_updated=
apt_install() { # package
  [ "$(id -u)" -eq 0 ] && have apt-get || return 1
  if [ -z "$apt_updated" ]; then apt-get update -qq >> "$LOGF" 2>&1 || true; apt_updated=1; fi
  log "installing $1"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >> "$LOGF" 2>&1
}
install_pkg() { # command package: true when the command is (now) available
  have "$1" || apt_install "$2" || true
  have "$1"
}

# ------------------------------------------------------------------ running
run() { bash -c "$1" >> "$LOGF" 2>&1; }  # a command string, output to the log
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
warm() { find "$@" -type f -exec cat {} + > /dev/null; }  # page-cache a file or tree

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Wall seconds of one run of a command string.
timed() {
  sync
  local t0=$EPOCHREALTIME
  run "$1" || return 1
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f\n", b - a }'
}

# One run of a command string, measured: sets M_SECS (wall), M_RSS (peak RSS
# of the largest process, bytes) and M_READ (bytes read from the disk by it
# and its children: /proc/PID/io of a shell counts the children it reaped).
measure() {
  sync
  local io="$WORK/log/io.txt" tf="$WORK/log/time.txt" t0=$EPOCHREALTIME
  /usr/bin/time -f '%M' -o "$tf" sh -c "{ $1 ; } >>'$LOGF' 2>&1; rc=\$?; cat /proc/\$\$/io > '$io'; exit \$rc" || return 1
  M_SECS=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f\n", b - a }')
  M_RSS=$(( $(tail -1 "$tf") * 1024 ))
  M_READ=$(awk '/^read_bytes/ { print $2 }' "$io")
}

# hyperfine median of a command string: time_it FIGURE TOOL PREPARE COMMAND [hyperfine args]
time_it() {
  local fig=$1 tool=$2 prep=$3 cmd=$4; shift 4
  echo "hyperfine: $cmd" >> "$LOGF"
  # sync: no run pays for the writeback of what ran before it.
  hyperfine --runs "$RUNS" --style none --output null "$@" --prepare "$prep && sync" \
    --export-json "$WORK/log/hf.json" "$cmd" >> "$LOGF" 2>&1 || return 1
  record "$fig" "$tool" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$WORK/log/hf.json")" s
}

# Runs "$@" in a subshell with errexit on (set -e is ignored inside a
# function called from `||`, so failures are caught here instead); a tool
# that fails is noted and skipped, the run goes on.
attempt() { # label command...
  local label=$1 rc; shift
  set +e; ( set -e; "$@" ); rc=$?; set -e
  case $rc in 130|143) exit "$rc" ;; esac  # interrupted: stop the run (the EXIT trap cleans up)
  if [ "$rc" -ne 0 ]; then
    warn "$label failed (exit $rc); skipped, see $LOGF"
    note "" "${label%% *}" "$label failed (exit $rc)"
    cleanup_mounts
  fi
  return 0
}

# ------------------------------------------------------------------ tools
# Every tool is driven through command strings, so hyperfine runs them as
# they are. REPO for chkpt is the HOME it runs with: its stores live in
# $HOME/.chkpt/stores/<hash of the workspace path>, one per workspace.
repo() { echo "$WORK/repo/$1-$2"; }  # section tool
src_tree() { [ "$1" = chkpt ] && echo "$workc" || echo "$work"; }  # chkpt restores in place: own copy

cmd_init() { # tool repo
  case $1 in
    chkfs) echo "rm -rf $2 && $chkfs init $2" ;;
    restic) echo "rm -rf $2 && restic init -q -r $2" ;;
    borg) echo "rm -rf $2 && borg init -e none $2" ;;
    chkpt) echo "rm -rf $2 && mkdir -p $2" ;;
  esac
}
cmd_save() { # tool repo source-dir
  case $1 in
    chkfs) echo "$chkfs --repo $2 save $3" ;;
    restic) echo "restic -q -r $2 backup $3" ;;
    borg) echo "borg create --compression lz4 $2::{now:%Y-%m-%dT%H:%M:%S.%f} $3" ;;
    chkpt) echo "cd $3 && HOME=$2 $chkpt save --include-deps" ;;
  esac
}
cmd_restore() { # tool repo out-dir (chkpt: its emptied workspace) [snapshot]
  local id=${4:-$(last_id "$1" "$2" "$3")}
  case $1 in
    chkfs) echo "$chkfs --repo $2 restore $id $3" ;;
    restic) echo "restic -q -r $2 restore $id --target $3" ;;
    borg) echo "cd $3 && borg extract $2::$id" ;;
    chkpt) echo "cd $3 && HOME=$2 $chkpt restore $id" ;;
  esac
}
restored_root() { # tool out-dir source-dir: where the restored tree lands
  case $1 in
    restic) echo "$2$3" ;;
    borg) echo "$2/${3#/}" ;;
    *) echo "$2" ;;
  esac
}
ids() { # tool repo [workspace for chkpt]: snapshot ids, oldest first
  case $1 in
    chkfs) "$chkfs" --repo "$2" list --json | python3 -c 'import json,sys; [print(s["id"]) for s in json.load(sys.stdin)]' ;;
    restic) restic -r "$2" snapshots --json | python3 -c 'import json,sys; [print(s["short_id"]) for s in sorted(json.load(sys.stdin), key=lambda s: s["time"])]' ;;
    borg) borg list --short "$2" ;;
    chkpt) (cd "$3" && HOME="$2" "$chkpt" list --full | awk '$1 ~ /^[0-9a-f]+-/ { print $1 }' | tac) ;;
  esac
}
last_id() { # tool repo [workspace]
  case $1 in
    chkpt) echo latest ;;
    *) ids "$@" | tail -1 ;;
  esac
}
save_id() { mkdir -p "$WORK/ids"; ids "$2" "$3" "${4:-}" | tail -1 > "$WORK/ids/$1"; }  # name tool repo [ws]
get_id() { [ -s "$WORK/ids/$1" ] && cat "$WORK/ids/$1"; }  # name

# ------------------------------------------------------------------ mounts
mount_argv() { # tool repo mountpoint -> MARGV (runs in the foreground)
  case $1 in
    chkfs) MARGV=("$chkfs" mount "$2" "$3") ;;
    restic) MARGV=(restic -r "$2" mount "$3") ;;
    borg) MARGV=(borg mount -f "$2" "$3") ;;
  esac
}
ready_dir() { [ "$1" = borg ] && echo "$2" || echo "$2/snapshots"; }  # tool mountpoint
snap_root() { # tool mountpoint snapshot source-dir: the snapshot's root in the mount
  case $1 in
    chkfs) echo "$2/snapshots/$3" ;;
    restic) echo "$2/ids/$3$4" ;;   # restic mount: ids/<short id>/<absolute source path>
    borg) echo "$2/$3/${4#/}" ;;    # borg mount: <archive>/<source path without the leading />
  esac
}
mount_start() { # tool repo mountpoint: starts the mount, waits until ready; sets MPID
  mkdir -p "$3"
  mount_argv "$1" "$2" "$3"
  "${MARGV[@]}" >> "$LOGF" 2>&1 &
  MPID=$!; echo "$MPID" >> "$WORK/log/pids"
  local i=0 ready; ready=$(ready_dir "$1" "$3")
  until [ -n "$(ls -A "$ready" 2>/dev/null)" ]; do
    if ! kill -0 "$MPID" 2>/dev/null || [ $((i += 1)) -gt 12000 ]; then
      warn "$1 mount of $2 did not become ready"; mount_stop "$1" "$3"; return 1
    fi
    sleep 0.005
  done
}
mount_stop() { # tool mountpoint
  if [ "$1" = chkfs ]; then kill -TERM "$MPID" 2>/dev/null || true
  else fusermount -u "$2" 2>/dev/null || kill -TERM "$MPID" 2>/dev/null || true; fi
  wait "$MPID" 2>/dev/null || true
  if is_mounted "$2"; then fusermount -uz "$2" 2>/dev/null || umount -l "$2" 2>/dev/null || true; fi
}
# From /proc/mounts: stat (mountpoint, test -d) fails on a FUSE mount whose
# process died, and such a mount must still be unmounted.
is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }
sample_rss() { # tool: RssAnon and VmHWM (bytes) of the running mount process
  awk '/^RssAnon|^VmHWM/ { v[$1] = $2 * 1024 } END { print v["RssAnon:"], v["VmHWM:"] }' \
    "/proc/$MPID/status" >> "$WORK/log/rss-$1" 2>/dev/null || true
}
# A command string that mounts a new empty file system on DIR (restores are
# timed into one; see freshfs.sh), sized for the tree.
fresh_fs() { # dir
  local mib=$(( $(du -sm --apparent-size "$tree" | cut -f1) * 3 + 1024 ))
  echo "sh $bench/freshfs.sh $1 $mib"
}
unmount_fresh() { # dir
  while grep -qs " $(realpath -m "$1") " /proc/mounts; do umount "$1"; done
  rm -f "${1%/}.img"
}

cleanup_mounts() { # every mount under $WORK (FUSE and restore file systems), and the mount processes we started
  local m p
  for m in $(awk -v p="$WORK/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r); do
    echo "cleanup: unmounting $m" >> "$LOGF"
    fusermount -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  if [ -f "$WORK/log/pids" ]; then
    for p in $(cat "$WORK/log/pids"); do
      grep -qs "$WORK/mnt" "/proc/$p/cmdline" && kill -TERM "$p" 2>/dev/null || true
    done
    : > "$WORK/log/pids"
  fi
}
