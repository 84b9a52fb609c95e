# Image section (sourced by benches/compare.sh): a disk image alone in a
# directory, saved as version 1 then version 2 (100 random 64 KiB regions
# rewritten, 64 MiB appended). Figures: save times, peak RSS of the v1
# save, and the bytes v2 adds against the bytes that changed (native).
# Repositories: $WORK/repo/image-*.

section_image() {
  rm -f "$WORK"/ids/image-*
  corpus_image
  image_place_v1
  log "image: $(du -h --apparent-size "$imgdir/disk.img" | cut -f1) ($(du -h "$imgdir/disk.img" | cut -f1) allocated; the ext4 part has holes)"
  cat "$imgdir/disk.img" > /dev/null
  record image.save-v1 native "$(timed "tar -cf - -C $imgdir . | lz4 -1 > /dev/null")" s
  note image.save-v1 native "tar -cf - | lz4 -1, one run"
  local t
  for t in "${TOOLS[@]}"; do log "image v1: $t"; attempt "$t image v1" image_save_v1 "$t"; done
  image_v2
  record image.added-v2 native "$IMAGE_CHANGED_BYTES" bytes
  note image.added-v2 native "changed bytes: 100 x 64 KiB rewritten + 64 MiB appended"
  for t in "${TOOLS[@]}"; do log "image v2: $t"; attempt "$t image v2" image_save_v2 "$t"; done
}

image_save_v1() {
  local t=$1 r; r=$(repo image "$t")
  run "$(cmd_init "$t" "$r")"
  cat "$imgdir/disk.img" > /dev/null
  measure "$(cmd_save "$t" "$r" "$imgdir")"
  record image.save-v1 "$t" "$M_SECS" s
  record image.rss-v1 "$t" "$M_RSS" bytes
  record image.size-v1 "$t" "$(bytes_of "$r")" bytes
  save_id "image-$t.v1" "$t" "$r" "$imgdir"
}

image_save_v2() {
  local t=$1 r before; r=$(repo image "$t")
  [ -s "$WORK/ids/image-$t.v1" ] || return 0
  before=$(bytes_of "$r")
  cat "$imgdir/disk.img" > /dev/null
  measure "$(cmd_save "$t" "$r" "$imgdir")"
  record image.save-v2 "$t" "$M_SECS" s
  record image.added-v2 "$t" "$(( $(bytes_of "$r") - before ))" bytes
  save_id "image-$t.v2" "$t" "$r" "$imgdir"
}
