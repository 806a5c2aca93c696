#!/usr/bin/env bash
# lab-writer.sh [DIR]: a writer for failover drills on an NFS client.
#
# Writes 256 KiB files under DIR (default /mnt/hanfs) in a loop, each with
# content that depends on its sequence number, fsyncs every one, reads it back
# and compares. Prints a line every 5 seconds, and one for every operation that
# took longer than a second (a failover: on a hard mount the client waits and
# retries, so the writer sees a pause, not an error). Stops at the first error
# or mismatch with a non-zero exit; Ctrl-C prints a summary.
set -euo pipefail

dir=${1:-/mnt/hanfs}/lab-writer-$(hostname)
size=262144
mkdir -p "$dir"

ops=0
longest=0
started=$(date +%s%N)
last_report=$started

ms() { echo $((($2 - $1) / 1000000)); }
summary() {
	echo "lab-writer: $ops files written, fsynced and verified; longest pause ${longest} ms"
}
trap 'summary; exit 0' INT TERM

content() { yes "hanfs lab-writer sequence $1" | head -c "$size" || true; }

echo "lab-writer: writing to $dir (Ctrl-C stops)"
while :; do
	f=$dir/f$((ops % 16))
	t0=$(date +%s%N)
	if ! content "$ops" | dd of="$f.tmp" bs=64k conv=fsync status=none; then
		echo "lab-writer: ERROR writing $f.tmp after $ops operations" >&2
		exit 1
	fi
	if ! mv -f "$f.tmp" "$f"; then
		echo "lab-writer: ERROR renaming $f.tmp after $ops operations" >&2
		exit 1
	fi
	if ! cmp -s <(content "$ops") "$f"; then
		echo "lab-writer: MISMATCH: $f does not hold sequence $ops" >&2
		exit 1
	fi
	t1=$(date +%s%N)
	d=$(ms "$t0" "$t1")
	ops=$((ops + 1))
	if ((d > longest)); then longest=$d; fi
	if ((d > 1000)); then
		echo "lab-writer: $(date +%T) one write+fsync+rename+verify took ${d} ms (a failover?)"
	fi
	if (($(ms "$last_report" "$t1") >= 5000)); then
		echo "lab-writer: $(date +%T) $ops ops, $(((ops * 1000) / ($(ms "$started" "$t1") + 1))) ops/s, longest pause ${longest} ms"
		last_report=$t1
	fi
done
