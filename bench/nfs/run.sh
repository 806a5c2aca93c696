#!/bin/sh
# Runs the NFS client workloads of bench/nfs against hanfsd, NFS-Ganesha and
# go-nfs's example server (osnfs), in one run, and prints in Markdown the
# machine, the raw `go test` output and a table with hanfsd/ganesha and
# hanfsd/go-nfs ratios (means when -test.count > 1). The write workloads run
# twice, once with UNSTABLE WRITEs and a COMMIT, once with FILE_SYNC WRITEs,
# each time the same way for every server.
#
#   bench/nfs/run.sh                          # from anywhere in the repository
#   bench/nfs/run.sh -nfs.stable=filesync     # extra arguments go to the test
#   bench/nfs/run.sh -test.count=2            # binary (see nfs_bench_test.go)
#
# Needs root: NFS-Ganesha is installed from the Debian packages when missing
# (../shared/tools/peers/start-ganesha.sh), and everything runs in a private
# network namespace (unshare -n) that has only a loopback interface, so that
# no server is reachable from outside, not even osnfs, which listens on the
# wildcard address. The hanfsd image (4 GiB, written with zeros first so that
# the host file system does not allocate blocks during the run, as a block
# device would not) and the peers' export directories are on the same file
# system, in a temporary directory under $HANFS_BENCH_DIR (default /var/tmp),
# removed at the end. About 6 GiB of free space are needed.
set -eu

