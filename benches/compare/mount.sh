# Mount section (sourced by benches/compare.sh): chkfs mount against
# restic mount and borg mount (when it works; chkpt has no mount) and
# native reads of the same data. Uses the repositories of the tree and
# image sections, plus repositories of a tiny directory saved 2 and $MANY
# times (kept in $WORK/repo/many-* between runs).
#
#   mount.ready-N    start of the mount to its snapshot listing, median of READY_RUNS
#   mount.find-*     find over the tree's v1 snapshot: warm (hyperfine), and
#                    cold (caches dropped, fresh mount, one run)
#   mount.cat-*      cat of the image (v1), first read after a fresh mount with
#                    the repository in the page cache; median of RUNS mounts
#   mount.rand-*     4 KiB random reads in the image, warm (randread.py)
#   mount.diff-r     diff -r between the tree's v1 and v2 snapshots
#   mount.rss-*      RssAnon and VmHWM of the mount process, max of the samples
#                    taken at the end of each figure

section_mount() {
  rm -f "$WORK"/log/rss-*
  local t mtools=()
  for t in "${TOOLS[@]}"; do
    case $t in
      chkfs|restic|borg) mtools+=("$t") ;;
      chkpt) note mount.ready-2 chkpt "chkpt has no mount" ;;
    esac
  done
  corpus_tiny
  for t in "${mtools[@]}"; do attempt "$t many-snapshot repositories" many_repos "$t"; done
  note "mount.ready-$MANY" "" "ready: repositories of a 10-file directory saved 2 and $MANY times; median of $READY_RUNS mounts"
  if [[ " ${mtools[*]} " == *" borg "* ]] && ! borg_mount_works; then
    mtools=("${mtools[@]/borg}")
  fi
  for t in ${mtools[@]+"${mtools[@]}"}; do
    [ -n "$t" ] || continue
    log "mount: $t"
    attempt "$t mount ready" mount_ready "$t"
    attempt "$t mount tree" mount_tree "$t"
    attempt "$t mount image" mount_image "$t"
    if [ -s "$WORK/log/rss-$t" ]; then
      record mount.rss-anon "$t" "$(awk '$1 > m { m = $1 } END { print m + 0 }' "$WORK/log/rss-$t")" bytes
      record mount.vmhwm "$t" "$(awk '$2 > m { m = $2 } END { print m + 0 }' "$WORK/log/rss-$t")" bytes
    fi
  done
  log "mount: native"
  attempt "native mount figures" mount_native
}

many_repos() { # a tiny directory saved 2 and $MANY times, one file changed each time
  local t=$1 n r key i
  for n in 2 "$MANY"; do
    r=$(repo "many$n" "$t")
    key="$n $(tool_version "$t")"
    [ -d "$r" ] && [ "$(cat "$r.key" 2>/dev/null)" = "$key" ] && continue
    log "mount: $t repository of $n snapshots"
    rm -f "$r.key"; run "$(cmd_init "$t" "$r")"
    for i in $(seq "$n"); do echo "$i" > "$tiny/counter"; run "$(cmd_save "$t" "$r" "$tiny")"; done
    echo "$key" > "$r.key"
  done
}
tool_version() {
  case $1 in chkfs) "$chkfs" --version ;; restic) restic version ;; borg) borg --version ;; esac 2>/dev/null | head -1
}

borg_mount_works() { # borg mount needs llfuse (or pyfuse3) for borg's own python
  local m="$WORK/mnt/borg" r; r=$(repo many2 borg)
  [ -d "$r" ] || return 1
  if mount_start borg "$r" "$m" 2>/dev/null; then mount_stop borg "$m"; return 0; fi
  warn "borg mount failed; trying apt-get install python3-llfuse"
  apt_install python3-llfuse || true
  if mount_start borg "$r" "$m" 2>/dev/null; then mount_stop borg "$m"; return 0; fi
  warn "borg mount does not work here (see $LOGF); borg skipped in the mount section"
  note mount.ready-2 borg "borg mount failed (python3-llfuse?)"
  return 1
}

mount_ready() {
  local t=$1 n m="$WORK/mnt/$1" stop=fusermount
  [ "$t" = chkfs ] && stop=term
  for n in 2 "$MANY"; do
    mount_argv "$t" "$(repo "many$n" "$t")" "$m"; mkdir -p "$m"
    record "mount.ready-$n" "$t" \
      "$(python3 "$bench/mountready.py" "$READY_RUNS" "$(ready_dir "$t" "$m")" "$m" "$stop" -- "${MARGV[@]}" 2>> "$LOGF")" s
  done
}

