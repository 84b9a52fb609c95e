#!/usr/bin/env python3
"""Time from starting a FUSE mount to its snapshot listing: prints the median.

mountready.py RUNS READY_DIR MOUNTPOINT STOP -- COMMAND...

Starts COMMAND (a mount that stays in the foreground), polls READY_DIR
every millisecond until listing it gives at least one entry, then stops the
mount (STOP: "term" sends SIGTERM, "fusermount" runs fusermount -u) and
waits until the process has exited and MOUNTPOINT is no longer mounted.
"""
import os, signal, statistics, subprocess, sys, time

runs, ready, mnt, stop = int(sys.argv[1]), sys.argv[2], os.path.realpath(sys.argv[3]), sys.argv[4]
cmd = sys.argv[sys.argv.index("--") + 1 :]


def mounted():
    with open("/proc/mounts") as f:
        return any(line.split()[1] == mnt for line in f)


def unmount(p):
    if stop == "term":
        p.send_signal(signal.SIGTERM)
    else:
        subprocess.run(["fusermount", "-u", mnt], stderr=subprocess.DEVNULL)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    for _ in range(3000):
        if not mounted():
            return
        time.sleep(0.01)
    subprocess.run(["fusermount", "-uz", mnt], stderr=subprocess.DEVNULL)


signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` unmounts
times = []
for _ in range(runs):
    if mounted():
        sys.exit(f"{mnt} is already mounted")
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                if os.listdir(ready):
                    break
            except OSError:
                pass
            if p.poll() is not None:
                sys.exit(f"mount exited with status {p.returncode}: {' '.join(cmd)}")
            if time.perf_counter() - t0 > 120:
                sys.exit("mount not ready after 120 s")
            time.sleep(0.001)
        times.append(time.perf_counter() - t0)
    finally:
        unmount(p)
print(statistics.median(times))
print("runs:", " ".join(f"{t:.4f}" for t in times), file=sys.stderr)