if [ "${1:-}" != __inner ]; then
	self=$(cd "$(dirname "$0")" && pwd)/run.sh
	cd "$(dirname "$self")/../.."
	repo=$(pwd)
	peers=${HANFS_PEERS_DIR:-$repo/../shared/tools/peers}
	[ -x "$peers/start-ganesha.sh" ] || [ -f "$peers/start-ganesha.sh" ] || { echo "run.sh: $peers/start-ganesha.sh not found (set HANFS_PEERS_DIR)" >&2; exit 1; }
	[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (Ganesha, unshare -n)" >&2; exit 1; }
	if ! command -v ganesha.nfsd >/dev/null || ! command -v rpcbind >/dev/null || ! command -v gcc >/dev/null; then
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nfs-ganesha nfs-ganesha-vfs rpcbind gcc >/dev/null
	fi
	base=${HANFS_BENCH_DIR:-/var/tmp}
	work=$(mktemp -d "$base/hanfs-nfsbench.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	# Build everything before leaving the network (the module proxy may be needed for osnfs's dependencies).
	go build -o "$work/hanfsd" ./cmd/hanfsd
	gonfs=$(go list -m -f '{{.Dir}}' github.com/willscott/go-nfs)
	(cd "$gonfs" && go build -o "$work/osnfs" ./example/osnfs)
	go test -c -o "$work/nfsbench.test" ./bench/nfs
	trap - EXIT
	exec unshare -n sh "$self" __inner "$repo" "$peers" "$work" "$(go version)" "$(go list -m -f '{{.Version}}' github.com/willscott/go-nfs)" "$@"
fi

shift
repo=$1 peers=$2 work=$3 gover=$4 gonfsver=$5
shift 5
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do
		i=0
		while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
		kill -9 "$p" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ip link set lo up
# glibc's getaddrinfo with AI_ADDRCONFIG (Ganesha resolving Bind_addr) wants an
# IPv4 address other than 127.0.0.1; this one is on loopback too.
ip addr add 127.0.0.2/32 dev lo

waitport() { # waitport PORT NAME LOG
	i=0
	until ss -ltnH "sport = :$1" | grep -q LISTEN; do
		i=$((i + 1))
		if [ $i -gt 300 ]; then
			echo "run.sh: $2 did not listen on port $1; its log:" >&2
			cat "$3" >&2 || true
			exit 1
		fi
		sleep 0.1
	done
}

HANFS_PORT=20491 GANESHA_PORT=20490 GANESHA_MNT=20048 GONFS_PORT=20492

# hanfsd: a 4 GiB image, written in full before formatting.
dd if=/dev/zero of="$work/hanfs.img" bs=4M count=1024 oflag=direct status=none
"$work/hanfsd" format --disk "$work/hanfs.img" --size 4GiB >"$work/format.log"
"$work/hanfsd" serve --disk "$work/hanfs.img" --listen 127.0.0.1:$HANFS_PORT \
	--export "/ 127.0.0.0/8 rw,no_root_squash" >"$work/hanfsd.log" 2>&1 &
pids="$pids $!"
waitport $HANFS_PORT hanfsd "$work/hanfsd.log"

# NFS-Ganesha (VFS FSAL) exporting $work/ganesha/export.
bash "$peers/start-ganesha.sh" "$work/ganesha" $GANESHA_PORT $GANESHA_MNT >"$work/ganesha.start"
pids="$pids $(sed -n 's/^\(rpcbind\|ganesha\) pid \([0-9]*\).*/\2/p' "$work/ganesha.start" | tr '\n' ' ')"
waitport $GANESHA_PORT ganesha "$work/ganesha/ganesha.log"
waitport $GANESHA_MNT ganesha-mount "$work/ganesha/ganesha.log"

# go-nfs's example server over $work/gonfs (wildcard address, but this
# network namespace has only loopback).
mkdir -p "$work/gonfs"
"$work/osnfs" "$work/gonfs" $GONFS_PORT >"$work/osnfs.log" 2>&1 &
pids="$pids $!"
waitport $GONFS_PORT osnfs "$work/osnfs.log"

export HANFS_NFSBENCH_SERVERS="hanfsd|127.0.0.1:$HANFS_PORT|127.0.0.1:$HANFS_PORT|/ ganesha|127.0.0.1:$GANESHA_PORT|127.0.0.1:$GANESHA_MNT|/export go-nfs|127.0.0.1:$GONFS_PORT|127.0.0.1:$GONFS_PORT|/"

cmd="bench/nfs/run.sh"
[ $# -gt 0 ] && cmd="$cmd $*"
echo "## NFS run of $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "Command (from the repository root): \`$cmd\`"
echo
echo "Machine:"
echo
echo "- CPUs: $(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
echo "- Memory: $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "- Kernel: $(uname -sr)"
src=$(findmnt -n -o SOURCE -T "$work")
echo "- Image and export directories: $(dirname "$work") on $src ($(findmnt -n -o FSTYPE,OPTIONS -T "$work" | tr -s ' '))"
dev=$(basename "$src")
if [ -r "/sys/block/$dev/queue/rotational" ]; then
	echo "- Device $dev: rotational=$(cat "/sys/block/$dev/queue/rotational"), scheduler: $(cat "/sys/block/$dev/queue/scheduler" 2>/dev/null || echo unknown)"
fi
echo "- $gover; hanfs commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$([ -z "$(git -C "$repo" status --porcelain 2>/dev/null)" ] || echo ' (with uncommitted changes or untracked files)')"
echo "- Peers: $(ganesha.nfsd -v 2>&1 | head -n 1 | tr -s ' ') (Debian $(dpkg-query -W -f '${Version}' nfs-ganesha 2>/dev/null)), VFS FSAL; go-nfs $gonfsver example/osnfs"
load() {
	echo "load average $(cut -d' ' -f1-3 /proc/loadavg)$(sed -n 's/^some avg10=\([^ ]*\) avg60=\([^ ]*\).*/, I\/O pressure (some) avg10 \1% avg60 \2%/p' /proc/pressure/io 2>/dev/null)"
}
echo "- Before the run: $(load)"
out="$work/out"
status=0
(cd "$repo/bench/nfs" && "$work/nfsbench.test" -test.run '^$' -test.bench . -test.benchtime 1x -test.timeout 3h "$@") >"$out" 2>&1 || status=$?
echo "- After the run: $(load)"
echo
echo "Output:"
echo
echo '```'
grep -v -E '^(goos|goarch|pkg):' "$out"
echo '```'
if [ "$status" -ne 0 ] || grep -q -E '^(FAIL|--- FAIL)' "$out"; then
	echo "bench/nfs/run.sh: the benchmark failed (exit status $status)" >&2
	exit 1
fi
echo
echo "hanfsd against the peers (higher is better; ratio = hanfsd / peer):"
echo
awk '
/^BenchmarkNFS\// {
	name = $1
	sub(/-[0-9]+$/, "", name)
	split(name, f, "/")              # BenchmarkNFS workload[.mode] qdN server
	row = f[2] " " f[3]; srv = f[4]
	for (i = 3; i < NF; i += 2)
		if ($(i+1) ~ /\/s$|^IOPS$/) { sum[row, srv] += $i; cnt[row, srv]++; unit[row] = $(i+1) }
	if (!(row in seen)) { seen[row] = 1; order[++nr] = row }
}
function avg(r, s) { return cnt[r, s] ? sum[r, s] / cnt[r, s] : 0 }
END {
	print "| Workload | writes made durable by | in flight | hanfsd | ganesha | go-nfs | hanfsd/ganesha | hanfsd/go-nfs |"
	print "|---|---|---:|---:|---:|---:|---:|---:|"
	for (k = 1; k <= nr; k++) {
		r = order[k]; split(r, p, " "); u = unit[r]
		w = p[1]; mode = "(reads)"
		if (w ~ /\.unstable$/) mode = "UNSTABLE + COMMIT"
		if (w ~ /\.filesync$/) mode = "FILE_SYNC"
		sub(/\..*/, "", w)
		h = avg(r, "hanfsd"); g = avg(r, "ganesha"); o = avg(r, "go-nfs")
		printf "| %s | %s | %s | %.0f %s | %.0f %s | %.0f %s | %s | %s |\n", w, mode, substr(p[2], 3), h, u, g, u, o, u,
			(g > 0 ? sprintf("%.2f", h / g) : "-"), (o > 0 ? sprintf("%.2f", h / o) : "-")
	}
}' "$out"
awk '
/^BenchmarkDiskLimit\// {
	name = $1; sub(/-[0-9]+$/, "", name); split(name, f, "/")
	for (i = 3; i < NF; i += 2) if ($(i+1) == "IOPS") { sum[f[3]] += $i; cnt[f[3]]++ }
	if (!(f[3] in seen)) { seen[f[3]] = 1; order[++n] = f[3] }
}
END {
	if (n == 0) exit
	printf "\nThe disk itself, for durable 4 KiB random writes (O_DIRECT write + fdatasync per write into a file on the same file system, `BenchmarkDiskLimit`; no server whose every reply is durable can go faster):"
	for (k = 1; k <= n; k++) printf " %s %s in flight: %.0f IOPS%s", (k == 1 ? "" : ""), substr(order[k], 3), sum[order[k]] / cnt[order[k]], (k < n ? ";" : ".\n")
}' "$out"