mount_tree() {
  local t=$1 m="$WORK/mnt/$1" r a b ra rb rc
  r=$(repo tree "$t")
  a=$(get_id "tree-$t.v1") && b=$(get_id "tree-$t.v2") || { warn "$t: no tree snapshots in $WORK; run the save section"; return 1; }
  ra=$(snap_root "$t" "$m" "$a" "$work"); rb=$(snap_root "$t" "$m" "$b" "$work")
  mount_start "$t" "$r" "$m"
  time_it mount.find-warm "$t" true "find $ra > /dev/null" --warmup 1
  set +e; diff -r "$ra" "$rb" > /dev/null 2>&1; rc=$?; set -e   # warm-up; 1 = differences found
  [ "$rc" -le 1 ] || { warn "$t: diff -r through the mount failed ($rc)"; return 1; }
  time_it mount.diff-r "$t" true "diff -r $ra $rb > /dev/null" -i
  sample_rss "$t"; mount_stop "$t" "$m"
  drop_caches
  mount_start "$t" "$r" "$m"
  record mount.find-cold "$t" "$(timed "find $ra > /dev/null")" s
  sample_rss "$t"; mount_stop "$t" "$m"
}

mount_image() {
  local t=$1 m="$WORK/mnt/$1" r i f k secs=() size p
  r=$(repo image "$t")
  i=$(get_id "image-$t.v1") || { warn "$t: no image snapshot in $WORK; run the image section"; return 1; }
  f=$(snap_root "$t" "$m" "$i" "$imgdir")/disk.img
  size=$(stat -c %s "$img_v1")
  for k in $(seq "$RUNS"); do
    warm "$r"
    mount_start "$t" "$r" "$m"
    secs+=("$(timed "cat $f > /dev/null")")
    sample_rss "$t"; mount_stop "$t" "$m"
  done
  p=$(printf '%s\n' "${secs[@]}" | median)
  record mount.cat-image "$t" "$p" s
  record mount.cat-gbps "$t" "$(awk -v s="$size" -v p="$p" 'BEGIN { printf "%.3f\n", s / p / 1e9 }')" GB/s
  warm "$r"
  mount_start "$t" "$r" "$m"
  randread "$t" "$f"
  sample_rss "$t"; mount_stop "$t" "$m"
}

randread() { # tool file: warm-up with other offsets, then 5000 reads
  python3 "$here/benches/randread.py" "$2" 200 9 > /dev/null
  local line; line=$(python3 "$here/benches/randread.py" "$2" 5000 1)
  echo "randread $1: $line" >> "$LOGF"
  record mount.rand-p50 "$1" "$(echo "$line" | awk '{ print $2 }')" us
  record mount.rand-p99 "$1" "$(echo "$line" | awk '{ print $5 }')" us
}

mount_native() {
  time_it mount.find-warm native true "find $tree > /dev/null" --warmup 1
  diff -r "$tree" "$mutated" > /dev/null 2>&1 || true
  time_it mount.diff-r native true "diff -r $tree $mutated > /dev/null" -i
  note mount.diff-r native "diff -r of the two trees on disk"
  drop_caches
  record mount.find-cold native "$(timed "find $tree > /dev/null")" s
  corpus_image
  local k secs=() p
  for k in $(seq "$RUNS"); do cat "$img_v1" > /dev/null; secs+=("$(timed "cat $img_v1 > /dev/null")"); done
  p=$(printf '%s\n' "${secs[@]}" | median)
  record mount.cat-image native "$p" s
  record mount.cat-gbps native "$(awk -v s="$(stat -c %s "$img_v1")" -v p="$p" 'BEGIN { printf "%.3f\n", s / p / 1e9 }')" GB/s
  note mount.cat-image native "cat of the image file from the page cache"
  randread native "$img_v1"
  # The target for the chkfs mount: RssAnon <= cache (default 256M) + 64 MiB.
  record mount.rss-anon native $(((256 + 64) * 1048576)) bytes
  note mount.rss-anon native "native column: the target, cache 256 MiB + 64 MiB"
}
