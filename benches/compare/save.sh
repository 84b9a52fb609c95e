# Tree section (sourced by benches/compare.sh): first save (warm page
# cache), repository size, no-change re-save, restore into an empty
# directory (with a fidelity check), then the mutated version applied in
# place with rsync and the bytes it adds. Repositories: $WORK/repo/tree-*.

section_save() {
  log "tree: $tree ($(find "$tree" -type f | wc -l) files, $(du -sh --apparent-size "$tree" | cut -f1))"
  rm -rf "$work" "$workc" "$out" "$WORK"/ids/tree-*
  cp -a "$tree" "$work"
  [[ " ${TOOLS[*]} " == *" chkpt "* ]] && cp -a "$tree" "$workc"
  sync
  tar -cf - -C "$work" . > /dev/null

  log "tree: native"
  time_it tree.first-save native true "tar -cf - -C $work . | lz4 -1 > /dev/null"
  record tree.repo-size native "$(tar -cf - -C "$work" . | lz4 -1 | wc -c)" bytes
  time_it tree.resave native true "find $work -printf '%s %T@\\n' > /dev/null"
  time_it tree.restore native "$(fresh_fs "$out")" "cp -a $work $out/tree"
  note tree.restore native "cp -a: $(python3 "$bench/fidelity.py" "$work" "$out/tree")"
  unmount_fresh "$out"

  local t
  for t in "${TOOLS[@]}"; do log "tree: $t"; attempt "$t tree v1" tree_v1 "$t"; done

  log "tree: applying the mutated version in place (rsync -a --delete)"
  rsync -a --delete "$mutated/" "$work/"
  if [ -d "$workc" ]; then rsync -a --delete "$tree/" "$workc/"; rsync -a --delete "$mutated/" "$workc/"; fi
  for t in "${TOOLS[@]}"; do attempt "$t tree v2" tree_v2 "$t"; done
}

tree_v1() {
  local t=$1 r src dst prep
  r=$(repo tree "$t"); src=$(src_tree "$t")
  time_it tree.first-save "$t" "$(cmd_init "$t" "$r")" "$(cmd_save "$t" "$r" "$src")"
  run "$(cmd_init "$t" "$r")"; run "$(cmd_save "$t" "$r" "$src")"
  save_id "tree-$t.v1" "$t" "$r" "$src"
  record tree.repo-size "$t" "$(bytes_of "$r")" bytes
  time_it tree.resave "$t" true "$(cmd_save "$t" "$r" "$src")"
  # chkpt restores its workspace in place: the fresh file system is
  # mounted over the workspace, which shows up again once it is unmounted.
  if [ "$t" = chkpt ]; then dst=$src; else dst=$out; fi
  time_it tree.restore "$t" "$(fresh_fs "$dst")" "$(cmd_restore "$t" "$r" "$dst")"
  note tree.restore "$t" "$(python3 "$bench/fidelity.py" "$tree" "$(restored_root "$t" "$dst" "$src")")"
  unmount_fresh "$dst"
}

tree_v2() {
  local t=$1 r src before
  r=$(repo tree "$t"); src=$(src_tree "$t")
  [ -s "$WORK/ids/tree-$t.v1" ] || return 0
  before=$(bytes_of "$r")
  record tree.save-v2 "$t" "$(timed "$(cmd_save "$t" "$r" "$src")")" s
  record tree.added-v2 "$t" "$(( $(bytes_of "$r") - before ))" bytes
  save_id "tree-$t.v2" "$t" "$r" "$src"
}
