#!/bin/sh
# freshfs.sh DIR MIB: mounts a new, empty ext4 file system of MIB MiB (a
# sparse loop image, DIR.img) on DIR, replacing whatever was mounted there.
#
# Restores are timed into a fresh file system: on a file system where a
# large tree was just deleted, ext4 spends seconds skipping the recently
# freed inodes (without a journal it avoids reusing them for a while), and
# whoever restores second pays for the restore deleted before it.
set -eu
dir=$1 mib=$2 img="${1%/}.img"
while grep -qs " $(realpath -m "$dir") " /proc/mounts; do umount "$dir"; done
rm -f "$img"
mkdir -p "$dir"
truncate -s "${mib}M" "$img"
mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1 "$img"
mount -o loop "$img" "$dir"
rmdir "$dir/lost+found"
