#!/usr/bin/env python3
"""A soak of chkfs: everything at once, for a while, counting wrong bytes.

    benches/soak.py --chkfs target/release/chkfs --duration 600 [--seed-tree /usr/share/doc]
        [--hosts 4] [--repo s3://BUCKET/PREFIX]   (S3: AWS_* in the environment)

Runs, concurrently, until the duration is up:
  * one save loop per host (--hosts, each saving its own copy of the tree
    with --host hN), on a tree that changes between saves (files edited,
    added, removed); after each save it records what the snapshot holds
    (SHA-256 of every file), taken from the source between saves;
  * four readers hashing random files of random snapshots through a live
    mount and comparing with what that snapshot held;
  * a forget + gc loop (keeps the newest few snapshots);
  * a restore loop, comparing every restored file;
  * a check loop (every other one with --read-data).
A read of a snapshot that a concurrent forget removed is not an error;
anything else that fails or differs is. Prints one JSON line of counts;
exits 1 if any wrong byte or unexpected failure was seen.
"""

import argparse, hashlib, json, os, random, shutil, subprocess, sys, tempfile, threading, time

stats = {"reads": 0, "bytes_read": 0, "saves": 0, "gc_runs": 0, "forgets": 0, "restores": 0, "restores_of_forgotten": 0,
         "restored_files": 0, "checks": 0, "wrong_bytes": 0, "read_errors": 0, "failures": 0}
lock = threading.Lock()
manifests = {}  # snapshot id -> {relative path: sha256}
problems = []


def count(key, n=1):
    with lock:
        stats[key] += n


def problem(msg):
    with lock:
        problems.append(msg)
        stats["failures"] += 1
    print("soak: " + msg, file=sys.stderr, flush=True)


def run(args, timeout=600):
    return subprocess.run(args, capture_output=True, timeout=timeout)


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest(), None
            h.update(b)


def snapshot_of(src):
    out = {}
    for d, _, files in os.walk(src):
        for name in files:
            p = os.path.join(d, name)
            if not os.path.islink(p):
                out[os.path.relpath(p, src)] = sha(p)[0]
    return out


def mutate(src, rng, round_):
    files = [os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs if not os.path.islink(os.path.join(d, f))]
    for p in rng.sample(files, min(len(files), 5)):
        action = rng.random()
        if action < 0.4:
            with open(p, "ab") as f:
                f.write(os.urandom(rng.randrange(1, 200_000)))
        elif action < 0.7:
            with open(p, "wb") as f:
                f.write(os.urandom(rng.randrange(0, 300_000)))
        elif len(files) > 50:
            os.remove(p)
    d = os.path.join(src, "gen", str(round_ % 20))
    os.makedirs(d, exist_ok=True)
    for i in range(rng.randrange(1, 6)):
        with open(os.path.join(d, "f%d-%d" % (round_, i)), "wb") as f:
            f.write(os.urandom(rng.randrange(0, 500_000)) if rng.random() < 0.5 else b"text %d\n" % round_ * 500)


def live_ids(c, repo):
    r = run([c, "--repo", repo, "list", "--json"])
    if r.returncode != 0:
        problem("list failed: " + r.stderr.decode(errors="replace"))
        return set()
    return {s["id"] for s in json.loads(r.stdout)}


def save_loop(c, repo, src, host, stop):
    rng, round_ = random.Random(host), 0
    while not stop.is_set():
        round_ += 1
        mutate(src, rng, round_)
        held = snapshot_of(src)
        r = run([c, "--repo", repo, "save", "--json", "--host", "h%d" % host, src])
        if r.returncode != 0:
            problem("save failed: " + r.stderr.decode(errors="replace"))
            continue
        with lock:
            manifests[json.loads(r.stdout)["id"]] = held
        count("saves")


def pick(rng):
    with lock:
        if not manifests:
            return None
        sid = rng.choice(list(manifests))
        files = manifests[sid]
        return (sid, None) if not files else (sid, rng.choice(list(files.items())))


def reader(mnt, seed, stop):
    rng = random.Random(seed)
    while not stop.is_set():
        got = pick(rng)
        if got is None or got[1] is None:
            time.sleep(0.05)
            continue
        sid, (rel, want) = got
        path = os.path.join(mnt, "snapshots", sid, rel)
        try:
            have, _ = sha(path)
            size = os.path.getsize(path)
        except FileNotFoundError:
            continue  # forgotten meanwhile
        except OSError as e:
            if not os.path.isdir(os.path.join(mnt, "snapshots", sid)):
                continue
            count("read_errors")
            problem("read %s:%s: %s" % (sid, rel, e))
            continue
        count("reads")
        count("bytes_read", size)
        if have != want:
            count("wrong_bytes")
            problem("WRONG BYTES in %s:%s" % (sid, rel))


