package test

// End-to-end tests of high availability (issue 4, invariants 1, 2, 4, 9 and
// 10 of DESIGN.md): two real `hanfsd serve` processes on one image file,
// sharing one service address, with a hard-mount NFS client
// (nfs/client) running a workload that records every acknowledged write.
// The failures are real: kill -9, SIGSTOP/SIGCONT, a disk that stops
// answering (--test-stall-file). Every node logs each file-system write with
// its epoch and CLOCK_MONOTONIC times (--test-write-log); the merged logs
// prove that two nodes never wrote at the same time.

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanfs/hanfs/cmd/hanfsd/soak"
	"github.com/hanfs/hanfs/fencing"
	"github.com/hanfs/hanfs/shareddisk"
)

// TestHAKill9Failover: kill -9 of the primary under a workload. The backup
// serves within 3 s, no client call fails, every acknowledged write reads
// back through the old handles, and the killed node rejoins as backup.
func TestHAKill9Failover(t *testing.T) {
	c := haNewCluster(t, 1, 2)
	c.startPair(1)
	cl, root := haDial(t, c.service)
	probe, proot := haDial(t, c.service)
	w := haStartWorkload(t, cl, root, "kill", 4)
	w.waitOps(150, 10*time.Second)

	killAt := time.Now()
	c.nodes[1].kill()
	// A call issued after the kill can only be answered by the new primary.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err := probe.Getattr(ctx, proot)
	cancel()
	served := time.Since(killAt)
	if err != nil {
		t.Fatalf("getattr after the kill: %v", err)
	}
	t.Logf("kill -9 of the primary -> first successful reply: %v", served.Round(time.Millisecond))
	if served > 3*time.Second {
		t.Errorf("failover took %v, want at most 3s", served)
	}
	if st, err := c.nodes[2].status(); err != nil || st.Role != "primary" {
		t.Errorf("node 2 after the failover: %+v %v", st, err)
	}
	w.waitOps(150, 10*time.Second)
	w.finish()
	w.verify(cl)
	t.Logf("workload client: %+v", cl.Stats())

	// The killed node comes back as a backup and stays one.
	c.nodes[1].start()
	c.nodes[1].waitRole("backup", 10*time.Second)
	time.Sleep(time.Second)
	if st, err := c.nodes[1].status(); err != nil || st.Role != "backup" {
		t.Errorf("restarted node 1: %+v %v, want backup", st, err)
	}
	if p := c.primaries(); len(p) != 1 || p[0] != 2 {
		t.Errorf("primaries after the restart: %v, want [2]", p)
	}
	haCheckOneWriter(t, []string{c.nodes[1].writeLog, c.nodes[2].writeLog})
}

