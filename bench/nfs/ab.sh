#!/bin/bash
# A/B comparison of two hanfsd versions on the NFS workloads of bench/nfs:
# builds `hanfsd` at two git revisions, then, ROUNDS times, for each of them
# in turn: formats a 4 GiB image (written in full once, before the first
# round), starts `hanfsd serve` on 127.0.0.1, runs the bench client against
# it, and stops it. Alternating the two in one run keeps the machine's drift
# (other load, the host's disk cache) from favouring either.
#
#   bench/nfs/ab.sh REV_A REV_B [ROUNDS] [-- BENCH ARGS...]
#   bench/nfs/ab.sh HEAD~1 HEAD 2 -- -test.bench 'NFS/(randwrite|smallfiles)' -nfs.stable filesync
#
# The client is the bench binary of the working tree. Output: one line per
# workload and run, "REV workload value unit". The image lives under
# $HANFS_BENCH_DIR (default /var/tmp) and is removed at the end. Servers
# listen on 127.0.0.1:20591 (NFS and MOUNT) only.
set -euo pipefail

[ $# -ge 2 ] || { sed -n '2,15p' "$0" >&2; exit 2; }
a=$1 b=$2
shift 2
rounds=2
if [ $# -gt 0 ] && [ "$1" != -- ]; then rounds=$1; shift; fi
[ "${1:-}" = -- ] && shift
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(-test.bench 'NFS/(randwrite|smallfiles)')

repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${HANFS_BENCH_DIR:-/var/tmp}/hanfs-ab.XXXXXX")
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	for rev in a b; do git -C "$repo" worktree remove --force "$work/src-$rev" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

for rev in a b; do
	r=${!rev}
	git -C "$repo" worktree add --detach -q "$work/src-$rev" "$r"
	(cd "$work/src-$rev" && go build -o "$work/hanfsd-$rev" ./cmd/hanfsd)
done
(cd "$repo" && go test -c -o "$work/nfsbench.test" ./bench/nfs)
dd if=/dev/zero of="$work/hanfs.img" bs=4M count=1024 oflag=direct status=none

port=20591
for ((i = 1; i <= rounds; i++)); do
	for rev in a b; do
		"$work/hanfsd-$rev" format --disk "$work/hanfs.img" --size 4GiB --force >/dev/null
		"$work/hanfsd-$rev" serve --disk "$work/hanfs.img" --listen 127.0.0.1:$port \
			--export "/ 127.0.0.0/8 rw,no_root_squash" >"$work/hanfsd.log" 2>&1 &
		pid=$!
		for _ in $(seq 100); do
			grep -q "serving NFS" "$work/hanfsd.log" && break
			kill -0 $pid 2>/dev/null || { cat "$work/hanfsd.log" >&2; exit 1; }
			sleep 0.1
		done
		(cd "$repo/bench/nfs" && HANFS_NFSBENCH_SERVERS="hanfsd|127.0.0.1:$port|127.0.0.1:$port|/" \
			"$work/nfsbench.test" -test.run '^$' -test.benchtime 1x "${args[@]}") |
			awk -v rev="${!rev}" '/^Benchmark/ { for (i = 3; i < NF; i++) if ($(i+1) ~ /^(IOPS|files\/s|MiB\/s)$/) print rev, $1, $i, $(i+1) }'
		kill $pid
		wait $pid 2>/dev/null || true
		pid=
	done
done
