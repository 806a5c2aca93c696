# Guest side of TestKernelClientWorkloadSurvivesKill9 (busybox ash, cwd=/mnt,
# run by testdata/kclient/kclient). Every command is checked.
#
# Files (from --file): /kclient/files/src.tgz, a tarball of a source tree, and
# /kclient/files/src.sums, "sha256  path" for each of its regular files, sorted
# by path bytes, computed on the host.
# Env: MINSECS (default 0): repeat the untar/checksum/remove round until at least
# this many seconds have passed, so that a fast guest (KVM) is still working
# when the host kills the server.
#
# Markers for the host: UNTAR-START, SUM-START, RM-START (each round),
# WORKLOAD-DONE, and at the end HEARTBEAT (longest time a small write+read on
# the mount took, measured by a background loop) and WORKLOAD-OK.
set -u
set -o pipefail
MINSECS=${MINSECS:-0}
F=/kclient/files
now() { cut -d' ' -f1 /proc/uptime; }
el() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}'; }
die() { echo "WORKLOAD-FAIL: $*"; dmesg | grep -iE 'nfs|rpc' | tail -n 20; exit 1; }

[ -f $F/src.tgz ] && [ -f $F/src.sums ] || die "missing input files"
nfiles=$(wc -l < $F/src.sums) || die "wc src.sums"
W=/mnt/kc-work.$$
HB=/mnt/kc-heartbeat.$$
mkdir $W || die "mkdir $W"
mkdir $HB || die "mkdir $HB"

# Heartbeat: a tiny write+read on the mount every 0.2 s; its latency is the
# outage as this client sees it. It writes its results to /tmp/hb.*.
hb() {
  i=0; max=0; maxat=0; errs=0
  while [ ! -e /tmp/hb.stop ]; do
    t=$(now)
    if echo "hb $i" > $HB/f && [ "$(cat $HB/f)" = "hb $i" ]; then :; else
      errs=$((errs+1)); echo "HEARTBEAT-ERROR op=$i t=$t"; fi
    t2=$(now); lat=$(el $t $t2)
    if awk -v l=$lat 'BEGIN{exit !(l>1.0)}'; then echo "STALL start=$t end=$t2 lat=${lat}s"; fi
    if awk -v l=$lat -v m=$max 'BEGIN{exit !(l>m)}'; then max=$lat; maxat=$t; fi
    i=$((i+1))
    usleep 200000
  done
  echo "$i $max $maxat $errs" > /tmp/hb.result
}
hb &
hbpid=$!

t0=$(now)
round=0
while :; do
  round=$((round+1))
  D=$W/r$round
  mkdir $D || die "mkdir $D"
  t=$(now); echo "UNTAR-START round=$round t=$t files=$nfiles"
  tar -xzf $F/src.tgz -C $D || die "tar -xzf (round $round)"
  sync || die "sync"
  t1=$(now); echo "untar: $(el $t $t1)s"
  # Read back what the server has, not this client's page cache.
  echo 3 > /proc/sys/vm/drop_caches || die "drop_caches"
  echo "SUM-START round=$round t=$t1"
  (cd $D && find . -type f | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum) > /tmp/guest.sums \
    || die "checksumming (round $round)"
  t2=$(now); echo "checksum: $(el $t1 $t2)s"
  if ! diff $F/src.sums /tmp/guest.sums > /tmp/sums.diff; then
    head -n 40 /tmp/sums.diff
    die "checksums differ from the host's (round $round)"
  fi
  got=$(find $D | wc -l) || die "find (round $round)"
  echo "RM-START round=$round t=$t2 entries=$got"
  rm -rf $D || die "rm -rf $D (round $round)"
  [ ! -e $D ] || die "$D still exists after rm -rf"
  t3=$(now); echo "remove: $(el $t2 $t3)s"
  awk -v a=$t0 -v b=$t3 -v m=$MINSECS 'BEGIN{exit !(b-a>=m)}' && break
done
rmdir $W || die "rmdir $W"
echo "WORKLOAD-DONE rounds=$round t=$(now) total=$(el $t0 $(now))s"

touch /tmp/hb.stop
wait $hbpid
[ -f /tmp/hb.result ] || die "heartbeat loop left no result"
read hbops hbmax hbmaxat hberrs < /tmp/hb.result
rm -rf $HB || die "rm -rf $HB"
echo "HEARTBEAT ops=$hbops max_latency=${hbmax}s at=$hbmaxat errors=$hberrs"
echo "client kernel log:"
dmesg | grep -iE 'nfs|rpc' | tail -n 20
[ "$hberrs" = 0 ] || die "$hberrs heartbeat operations failed"
left=$(ls -A /mnt | grep '^kc-' || true)
[ -z "$left" ] || die "left behind in /mnt: $left"
echo "WORKLOAD-OK"