// TestHASigstopPrimary: the primary is stopped (SIGSTOP) for three lease
// periods. The backup takes over; the old primary, continued, writes nothing
// more, closes its clients and rejoins as backup.
func TestHASigstopPrimary(t *testing.T) {
	c := haNewCluster(t, 1, 2)
	c.startPair(1)
	cl, root := haDial(t, c.service)
	w := haStartWorkload(t, cl, root, "stop", 4)
	w.waitOps(150, 10*time.Second)

	stopAt := time.Now()
	c.nodes[1].signal(syscall.SIGSTOP)
	// SIGSTOP is delivered asynchronously: as in the soak, the window starts
	// once every thread is seen stopped (writes that started before and were
	// inside the kernel then are excused).
	inKernel := haStoppedWrites(t, c.nodes[1].pid())
	stopMono := haMono()
	t.Logf("node 1 stopped inside %d file writes", len(inKernel))
	took := c.nodes[2].waitRole("primary", 3*haLeasePeriod).Sub(stopAt)
	t.Logf("SIGSTOP of the primary -> node 2 primary after %v", took.Round(time.Millisecond))
	time.Sleep(time.Until(stopAt.Add(3 * haLeasePeriod)))
	contMono := haMono()
	c.nodes[1].signal(syscall.SIGCONT)

	c.nodes[1].waitLog(5*time.Second, "stopped serving NFS")
	c.nodes[1].waitRole("backup", 5*time.Second)
	w.waitOps(150, 15*time.Second)
	w.finish()
	w.verify(cl)
	t.Logf("workload client: %+v", cl.Stats())

	ws := haReadWriteLogs(t, c.nodes[1].writeLog, c.nodes[2].writeLog)
	per := haCheckOneWriter(t, []string{c.nodes[1].writeLog, c.nodes[2].writeLog},
		soak.Pause{Node: 1, Start: stopMono, End: contMono, InKernel: inKernel})
	var durs []int64
	for _, wr := range ws {
		durs = append(durs, wr.end-wr.start)
	}
	slices.Sort(durs)
	if len(durs) > 0 {
		t.Logf("writes per epoch: %v; write duration median %v, p99 %v", per,
			time.Duration(durs[len(durs)/2]), time.Duration(durs[len(durs)*99/100]))
	}
	// Node 1 may write again only if it legitimately became primary again
	// (a higher epoch, which the checks below forbid here); with its old
	// epoch it must never write after waking.
	var held uint64
	for _, wr := range ws {
		if wr.node == 1 && wr.start < stopMono && wr.epoch > held {
			held = wr.epoch
		}
	}
	late := 0
	for _, wr := range ws {
		if wr.node == 1 && wr.epoch <= held && wr.start >= contMono {
			if late++; late <= 5 {
				t.Errorf("node 1 wrote with its old epoch %d after SIGCONT: [%d,%d) %.3f ms after", wr.epoch, wr.off, wr.off+wr.n,
					float64(wr.start-contMono)/1e6)
			}
		}
	}
	if c.nodes[2].logHas("lease lost") {
		t.Errorf("the new primary lost its lease after the old one woke up")
	}
	if p := c.primaries(); len(p) != 1 || p[0] != 2 {
		t.Errorf("primaries at the end: %v, want [2]", p)
	}
}

