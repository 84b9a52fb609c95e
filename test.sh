#!/usr/bin/env bash
# Runs every chkfs test, mount tests included. On a fresh Debian machine it
# first installs the tools the tests drive (as root), and unmounts anything
# a crashed earlier run left behind.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v setfattr >/dev/null || need+=(attr)
command -v fusermount3 >/dev/null || need+=(fuse3)
command -v setpriv >/dev/null && command -v flock >/dev/null || need+=(util-linux)
# Races and hostile-tree tests drive Debian's python3 and GNU time.
[ -x /usr/bin/python3 ] || need+=(python3)
[ -x /usr/bin/time ] || need+=(time)
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

cargo test --locked "$@"