def gc_loop(c, repo, stop):
    while not stop.wait(3):
        r = run([c, "--repo", repo, "forget", "--keep-last", "6"])
        if r.returncode != 0:
            problem("forget failed: " + r.stderr.decode(errors="replace"))
        count("forgets")
        r = run([c, "--repo", repo, "gc", "--max-waste", "5", "--grace", "0s"])
        if r.returncode != 0:
            problem("gc failed: " + r.stderr.decode(errors="replace"))
        count("gc_runs")
        alive = live_ids(c, repo)
        with lock:
            for sid in [s for s in manifests if s not in alive]:
                del manifests[sid]


def restore_loop(c, repo, work, stop):
    rng = random.Random(7)
    while not stop.wait(0.5):
        got = pick(rng)
        if got is None:
            continue
        sid = got[0]
        out = tempfile.mkdtemp(dir=work)
        r = run([c, "--repo", repo, "restore", sid, out])
        if r.returncode != 0:
            # Forgotten (and collected) while it was being restored.
            gone = b"no snapshot matches" in r.stderr or sid not in live_ids(c, repo)
            if gone:
                count("restores_of_forgotten")
            else:
                problem("restore %s failed: %s" % (sid, r.stderr.decode(errors="replace")))
        else:
            count("restores")
            with lock:
                held = dict(manifests.get(sid, {}))
            for rel, want in held.items():
                count("restored_files")
                if sha(os.path.join(out, rel))[0] != want:
                    count("wrong_bytes")
                    problem("WRONG BYTES restored in %s:%s" % (sid, rel))
        shutil.rmtree(out, ignore_errors=True)


def check_loop(c, repo, stop):
    n = 0
    while not stop.wait(1):
        n += 1
        args = [c, "--repo", repo, "check"] + (["--read-data"] if n % 2 else [])
        r = run(args)
        count("checks")
        if r.returncode != 0:
            problem("check failed (%d): %s" % (r.returncode, r.stderr.decode(errors="replace")[-2000:]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chkfs", default="target/release/chkfs")
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--seed-tree", default="/usr/share/doc")
    ap.add_argument("--work", default=None)
    ap.add_argument("--hosts", type=int, default=1)
    ap.add_argument("--repo", default=None, help="default: a new local repository in the work directory")
    a = ap.parse_args()
    c = os.path.abspath(a.chkfs)
    work = a.work or tempfile.mkdtemp(prefix="chkfs-soak-")
    repo = a.repo or os.path.join(work, "repo")
    mnt = os.path.join(work, "mnt")
    os.makedirs(mnt)
    srcs = [os.path.join(work, "src%d" % i) for i in range(a.hosts)]
    for src in srcs:
        shutil.copytree(a.seed_tree, src, symlinks=True, ignore_dangling_symlinks=True)
    run([c, "init", repo]).check_returncode()
    stop = threading.Event()
    for i, src in enumerate(srcs):
        first = run([c, "--repo", repo, "save", "--json", "--host", "h%d" % i, src])
        first.check_returncode()
        manifests[json.loads(first.stdout)["id"]] = snapshot_of(src)
    mount = subprocess.Popen([c, "--repo", repo, "mount", mnt], stderr=open(os.path.join(work, "mount.log"), "w"))
    for _ in range(600):
        if os.path.isdir(os.path.join(mnt, "snapshots")):
            break
        time.sleep(0.05)
    threads = [threading.Thread(target=save_loop, args=(c, repo, src, i, stop)) for i, src in enumerate(srcs)]
    threads += [threading.Thread(target=gc_loop, args=(c, repo, stop)),
               threading.Thread(target=restore_loop, args=(c, repo, work, stop)),
               threading.Thread(target=check_loop, args=(c, repo, stop))]
    threads += [threading.Thread(target=reader, args=(mnt, i, stop)) for i in range(4)]
    started = time.time()
    for t in threads:
        t.start()
    try:
        stop.wait(a.duration)
    finally:
        stop.set()
        for t in threads:
            t.join()
        mount.terminate()
        try:
            mount.wait(20)
        except subprocess.TimeoutExpired:
            mount.kill()
        subprocess.run(["umount", "-l", mnt], capture_output=True)
    final = run([c, "--repo", repo, "check", "--read-data"])
    if final.returncode != 0:
        problem("final check: " + final.stderr.decode(errors="replace"))
    stats["seconds"] = round(time.time() - started)
    stats["snapshots_kept"] = len(live_ids(c, repo))
    print(json.dumps(stats))
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if stats["wrong_bytes"] or stats["failures"] else 0)


if __name__ == "__main__":
    main()
