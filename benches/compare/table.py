#!/usr/bin/env python3
"""Prints the comparison table: one row per figure, one column per tool,
then chkfs/other ratios and footnote numbers; the notes follow.

table.py RESULTS.csv NOTES.csv
RESULTS rows: figure,tool,value,unit (unit: s, bytes, GB/s, us).
NOTES rows: figure,tool,note (figure empty: a note on the tool).
"""
import csv, sys

LABELS = {
    "tree.first-save": "tree: first save, warm",
    "tree.repo-size": "tree: repo size after 1st save",
    "tree.resave": "tree: no-change re-save",
    "tree.restore": "tree: restore to empty dir",
    "tree.save-v2": "tree: save of mutated version",
    "tree.added-v2": "tree: bytes added by mutated",
    "image.save-v1": "image: save v1",
    "image.rss-v1": "image: save v1 peak RSS",
    "image.size-v1": "image: repo size after v1",
    "image.save-v2": "image: save v2",
    "image.added-v2": "image: bytes added by v2",
    "mount.find-warm": "mount: find tree, warm",
    "mount.find-cold": "mount: find tree, cold",
    "mount.cat-image": "mount: cat image, 1st read",
    "mount.cat-gbps": "mount: cat image, 1st read",
    "mount.rand-p50": "mount: 4K random read p50",
    "mount.rand-p99": "mount: 4K random read p99",
    "mount.diff-r": "mount: diff -r v1 v2, warm",
    "mount.rss-anon": "mount: RssAnon max",
    "mount.vmhwm": "mount: VmHWM max",
    "shapes.ls-first-man1": "shapes: ls -l man1 (18k), first",
    "shapes.ls-again-man1": "shapes: ls -l man1 (18k), again",
    "shapes.ls-first-20k": "shapes: ls -l 20k dir, first",
    "shapes.ls-again-20k": "shapes: ls -l 20k dir, again",
    "shapes.ls-first-100k": "shapes: ls -l 100k dir, first",
    "shapes.ls-again-100k": "shapes: ls -l 100k dir, again",
    "shapes.ls-first-1M": "shapes: ls -l 1M dir, first",
    "shapes.ls-again-1M": "shapes: ls -l 1M dir, again",
    "shapes.lsR-usr": "shapes: ls -laR /usr, warm",
    "shapes.tar-usr": "shapes: tar /usr to a pipe, warm",
    "shapes.cat-20k": "shapes: cat 20k files, 1st read",
    "shapes.rss-anon": "shapes: mount RssAnon max",
    "gc.time": "gc: time, cold cache",
    "gc.rss": "gc: peak RSS",
    "gc.read": "gc: bytes read from disk",
    "gc.reclaimed": "gc: bytes reclaimed",
}
UNITS = {"s": "s", "bytes": "MiB", "GB/s": "GB/s", "us": "µs"}
TOOLS = ["native", "chkfs", "restic", "borg", "chkpt"]


def label(fig):
    if fig.startswith("mount.ready-"):
        return f"mount: ready, {fig.split('-', 1)[1]} snapshots"
    return LABELS.get(fig, fig)


def fmt(v):
    a = abs(v)
    return f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 1 else f"{v:.3f}"


rows = list(csv.DictReader(open(sys.argv[1])))
notes = list(csv.reader(open(sys.argv[2]))) if len(sys.argv) > 2 else []
present = {r["tool"] for r in rows}
tools = [t for t in TOOLS if t in present]
others = [t for t in ["native", "restic", "borg", "chkpt"] if t in present]
ORDER = list(LABELS)
ORDER.insert(ORDER.index("mount.find-warm"), "mount.ready")
seen = list(dict.fromkeys(r["figure"] for r in rows))
figures = sorted(seen, key=lambda f: (ORDER.index(f.rsplit("-", 1)[0] if f.startswith("mount.ready-") else f)
                                      if (f in ORDER or f.startswith("mount.ready-")) else len(ORDER), seen.index(f)))
val, unit = {}, {}
for r in rows:
    try:
        v = float(r["value"])
    except ValueError:
        continue
    val[(r["figure"], r["tool"])] = v / 2**20 if r["unit"] == "bytes" else v
    unit[r["figure"]] = UNITS.get(r["unit"], r["unit"])

footnotes, marks = [], {}
for fig, tool, text in notes:
    key = f"{tool}: {text}" if tool else text
    if key not in footnotes:
        footnotes.append(key)
    marks.setdefault(fig, []).append(str(footnotes.index(key) + 1))

W = 31
head = f"{'figure':{W}}{'unit':>5}" + "".join(f"{t:>9}" for t in tools)
head += "".join(f"{'c/' + o[:6]:>10}" for o in others) + "  notes"
print(head)
print("-" * len(head))
for fig in figures:
    line = f"{label(fig):{W}}{unit[fig]:>5}"
    for t in tools:
        v = val.get((fig, t))
        line += f"{'':>9}" if v is None else f"{fmt(v):>9}"
    c = val.get((fig, "chkfs"))
    for o in others:
        v = val.get((fig, o))
        line += f"{'':>10}" if c is None or not v else f"{fmt(c / v) + 'x':>10}"
    line += "  " + ",".join(dict.fromkeys(marks.get(fig, [])))
    print(line.rstrip())
print()
print("c/X = chkfs / X (for GB/s higher is better, for everything else lower is better).")
for i, text in enumerate(footnotes, 1):
    print(f"[{i}] {text}")
