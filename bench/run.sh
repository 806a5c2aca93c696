#!/bin/sh
# Runs the store-vs-raw-disk benchmarks once and prints, in Markdown, the
# machine, the raw `go test` output and the store/raw ratio table.
#
#   bench/run.sh                 # from anywhere in the repository
#   HANFS_BENCH_DIR=/mnt/x bench/run.sh -count 3
#
# Extra arguments go to `go test` (with -count N the table shows the mean).
# The 4 GiB image is created under $HANFS_BENCH_DIR (default /var/tmp), which
# must be on a file system that supports O_DIRECT (not tmpfs); the test
# unlinks it as soon as it is open.
set -eu

cd "$(dirname "$0")/.."
dir=${HANFS_BENCH_DIR:-/var/tmp}
export HANFS_BENCH_DIR="$dir"
out=$(mktemp)
trap 'rm -f "$out"' EXIT

cmd="go test -run '^\$' -bench . -benchtime 2x ./bench/"
[ $# -gt 0 ] && cmd="$cmd $*"

echo "## Run of $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "Command (from the repository root):"
echo
echo '```'
if [ "$dir" = /var/tmp ]; then echo "$cmd"; else echo "HANFS_BENCH_DIR=$dir $cmd"; fi
echo '```'
echo
echo "Machine:"
echo
echo "- CPUs: $(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
echo "- Memory: $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "- Kernel: $(uname -sr)"
src=$(findmnt -n -o SOURCE -T "$dir")
echo "- Image directory: $dir on $src ($(findmnt -n -o FSTYPE,OPTIONS -T "$dir" | tr -s ' '))"
dev=$(basename "$src")
if [ -r "/sys/block/$dev/queue/rotational" ]; then
	echo "- Device $dev: rotational=$(cat /sys/block/$dev/queue/rotational), scheduler: $(cat /sys/block/$dev/queue/scheduler 2>/dev/null || echo unknown)"
fi
echo "- $(go version)"
dirty=$(git status --porcelain 2>/dev/null | head -n 1)
echo "- Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)${dirty:+ (plus uncommitted or untracked files)}"
echo

load() {
	echo "load average $(cut -d' ' -f1-3 /proc/loadavg)$(sed -n 's/^some avg10=\([^ ]*\) avg60=\([^ ]*\).*/, I\/O pressure (some) avg10 \1% avg60 \2%/p' /proc/pressure/io 2>/dev/null)"
}
echo "- Before the run: $(load)"
status=0
sh -c "$cmd" >"$out" 2>&1 || status=$?
echo "- After the run: $(load) (other work on the machine makes the numbers noisy)"
echo

echo "Output:"
echo
echo '```'
grep -v -E '^(goos|goarch|pkg):' "$out"
echo '```'
if [ "$status" -ne 0 ] || grep -q FAIL "$out"; then
	echo "bench/run.sh: go test failed (exit status $status)" >&2
	exit 1
fi
echo
echo "Store vs raw (higher is better; ratio = store / raw; with -count N, means):"
echo
awk '
/^Benchmark/ {
	name = $1
	sub(/-[0-9]+$/, "", name)          # GOMAXPROCS suffix
	side = name; sub(/.*\//, "", side)   # raw or store
	pair = name; sub(/\/[^\/]*$/, "", pair)
	sub(/^Benchmark/, "", pair)
	val = ""; unit = ""; fl = ""
	for (i = 3; i < NF; i += 2) {
		if ($(i+1) == "MB/s" || $(i+1) == "files/s" || $(i+1) == "IOPS") { val = $i; unit = $(i+1) }
		if ($(i+1) ~ /^flushes\//) { fl = $i; flunit = $(i+1) }
	}
	if (val == "") next
	if (!(pair in seen)) { seen[pair] = 1; order[++np] = pair }
	sum[pair, side] += val; cnt[pair, side]++
	units[pair] = unit
	if (fl != "") { fls[pair, side] += fl; fln[pair, side]++; flu[pair] = flunit }
}
END {
	print "| Benchmark | raw | store | store/raw | flushes (raw / store) |"
	print "|---|---:|---:|---:|---|"
	for (k = 1; k <= np; k++) {
		p = order[k]
		if (!cnt[p, "raw"] || !cnt[p, "store"]) continue
		r = sum[p, "raw"] / cnt[p, "raw"]; s = sum[p, "store"] / cnt[p, "store"]
		f = "-"
		if (flu[p] != "") f = sprintf("%.3g / %.3g %s", fls[p, "raw"] / fln[p, "raw"], fls[p, "store"] / fln[p, "store"], flu[p])
		printf "| %s | %.0f %s | %.0f %s | %.2f | %s |\n", p, r, units[p], s, units[p], s / r, f
	}
	hdr = 0
	for (k = 1; k <= np; k++) {
		p = order[k]
		if (!cnt[p, "store-inplace"] || !cnt[p, "store"]) continue
		if (!hdr) {
			print ""
			print "Journaled small writes (the default) vs data written at its home (store-inplace: JournaledWriteBlocks -1), same run:"
			print ""
			print "| Benchmark | in place | journaled | journaled / in place |"
			print "|---|---:|---:|---:|"
			hdr = 1
		}
		a = sum[p, "store-inplace"] / cnt[p, "store-inplace"]; s = sum[p, "store"] / cnt[p, "store"]
		printf "| %s | %.0f %s | %.0f %s | %.2f |\n", p, a, units[p], s, units[p], s / a
	}
}' "$out"
