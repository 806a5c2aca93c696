# Guest side of the kernel-client failover drill (test/kclient_failover_test.go):
# for DUR seconds, write small files with fsync and read each back over a hard
# mount, while the host fails the primary over; report every operation that
# stalled more than 1 s, and fail on any error or mismatch.
DUR=${DUR:-45}
now() { cut -d' ' -f1 /proc/uptime; }
D=/mnt/drill.$$; mkdir -p $D || exit 1
start=$(now); end=$(awk -v s=$start -v d=$DUR 'BEGIN{print s+d}')
i=0; errs=0; maxlat=0
echo "LOOP-START t=$start"
while :; do
  t=$(now); awk -v t=$t -v e=$end 'BEGIN{exit !(t>=e)}' && break
  echo "payload $i $(date +%s)" > /tmp/p
  if dd if=/tmp/p of=$D/f$i conv=fsync 2>/dev/null && cmp -s /tmp/p $D/f$i; then :; else
    errs=$((errs+1)); echo "ERROR op=$i t=$(now)"; fi
  t2=$(now)
  lat=$(awk -v a=$t -v b=$t2 'BEGIN{printf "%.2f", b-a}')
  if awk -v l=$lat 'BEGIN{exit !(l>1.0)}'; then echo "STALL op=$i started=$t resumed=$t2 lat=${lat}s"; fi
  maxlat=$(awk -v l=$lat -v m=$maxlat 'BEGIN{print (l>m)?l:m}')
  i=$((i+1))
done
n=$(ls $D | wc -l)
echo "SUMMARY ops=$i errors=$errs files_listed=$n max_op_latency=${maxlat}s"
[ $errs = 0 ] && [ $n = $i ] && echo DRILL-OK
