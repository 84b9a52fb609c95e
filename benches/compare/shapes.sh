# Shapes section (sourced by benches/compare.sh): the chkfs mount on real
# directory shapes against the same command on the source, in the same
# run. The corpus: a whole /usr, /usr/share/man (man1: ~18,000 entries)
# and generated directories of 20,000 (small files with content),
# 100,000 and 1,000,000 (empty files) entries with realistic names
# (kept in $WORK/corpus/shapes between runs). One repository holds them.
#
#   shapes.ls-first-NAME  ls -l of the largest directory: the mount fresh
#                         (repository in the page cache), natively after
#                         dropping dentries and inodes; one run each
#   shapes.ls-again-NAME  the same, repeated (hyperfine)
#   shapes.lsR-usr        ls -laR of the /usr snapshot, warm
#   shapes.tar-usr        tar cf - . of the /usr snapshot to a pipe, warm
#   shapes.cat-20k        cat of every file of the 20,000-file directory
#                         (find -exec cat, which visits it by inode number):
#                         the mount fresh, natively warm
#   shapes.rss-anon       RssAnon of the mount, max over the figures above
#                         (native column: the target, 256 MiB + 64 MiB)

shapes_corpus() {
  local c="$WORK/corpus/shapes"
  [ -f "$c/.done" ] && return 0
  log "generating the shapes corpus in $c"
  rm -rf "$c"; mkdir -p "$c"
  python3 - "$c" <<'EOF'
import os, random, sys
random.seed(1)
words = ["alpha", "beta", "gamma", "delta", "report", "image", "backup", "config",
         "data", "log", "test", "module", "index", "cache", "thumb"]
exts = ["txt", "jpg", "json", "gz", "py", "html"]
for n in (20000, 100000, 1000000):
    d = os.path.join(sys.argv[1], f"d{n}", "dir")
    os.makedirs(d)
    for i in range(n):
        name = f"{random.choice(words)}_{random.choice(words)}-{i:07d}.{random.choice(exts)}"
        fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT, 0o644)
        if n == 20000:
            os.write(fd, (f"file {i}\n" * (1 + i % 200)).encode())
        os.close(fd)
EOF
  touch "$c/.done"
}

# shapes_dirs: "name source-dir dir-inside-the-snapshot" lines.
shapes_dirs() {
  local c="$WORK/corpus/shapes"
  echo "man1 /usr/share/man man1"
  echo "20k $c/d20000 dir"
  echo "100k $c/d100000 dir"
  echo "1M $c/d1000000 dir"
}

# Samples the mount's memory every 0.2 s while it runs (a sample at the
# end of a figure would miss a peak in the middle of it).
shapes_mount() { # repo mountpoint
  mount_start chkfs "$1" "$2"
  ( while kill -0 "$MPID" 2>/dev/null; do sample_rss shapes; sleep 0.2; done ) &
}

section_shapes() {
  shapes_corpus
  local r="$WORK/repo/shapes-chkfs" m="$WORK/mnt/shapes" name src sub id usr_id
  rm -f "$WORK/log/rss-shapes"
  run "rm -rf $r && $chkfs init $r"
  declare -A ids
  while read -r name src sub; do
    run "$chkfs --repo $r save $src"
    ids[$name]=$("$chkfs" --repo "$r" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
  done < <(shapes_dirs)
  run "$chkfs --repo $r save /usr"
  usr_id=$("$chkfs" --repo "$r" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
  warm "$r"

  while read -r name src sub; do
    id=${ids[$name]}
    shapes_mount "$r" "$m"
    record "shapes.ls-first-$name" chkfs "$(timed "ls -l $m/snapshots/$id/$sub > /dev/null")" s
    time_it "shapes.ls-again-$name" chkfs true "ls -l $m/snapshots/$id/$sub"
    mount_stop chkfs "$m"
    record "shapes.ls-first-$name" native "$(timed "sync; echo 2 > /proc/sys/vm/drop_caches; ls -l $src/$sub > /dev/null")" s
    time_it "shapes.ls-again-$name" native true "ls -l $src/$sub"
  done < <(shapes_dirs)

  shapes_mount "$r" "$m"
  local usr="$m/snapshots/$usr_id"
  time_it shapes.lsR-usr chkfs true "ls -laR $usr" --warmup 1
  time_it shapes.tar-usr chkfs true "tar cf - -C $usr . | cat > /dev/null" --warmup 1
  mount_stop chkfs "$m"
  warm /usr
  time_it shapes.lsR-usr native true "ls -laR /usr" --warmup 1
  time_it shapes.tar-usr native true "tar cf - -C /usr . | cat > /dev/null" --warmup 1

  id=${ids[20k]}
  shapes_mount "$r" "$m"
  record shapes.cat-20k chkfs "$(timed "find $m/snapshots/$id/dir -type f -exec cat {} + > /dev/null")" s
  mount_stop chkfs "$m"
  warm "$WORK/corpus/shapes/d20000"
  time_it shapes.cat-20k native true "find $WORK/corpus/shapes/d20000/dir -type f -exec cat {} + > /dev/null"

  record shapes.rss-anon chkfs "$(awk '$1 > m { m = $1 } END { print m + 0 }' "$WORK/log/rss-shapes")" bytes
  record shapes.rss-anon native $(((256 + 64) * 1048576)) bytes
  note shapes.rss-anon native "native column: the target, cache 256 MiB + 64 MiB"
}
