#!/usr/bin/env python3
"""How faithfully a restored tree matches its source, as one short note.

fidelity.py SOURCE RESTORED

Compares every entry: presence, type, content, symlink target, mode,
owner, mtime (files and symlinks; directories separately) and hard links
(files linked together in the source must be linked together in the copy).
Prints "exact (N entries)" or a list of what differs, with an example path.
"""
import os, stat, sys
from collections import defaultdict


def scan(root):
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            out[os.path.relpath(p, root)] = os.lstat(p)
    return out


def same_content(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


src, dst = sys.argv[1], sys.argv[2]
a, b = scan(src), scan(dst)
diffs = defaultdict(list)
for rel, sa in a.items():
    sb = b.get(rel)
    if sb is None:
        diffs["missing"].append(rel)
        continue
    if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
        diffs["type differs"].append(rel)
        continue
    if stat.S_ISREG(sa.st_mode) and (sa.st_size != sb.st_size or not same_content(os.path.join(src, rel), os.path.join(dst, rel))):
        diffs["content differs"].append(rel)
    if stat.S_ISLNK(sa.st_mode) and os.readlink(os.path.join(src, rel)) != os.readlink(os.path.join(dst, rel)):
        diffs["symlink target differs"].append(rel)
    if not stat.S_ISLNK(sa.st_mode) and stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
        diffs["modes lost"].append(rel)
    if (sa.st_uid, sa.st_gid) != (sb.st_uid, sb.st_gid):
        diffs["owners lost"].append(rel)
    if sa.st_mtime_ns != sb.st_mtime_ns:
        diffs["dir mtimes lost" if stat.S_ISDIR(sa.st_mode) else "mtimes lost"].append(rel)
extra = [rel for rel in b if rel not in a]
if extra:
    diffs["extra"] = extra
groups = defaultdict(list)
for rel, sa in a.items():
    if stat.S_ISREG(sa.st_mode) and sa.st_nlink > 1:
        groups[sa.st_ino].append(rel)
for rels in groups.values():
    if len(rels) > 1 and len({b[r].st_ino for r in rels if r in b}) > 1:
        diffs["hardlinks lost"].append(rels[0])
if not diffs:
    print(f"exact ({len(a)} entries)")
else:
    print("; ".join(f"{k} {len(v)}/{len(a)} (e.g. {sorted(v)[0]})" for k, v in diffs.items()))