// TestHADiskStall: the primary's disk stops answering for longer than the
// lease. The primary fences itself, the backup takes over, the write logs
// show one writer at a time; when the disk answers again, the old primary
// rejoins as backup.
func TestHADiskStall(t *testing.T) {
	c := haNewCluster(t, 1, 2)
	c.startPair(1)
	cl, root := haDial(t, c.service)
	w := haStartWorkload(t, cl, root, "stall", 4)
	w.waitOps(150, 10*time.Second)

	n1 := c.nodes[1]
	if err := os.WriteFile(n1.stallFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	stallAt := time.Now()
	// The lease gate closes at the renewal deadline, 642 ms at most after
	// the last renewal; then the node must stop at once (invariant 10), and
	// the backup take over as after a crash (3 s, the failover target).
	n1.waitLog(5*time.Second, "lease lost: stopping all writes")
	gateClosed := time.Since(stallAt)
	n1.waitLog(15*time.Second, "role change", "to=fenced")
	fenced := time.Since(stallAt)
	took := c.nodes[2].waitRole("primary", 15*time.Second).Sub(stallAt)
	t.Logf("disk stall -> node 1 lease gate closed after %v, role fenced after %v; node 2 primary after %v",
		gateClosed.Round(time.Millisecond), fenced.Round(time.Millisecond), took.Round(time.Millisecond))
	if gateClosed > 1500*time.Millisecond {
		t.Errorf("node 1 closed its lease gate %v after its disk stalled, want within 1.5s", gateClosed)
	}
	if fenced > gateClosed+500*time.Millisecond {
		t.Errorf("node 1 changed its role to fenced (closing its clients) %v after its lease gate closed, want at once", fenced-gateClosed)
	}
	if took > 3*time.Second {
		t.Errorf("node 2 became primary %v after node 1's disk stalled, want within 3s", took)
	}
	w.waitOps(150, 15*time.Second)
	if err := os.Remove(n1.stallFile); err != nil {
		t.Fatal(err)
	}
	n1.waitRole("backup", 10*time.Second)
	w.waitOps(50, 10*time.Second)
	w.finish()
	w.verify(cl)
	t.Logf("workload client: %+v", cl.Stats())
	per := haCheckOneWriter(t, []string{n1.writeLog, c.nodes[2].writeLog})
	t.Logf("writes per epoch: %v", per)
	time.Sleep(500 * time.Millisecond)
	if p := c.primaries(); len(p) != 1 || p[0] != 2 {
		t.Errorf("primaries at the end: %v, want [2]", p)
	}
}

// TestHASimultaneousStart: two nodes started at the same moment on a freshly
// formatted disk: exactly one becomes primary (5 runs). Then a process
// started with the id of a live node is refused, naming the node.
func TestHASimultaneousStart(t *testing.T) {
	var last *haCluster
	for run := 0; run < 5; run++ {
		c := haNewCluster(t, 1, 2)
		c.nodes[1].start()
		c.nodes[2].start()
		deadline := time.Now().Add(10 * time.Second)
		for len(c.primaries()) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("run %d: no primary after 10s", run)
			}
			time.Sleep(10 * time.Millisecond)
		}
		// Watch for a while: never two primaries, and the other a backup.
		for end := time.Now().Add(700 * time.Millisecond); time.Now().Before(end); {
			if p := c.primaries(); len(p) > 1 {
				t.Fatalf("run %d: two primaries: %v", run, p)
			}
			time.Sleep(20 * time.Millisecond)
		}
		p := c.primaries()
		if len(p) != 1 {
			t.Fatalf("run %d: primaries %v, want exactly one", run, p)
		}
		other := 3 - p[0]
		st, err := c.nodes[other].status()
		if err != nil || st.Role != "backup" || st.LeaseOwner != p[0] {
			t.Fatalf("run %d: node %d: %+v %v, want a backup seeing node %d's lease", run, other, st, err, p[0])
		}
		per := haCheckOneWriter(t, []string{c.nodes[1].writeLog, c.nodes[2].writeLog})
		t.Logf("run %d: node %d primary; writes per epoch %v", run, p[0], per)
		if run < 4 {
			for _, n := range c.nodes {
				n.kill()
			}
		}
		last = c
	}

	// A second process for each live node id is refused.
	c := last
	type result struct {
		id   int
		code int
		out  string
	}
	res := make(chan result, 2)
	for _, id := range c.ids {
		go func() {
			cmd := exec.Command(c.bin, "serve", "--disk", c.img, "--node", strconv.Itoa(id),
				"--heartbeat", haFreeUDP(t), "--listen", c.service)
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			ctxDone := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
			out, err := cmd.CombinedOutput()
			ctxDone.Stop()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				code = -1
			}
			res <- result{id, code, string(out)}
		}()
	}
	for range c.ids {
		r := <-res
		want := "node " + strconv.Itoa(r.id)
		if r.code != 1 || !strings.Contains(r.out, want) || !strings.Contains(r.out, "already running") {
			t.Errorf("second process for live node %d: exit %d, output:\n%s\nwant exit 1 and a message naming %q", r.id, r.code, r.out, want)
		} else {
			t.Logf("second process for node %d refused: %s", r.id, strings.TrimSpace(r.out))
		}
	}
	if p := c.primaries(); len(p) != 1 {
		t.Errorf("primaries after the refused starts: %v", p)
	}
}

