# gc section (sourced by benches/compare.sh): a fresh repository per tool
# gets tree v1, tree v2, image v1, image v2; the older snapshot of each
# pair is forgotten, the page cache dropped, and the space reclaimed:
#   chkfs gc | restic forget + prune | borg delete + compact | chkpt delete
# Figures: wall time, peak RSS, bytes read from the disk (the process and
# its children, /proc/PID/io), bytes reclaimed. For chkfs the native column
# of "bytes read" is what gc has to read at least: the packs it rewrites
# (from gc --dry-run) plus the index and trees (what a cold `chkfs check`,
# which reads only those, reads). The repositories are deleted afterwards.

section_gc() {
  corpus_image
  local t
  for t in "${TOOLS[@]}"; do log "gc: $t"; attempt "$t gc" gc_tool "$t"; done
}

gc_tool() {
  local t=$1 r src before old all
  r=$(repo gc "$t"); src=$(src_tree "$t")
  mkdir -p "$src"
  run "$(cmd_init "$t" "$r")"
  rsync -a --delete "$tree/" "$src/"; run "$(cmd_save "$t" "$r" "$src")"
  rsync -a --delete "$mutated/" "$src/"; run "$(cmd_save "$t" "$r" "$src")"
  image_place_v1; run "$(cmd_save "$t" "$r" "$imgdir")"
  image_v2; run "$(cmd_save "$t" "$r" "$imgdir")"
  before=$(bytes_of "$r")
  if [ "$t" = chkpt ]; then  # one store per workspace
    old=("$(ids chkpt "$r" "$src" | head -1)" "$(ids chkpt "$r" "$imgdir" | head -1)")
  else
    all=($(ids "$t" "$r")); [ "${#all[@]}" -eq 4 ] || { warn "$t: expected 4 snapshots, found ${#all[@]}"; return 1; }
    old=("${all[0]}" "${all[2]}")
  fi
  case $t in
    chkfs)
      run "$chkfs --repo $r forget ${old[*]}"
      "$chkfs" --repo "$r" gc --dry-run --json > "$WORK/log/gc-plan.json" 2> "$WORK/log/gc-plan.txt"
      local rewritten=0 id trees binary
      for id in $(awk '$1 == "rewrite" && $2 == "pack" { print $3 }' "$WORK/log/gc-plan.txt"); do
        rewritten=$((rewritten + $(stat -c %s "$r/packs/${id:0:2}/$id.pack")))
      done
      drop_caches; measure "$chkfs --version"; binary=$M_READ
      drop_caches; measure "$chkfs --repo $r check"; trees=$M_READ
      drop_caches; measure "$chkfs --repo $r gc --json > $WORK/log/gc.json"
      record gc.read native $((rewritten + trees)) bytes
      note gc.read native "native column: what chkfs gc must read: rewritten packs $(mib $rewritten) + index and trees $(mib $trees) (a cold chkfs check; both include $(mib $binary) of the chkfs binary itself)"
      run "$chkfs --repo $r check" || note gc.time chkfs "check after gc FAILED"
      ;;
    restic) drop_caches; measure "restic -r $r forget ${old[*]} && restic -r $r prune" ;;
    borg) drop_caches; measure "borg delete $r ${old[*]} && borg compact $r" ;;
    chkpt) drop_caches; measure "cd $src && HOME=$r $chkpt delete ${old[0]} && cd $imgdir && HOME=$r $chkpt delete ${old[1]}" ;;
  esac
  case $t in
    chkfs) note gc.time chkfs "gc (after forget), default --max-waste 10%" ;;
    restic) note gc.time restic "forget + prune (default --max-unused 5%)" ;;
    borg) note gc.time borg "delete + compact" ;;
    chkpt) note gc.time chkpt "one delete (it runs its gc) per forgotten snapshot" ;;
  esac
  record gc.time "$t" "$M_SECS" s
  record gc.rss "$t" "$M_RSS" bytes
  record gc.read "$t" "$M_READ" bytes
  record gc.reclaimed "$t" $((before - $(bytes_of "$r"))) bytes
  rm -rf "$r"
}
