#!/usr/bin/env bash
# chkfs against restic, borg and native tools on the same data, in the
# same run. Prints one table (figure x tool, with ratios) and writes the
# raw numbers to $WORK/results.csv.
#
# benches/compare.sh [TREE]
#   TREE defaults to the Linux source tree of Debian's linux-source-6.1.
#   Needs root for apt-get (hyperfine, lz4, restic, borgbackup are
#   installed when missing) and for dropping the page cache.
#
# Covered so far: first save (warm), repository size, no-change re-save,
# restore into an empty directory, bytes added by a mutated version of the
# tree (1% of files edited in the middle, 200 added, 200 deleted, one
# directory renamed, applied in place with rsync so unchanged files keep
# inode and ctime). Tools that cannot be installed are skipped with a note.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/var/tmp/chkfs-compare}
RUNS=${RUNS:-3}
mkdir -p "$WORK"
export RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes

install() { # command package
  command -v "$1" >/dev/null && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1 || true
  fi
  command -v "$1" >/dev/null
}
install hyperfine hyperfine; install lz4 lz4; install rsync rsync
tools=(chkfs)
install restic restic && tools+=(restic) || echo "note: restic not installable; skipped"
install borg borgbackup && tools+=(borg) || echo "note: borg not installable; skipped"

cargo build --release --manifest-path "$here/Cargo.toml" >&2
chkfs="$here/target/release/chkfs"

# ---------------------------------------------------------------- corpus
tree=${1:-}
if [ -z "$tree" ]; then
  tree="$WORK/linux"
  if [ ! -d "$tree" ]; then
    install xz xz-utils
    [ -f /usr/src/linux-source-6.1.tar.xz ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-source-6.1 >/dev/null
    mkdir -p "$tree" && tar -xf /usr/src/linux-source-6.1.tar.xz -C "$tree" --strip-components=1
  fi
fi
tree=$(realpath "$tree")
work="$WORK/work" mutated="$WORK/mutated"
rm -rf "$work" "$mutated"
cp -a "$tree" "$work"; cp -a "$tree" "$mutated"
python3 - "$mutated" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(42)
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if not os.path.islink(os.path.join(d, f)))
for p in rng.sample(files, len(files) // 100):
    data = open(p, "rb").read()
    open(p, "wb").write(data[: len(data) // 2] + b"/* mutated */" + data[len(data) // 2 :])
for p in rng.sample(files, 200):
    if os.path.exists(p): os.remove(p)
for i in range(200):
    with open(os.path.join(root, f"added-{i}.txt"), "wb") as f: f.write(os.urandom(rng.randrange(100, 20000)))
dirs = sorted(d for d, _, _ in os.walk(root) if d != root)
src = rng.choice(dirs); os.rename(src, src + "-renamed")
PY
echo "corpus: $tree ($(find "$tree" -type f | wc -l) files, $(du -sh --apparent-size "$tree" | cut -f1))"

csv="$WORK/results.csv"; echo "figure,tool,value,unit" > "$csv"
record() { echo "$1,$2,$3,$4" >> "$csv"; }
median() { python3 -c "import json,sys,statistics; print(statistics.median(json.load(open(sys.argv[1]))['results'][0]['times']))" "$1"; }
time_it() { # figure tool prepare command
  hyperfine --runs "$RUNS" --prepare "$3" --export-json "$WORK/h.json" "$4" >/dev/null
  record "$1" "$2" "$(median "$WORK/h.json")" s
}

# One small script per tool and action, so hyperfine runs plain commands.
repo() { echo "$WORK/repo-$1"; }
script() { printf '#!/bin/sh\nexport RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes\n%s\n' "$2" > "$WORK/$1.sh"; }
script init-chkfs "rm -rf $(repo chkfs) && $chkfs init $(repo chkfs) 2>/dev/null"
script save-chkfs "$chkfs --repo $(repo chkfs) save $work >/dev/null 2>&1"
script restore-chkfs "$chkfs --repo $(repo chkfs) restore latest $WORK/out >/dev/null 2>&1"
script init-restic "rm -rf $(repo restic) && restic init -q -r $(repo restic) >/dev/null"
script save-restic "restic -q -r $(repo restic) backup $work >/dev/null 2>&1"
script restore-restic "restic -q -r $(repo restic) restore latest --target $WORK/out >/dev/null 2>&1"
script init-borg "rm -rf $(repo borg) && borg init -e none $(repo borg) 2>/dev/null"
script save-borg "borg create --compression lz4 $(repo borg)::s-\$(date +%s%N) $work >/dev/null 2>&1"
script restore-borg "cd $WORK/out && borg extract $(repo borg)::\$(borg list --last 1 --short $(repo borg)) >/dev/null 2>&1"

tar -cf - -C "$work" . > /dev/null
time_it first-save native "true" "tar -cf - -C $work . | lz4 -1 > /dev/null"
record repo-size native "$(tar -cf - -C "$work" . | lz4 -1 | wc -c)" bytes
time_it no-change-save native "true" "find $work -printf '%s %T@\\n' > /dev/null"
for t in "${tools[@]}"; do
  time_it first-save "$t" "sh $WORK/init-$t.sh" "sh $WORK/save-$t.sh"
  sh "$WORK/init-$t.sh"; sh "$WORK/save-$t.sh"
  record repo-size "$t" "$(du -sb "$(repo "$t")" | cut -f1)" bytes
  time_it no-change-save "$t" "true" "sh $WORK/save-$t.sh"
  time_it restore "$t" "rm -rf $WORK/out && mkdir -p $WORK/out" "sh $WORK/restore-$t.sh"
done
# The mutated version, applied in place.
rsync -a --delete "$mutated/" "$work/"
for t in "${tools[@]}"; do
  before=$(du -sb "$(repo "$t")" | cut -f1)
  sh "$WORK/save-$t.sh"
  record bytes-added-mutated "$t" "$(( $(du -sb "$(repo "$t")" | cut -f1) - before ))" bytes
done

python3 - "$csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
figures = list(dict.fromkeys(r["figure"] for r in rows))
tools = list(dict.fromkeys(r["tool"] for r in rows))
val = {(r["figure"], r["tool"]): float(r["value"]) for r in rows}
print(f"{'figure':24}" + "".join(f"{t:>14}" for t in tools) + "   chkfs/native  chkfs/restic  chkfs/borg")
for f in figures:
    line = f"{f:24}"
    for t in tools:
        v = val.get((f, t))
        unit = next(r["unit"] for r in rows if r["figure"] == f)
        line += f"{'':>14}" if v is None else (f"{v:>13.3f}s" if unit == "s" else f"{v/2**20:>11.1f}MiB")
    c = val.get((f, "chkfs"))
    for other in ["native", "restic", "borg"]:
        o = val.get((f, other))
        line += f"{'':>14}" if (c is None or not o) else f"{c/o:>13.2f}x"
    print(line)
PY
echo "raw numbers: $csv"