// TestHASwitchover: `hanfsd switchover` under load: the other node serves,
// no client call fails, and the pause the client saw is under 1 s.
func TestHASwitchover(t *testing.T) {
	c := haNewCluster(t, 1, 2)
	c.startPair(1)
	cl, root := haDial(t, c.service)
	w := haStartWorkload(t, cl, root, "switch", 4)
	w.waitOps(150, 10*time.Second)
	cl.ResetStats()
	start := time.Now()
	out, err := exec.Command(c.bin, "switchover", "--primary", c.nodes[1].metrics, "--to", "2").CombinedOutput()
	if err != nil {
		t.Fatalf("hanfsd switchover: %v\n%s", err, out)
	}
	took := c.nodes[2].waitRole("primary", 5*time.Second).Sub(start)
	w.waitOps(150, 10*time.Second)
	st := cl.Stats()
	t.Logf("switchover: node 2 primary after %v; client pause (longest call) %v; %+v",
		took.Round(time.Millisecond), st.MaxWait.Round(time.Millisecond), st)
	if st.MaxWait >= time.Second {
		t.Errorf("the client waited %v for a call during the switchover, want under 1s", st.MaxWait)
	}
	c.nodes[1].waitRole("backup", 5*time.Second)
	w.finish()
	// --pprof (node 1 only) serves the profiler on the metrics address.
	for id, want := range map[int]int{1: http.StatusOK, 2: http.StatusNotFound} {
		resp, err := haHTTP.Get("http://" + c.nodes[id].metrics + "/debug/pprof/goroutine?debug=1")
		if err != nil {
			t.Fatalf("node %d: GET /debug/pprof/goroutine: %v", id, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || (want == http.StatusOK && !strings.Contains(string(body), "goroutine profile")) {
			t.Errorf("node %d: /debug/pprof/goroutine answered %d (want %d):\n%.300s", id, resp.StatusCode, want, body)
		}
	}
	w.verify(cl)
	haCheckOneWriter(t, []string{c.nodes[1].writeLog, c.nodes[2].writeLog})
}

// haPauseAfterLeaseRead is a disk on which the first read of the lease block
// is followed by a pause of the reading process: the fake clock jumps and
// another node's claim lands, before the read returns.
type haPauseAfterLeaseRead struct {
	shareddisk.Disk
	leaseOff int64
	once     sync.Once
	pause    func()
}

func (d *haPauseAfterLeaseRead) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.Disk.ReadAt(p, off)
	if off == d.leaseOff {
		d.once.Do(d.pause)
	}
	return n, err
}

// TestHALeaseRenewalAfterPause is the mechanism behind the SIGSTOP failure
// "lease lost: the lease record now says held by node 1 at epoch 1 (we held
// epoch 2)": a holder that is paused between the read and the write of a
// renewal (SIGSTOP, a long GC) writes its stale renewal after waking, over
// the claim another node made meanwhile. The renewal write must not start
// after the holder's deadline, like every file-system write.
func TestHALeaseRenewalAfterPause(t *testing.T) {
	mem := shareddisk.NewMem(64 << 20)
	lay, err := shareddisk.ComputeLayout(64<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	tm := fencing.DefaultTiming()
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	disk := &haPauseAfterLeaseRead{Disk: mem, leaseOff: int64(lay.LeaseStart) * shareddisk.BlockSize}
	a1, err := fencing.NewArea(disk, lay, tm.IOTimeout)
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := fencing.NewArea(mem, lay, tm.IOTimeout)
	claim1 := fencing.ClaimFor(fencing.Lease{}, 1, 11)
	if err := a2.WriteLease(claim1); err != nil {
		t.Fatal(err)
	}
	claim2 := fencing.ClaimFor(claim1, 2, 22)
	disk.pause = func() {
		// Node 1 stops for three lease periods right after its read;
		// node 2 sees the lease unrenewed and claims it.
		now = now.Add(3 * tm.LeasePeriod)
		if err := a2.WriteLease(claim2); err != nil {
			t.Error(err)
		}
	}
	h := fencing.NewHolder(a1, tm, claim1, now, clock, nil)
	err = h.Renew()
	t.Logf("renewal after the pause: %v", err)
	got, _, err := a2.ReadLease()
	if err != nil {
		t.Fatal(err)
	}
	if got.Owner != 2 || got.Epoch != 2 {
		t.Errorf("node 2's claim (epoch 2) was overwritten by node 1's stale renewal: the lease record now says %s by node %d at epoch %d, counter %d",
			got.State, got.Owner, got.Epoch, got.Counter)
	}
}
