#!/usr/bin/env python3
"""4 KiB random reads: prints p50/p99/max latency in microseconds.

randread.py FILE [COUNT] [SEED]
"""
import os, random, sys, time

path = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
fd = os.open(path, os.O_RDONLY)
size = os.fstat(fd).st_size
lat = []
for _ in range(count):
    off = rng.randrange(0, size - 4096) & ~4095
    t = time.perf_counter_ns()
    data = os.pread(fd, 4096, off)
    lat.append((time.perf_counter_ns() - t) / 1000)
    assert len(data) == 4096
lat.sort()
print(f"p50 {lat[len(lat) // 2]:.1f} us  p99 {lat[int(len(lat) * 0.99)]:.1f} us  max {lat[-1]:.1f} us  ({count} reads)")
