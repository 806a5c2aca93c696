package test

// Partition of the server-to-server link only (issue 4): the two nodes stop
// hearing each other's heartbeats while both are up and the shared disk and
// the client network still work. The backup must probe the primary through
// the disk mailbox, get answers, and NOT take over; the primary keeps
// serving at the same lease epoch; /status and /metrics show the peer link
// down; when the link heals, heartbeats come back.
//
// TestPartitionRelay (always run) routes each node's heartbeats through a
// UDP relay in the test process that can drop either direction.
// TestPartitionNetns (root with working `ip netns` only) runs the two nodes
// in two network namespaces joined by a veth pair and cuts the link with
// `ip link set down`.
//
// Every helper here is prefixed pt; the file uses nothing from the other
// files of the package.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hanfs/hanfs/fencing"
	"github.com/hanfs/hanfs/nfs/rpcwire"
)

// ptTiming is the timing every node here runs with: the defaults.
var ptTiming = fencing.DefaultTiming()

// Default failure-detection settings of hanfsd serve (see serve.go).
const (
	ptHeartbeatTimeout = 400 * time.Millisecond
	ptProbeTimeout     = 250 * time.Millisecond
)

// ptGoTool finds the go command of this toolchain.
func ptGoTool(t testing.TB) string {
	t.Helper()
	cands := []string{filepath.Join(runtime.GOROOT(), "bin", "go")}
	if p, err := exec.LookPath("go"); err == nil {
		cands = append(cands, p)
	}
	cands = append(cands, "/usr/local/go/bin/go")
	for _, c := range cands {
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c
		}
	}
	t.Skip("no go command found to build hanfsd")
	return ""
}

// ptBuild builds cmd/hanfsd from this tree into t.TempDir().
func ptBuild(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	bin := filepath.Join(t.TempDir(), "hanfsd")
	cmd := exec.Command(ptGoTool(t), "build", "-o", bin, "./cmd/hanfsd")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/hanfsd: %v\n%s", err, out)
	}
	return bin
}

// ptFormat formats a sparse 1 GiB image in t.TempDir().
func ptFormat(t testing.TB, bin string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "hanfs.img")
	if out, err := exec.Command(bin, "format", "--disk", img, "--size", "1GiB").CombinedOutput(); err != nil {
		t.Fatalf("hanfsd format: %v\n%s", err, out)
	}
	return img
}

// ptFreeTCP and ptFreeUDP pick a free port on 127.0.0.1.
func ptFreeTCP(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func ptFreeUDP(t testing.TB) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// ptNode is one `hanfsd serve` process.
type ptNode struct {
	t       testing.TB
	id      int
	service string
	metrics string // host:port of /status and /metrics
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
}

// ptStartNode starts `prefix... bin serve --disk img --node id args...`,
// logging to a file that the test prints if it fails.
func ptStartNode(t testing.TB, prefix []string, bin, img string, id int, service, metrics string, args ...string) *ptNode {
	t.Helper()
	n := &ptNode{t: t, id: id, service: service, metrics: metrics,
		logPath: filepath.Join(t.TempDir(), fmt.Sprintf("node%d.log", id)), done: make(chan struct{})}
	lf, err := os.Create(n.logPath)
	if err != nil {
		t.Fatal(err)
	}
	full := append([]string{bin, "serve", "--disk", img, "--node", strconv.Itoa(id), "--listen", service, "--metrics", metrics}, args...)
	full = append(append([]string{}, prefix...), full...)
	fmt.Fprintf(lf, "=== %s\n", strings.Join(full, " "))
	n.cmd = exec.Command(full[0], full[1:]...)
	n.cmd.Stdout, n.cmd.Stderr = lf, lf
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		lf.Close()
		t.Fatalf("start node %d: %v", id, err)
	}
	go func() { n.cmd.Wait(); lf.Close(); close(n.done) }()
	t.Cleanup(func() {
		n.stop()
		b, _ := os.ReadFile(n.logPath)
		if strings.Contains(string(b), "panic") {
			t.Errorf("node %d logged a panic", id)
		}
		if t.Failed() {
			if len(b) > 32<<10 {
				b = append([]byte("...\n"), b[len(b)-32<<10:]...)
			}
			t.Logf("node %d log:\n%s", id, b)
		}
	})
	return n
}

func (n *ptNode) stop() {
	select {
	case <-n.done:
		return
	default:
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(5 * time.Second):
		n.cmd.Process.Kill()
		<-n.done
	}
}

func (n *ptNode) exited() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

func (n *ptNode) log() string {
	b, _ := os.ReadFile(n.logPath)
	return string(b)
}

// ptStatus is the part of /status the tests read.
type ptStatus struct {
	Node           int    `json:"node"`
	Role           string `json:"role"`
	Reason         string `json:"reason"`
	Epoch          uint64 `json:"epoch"`
	LeaseOwner     int    `json:"lease_owner"`
	LeaseState     string `json:"lease_state"`
	LeaseEpoch     uint64 `json:"lease_epoch"`
	PeerHeartbeats bool   `json:"peer_heartbeats"`
	Mailbox        string `json:"mailbox"`
}

var ptHTTP = &http.Client{Timeout: 2 * time.Second}

func (n *ptNode) status() (ptStatus, error) {
	var s ptStatus
	resp, err := ptHTTP.Get("http://" + n.metrics + "/status")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("/status: %s", resp.Status)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

func (n *ptNode) mustStatus() ptStatus {
	n.t.Helper()
	s, err := n.status()
	if err != nil {
		n.t.Fatalf("node %d /status: %v", n.id, err)
	}
	return s
}

// metric returns the value of the sample named name{node="<id>"} on /metrics.
func (n *ptNode) metric(name string) (float64, error) {
	resp, err := ptHTTP.Get("http://" + n.metrics + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	want := fmt.Sprintf(`%s{node="%d"} `, name, n.id)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), want); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("node %d: no sample %s on /metrics", n.id, strings.TrimSpace(want))
}

func (n *ptNode) mustMetric(name string) float64 {
	n.t.Helper()
	v, err := n.metric(name)
	if err != nil {
		n.t.Fatal(err)
	}
	return v
}

// ptWait polls cond every 20 ms until it holds or d passes.
func ptWait(t testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		if state != "" {
			last = state
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s did not happen (last: %s)", d, what, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ptWaitStatus waits until node's /status satisfies cond.
func ptWaitStatus(t testing.TB, n *ptNode, d time.Duration, what string, cond func(ptStatus) bool) ptStatus {
	t.Helper()
	var s ptStatus
	ptWait(t, d, fmt.Sprintf("node %d: %s", n.id, what), func() (bool, string) {
		if n.exited() {
			t.Fatalf("node %d exited while waiting for %s", n.id, what)
		}
		var err error
		if s, err = n.status(); err != nil {
			return false, err.Error()
		}
		return cond(s), fmt.Sprintf("%+v", s)
	})
	return s
}

// --- the UDP relay between the nodes' heartbeat ports ---

// ptRelay forwards heartbeats: whatever reaches in12 goes to node 2's
// heartbeat port, whatever reaches in21 goes to node 1's. Either direction
// can be made to drop everything.
type ptRelay struct {
	in12, in21        *net.UDPConn
	drop12, drop21    atomic.Bool
	fwd12, fwd21      atomic.Int64
	dropped, dropped2 atomic.Int64
	wg                sync.WaitGroup
}

func ptNewRelay(t testing.TB) *ptRelay {
	t.Helper()
	r := &ptRelay{}
	var err error
	if r.in12, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	if r.in21, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.in12.Close(); r.in21.Close(); r.wg.Wait() })
	return r
}

// start forwards to the nodes' heartbeat addresses.
func (r *ptRelay) start(t testing.TB, hb1, hb2 string) {
	t.Helper()
	to1, err := net.ResolveUDPAddr("udp", hb1)
	if err != nil {
		t.Fatal(err)
	}
	to2, err := net.ResolveUDPAddr("udp", hb2)
	if err != nil {
		t.Fatal(err)
	}
	pump := func(in *net.UDPConn, to *net.UDPAddr, drop *atomic.Bool, fwd, dropped *atomic.Int64) {
		defer r.wg.Done()
		buf := make([]byte, 2048)
		for {
			k, _, err := in.ReadFromUDP(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			if drop.Load() {
				dropped.Add(1)
				continue
			}
			in.WriteToUDP(buf[:k], to)
			fwd.Add(1)
		}
	}
	r.wg.Add(2)
	go pump(r.in12, to2, &r.drop12, &r.fwd12, &r.dropped)
	go pump(r.in21, to1, &r.drop21, &r.fwd21, &r.dropped2)
}

// --- a raw NFSv3 client: MNT and GETATTR over one TCP connection ---

const (
	ptProgNFS   = 100003
	ptProgMount = 100005
	ptVers      = 3
	ptGetattr   = 1
	ptMnt       = 1
)

type ptNFS struct {
	nc   net.Conn
	rr   *rpcwire.RecordReader
	xid  uint32
	root []byte
}

// ptMount connects to the service address and mounts "/".
func ptMount(addr string) (*ptNFS, error) {
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	c := &ptNFS{nc: nc, rr: rpcwire.NewRecordReader(bufio.NewReader(nc), 0), xid: uint32(time.Now().UnixNano())}
	e := rpcwire.NewEncoder(nil)
	e.String("/")
	d, err := c.call(ptProgMount, ptMnt, e.Bytes())
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("MNT /: %w", err)
	}
	st, err := d.Uint32()
	if err == nil && st != 0 {
		err = fmt.Errorf("mountstat3 %d", st)
	}
	if err == nil {
		c.root, err = d.Opaque(64)
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("MNT /: %w", err)
	}
	return c, nil
}

func (c *ptNFS) close() { c.nc.Close() }

func (c *ptNFS) call(prog, proc uint32, args []byte) (*rpcwire.Decoder, error) {
	c.xid++
	cred := &rpcwire.AuthUnix{Stamp: 1, Machine: "pt"}
	c.nc.SetDeadline(time.Now().Add(2 * time.Second))
	if err := rpcwire.WriteRecord(c.nc, rpcwire.BuildCall(c.xid, prog, ptVers, proc, cred, args)); err != nil {
		return nil, err
	}
	for {
		rec, err := c.rr.Next()
		if err != nil {
			return nil, err
		}
		r, err := rpcwire.ParseReply(rec)
		if err != nil {
			return nil, err
		}
		if r.XID != c.xid {
			continue
		}
		if !r.Accepted || r.AcceptStat != rpcwire.Success {
			return nil, fmt.Errorf("RPC reply accepted=%v accept_stat=%v", r.Accepted, r.AcceptStat)
		}
		return rpcwire.NewDecoder(append([]byte(nil), r.Body...)), nil
	}
}

// getattr sends GETATTR on the root handle and checks NFS3_OK.
func (c *ptNFS) getattr() error {
	e := rpcwire.NewEncoder(nil)
	e.Opaque(c.root)
	d, err := c.call(ptProgNFS, ptGetattr, e.Bytes())
	if err != nil {
		return fmt.Errorf("GETATTR: %w", err)
	}
	st, err := d.Uint32()
	if err != nil {
		return fmt.Errorf("GETATTR: %w", err)
	}
	if st != 0 {
		return fmt.Errorf("GETATTR: nfsstat3 %d", st)
	}
	return nil
}

// --- the scenario shared by both variants ---

// ptCluster is a primary (node 1) and a backup (node 2) on one disk.
type ptCluster struct {
	n1, n2 *ptNode
	client *ptNFS
	epoch  uint64
}

// ptBringUp starts node 1, waits until it is primary, starts node 2 and
// waits until both hear each other; then mounts the service address.
func ptBringUp(t *testing.T, start func(id int) *ptNode, service string) *ptCluster {
	t.Helper()
	c := &ptCluster{}
	c.n1 = start(1)
	s1 := ptWaitStatus(t, c.n1, 15*time.Second, "become primary on a fresh disk", func(s ptStatus) bool { return s.Role == "primary" })
	c.epoch = s1.LeaseEpoch
	c.n2 = start(2)
	ptWaitStatus(t, c.n2, 15*time.Second, "run as backup hearing the primary", func(s ptStatus) bool {
		return s.Role == "backup" && s.PeerHeartbeats && s.LeaseOwner == 1 && s.Mailbox == "idle"
	})
	ptWaitStatus(t, c.n1, 5*time.Second, "hear the backup", func(s ptStatus) bool { return s.PeerHeartbeats })
	var err error
	ptWait(t, 5*time.Second, "mount the service address "+service, func() (bool, string) {
		if c.client, err = ptMount(service); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	t.Cleanup(c.client.close)
	if err := c.client.getattr(); err != nil {
		t.Fatalf("before the partition: %v", err)
	}
	if v := c.n2.mustMetric("hanfs_node_peer_heartbeats_up"); v != 1 {
		t.Fatalf("before the partition: node 2 hanfs_node_peer_heartbeats_up = %v, want 1", v)
	}
	return c
}

// ptPartition says which heartbeats the cut stops.
type ptPartition struct {
	primaryToBackup, backupToPrimary bool
}

// ptHold keeps the link cut for 5 lease periods and checks, all along, that
// the primary serves at the same epoch and the backup stays a backup; where
// the backup stopped hearing the primary, that it probes the mailbox, gets
// answers, and shows the link down on /status and /metrics.
func ptHold(t *testing.T, c *ptCluster, p ptPartition) {
	t.Helper()
	probes0 := c.n2.mustMetric("hanfs_node_mailbox_probes_total")
	cut := time.Now()
	hold := 5 * ptTiming.LeasePeriod
	// After this, the side that stopped hearing its peer must show it.
	grace := ptHeartbeatTimeout + 4*ptTiming.PollInterval + 100*time.Millisecond
	mailboxes := map[string]int{}
	getattrs, samples := 0, 0
	metricChecked := false
	for time.Since(cut) < hold {
		if err := c.client.getattr(); err != nil {
			t.Fatalf("%v into the partition: the primary stopped serving: %v", time.Since(cut).Round(time.Millisecond), err)
		}
		getattrs++
		s1, err1 := c.n1.status()
		s2, err2 := c.n2.status()
		if err1 != nil || err2 != nil {
			t.Fatalf("/status: %v, %v", err1, err2)
		}
		samples++
		if s1.Role != "primary" || s1.LeaseEpoch != c.epoch || s1.Epoch != c.epoch {
			t.Fatalf("%v into the partition: node 1 is %s at lease epoch %d (epoch %d), want primary at %d",
				time.Since(cut).Round(time.Millisecond), s1.Role, s1.LeaseEpoch, s1.Epoch, c.epoch)
		}
		if s2.Role != "backup" || s2.LeaseEpoch != c.epoch || s2.LeaseOwner != 1 {
			t.Fatalf("%v into the partition: node 2 is %s (%s), sees lease owner %d epoch %d; want backup seeing node 1 at %d",
				time.Since(cut).Round(time.Millisecond), s2.Role, s2.Reason, s2.LeaseOwner, s2.LeaseEpoch, c.epoch)
		}
		mailboxes[s2.Mailbox]++
		if time.Since(cut) > grace {
			if p.primaryToBackup && s2.PeerHeartbeats {
				t.Fatalf("%v into the partition: node 2 /status says peer_heartbeats=true", time.Since(cut).Round(time.Millisecond))
			}
			if !p.primaryToBackup && !s2.PeerHeartbeats {
				t.Fatalf("node 2 still hears node 1 but /status says peer_heartbeats=false")
			}
			if p.backupToPrimary && s1.PeerHeartbeats {
				t.Fatalf("%v into the partition: node 1 /status says peer_heartbeats=true", time.Since(cut).Round(time.Millisecond))
			}
			if !metricChecked {
				metricChecked = true
				want2, want1 := 1.0, 1.0
				if p.primaryToBackup {
					want2 = 0
				}
				if p.backupToPrimary {
					want1 = 0
				}
				if v := c.n2.mustMetric("hanfs_node_peer_heartbeats_up"); v != want2 {
					t.Errorf("node 2 hanfs_node_peer_heartbeats_up = %v during the partition, want %v", v, want2)
				}
				if v := c.n1.mustMetric("hanfs_node_peer_heartbeats_up"); v != want1 {
					t.Errorf("node 1 hanfs_node_peer_heartbeats_up = %v during the partition, want %v", v, want1)
				}
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	probes := c.n2.mustMetric("hanfs_node_mailbox_probes_total") - probes0
	t.Logf("partition %+v held %v: %d GETATTRs ok, backup mailbox states over %d samples: %v, %v mailbox probes",
		p, hold, getattrs, samples, mailboxes, probes)
	if p.primaryToBackup {
		// The primary answers within a poll interval; "silent" (no answer
		// within the probe timeout) only when the disk stalls.
		if mailboxes["answered"] == 0 || mailboxes["silent"] > mailboxes["answered"] {
			t.Errorf("node 2 did not get the primary's mailbox answers (states seen: %v)", mailboxes)
		}
		if probes < 2 {
			t.Errorf("node 2 sent %v mailbox probes in %v of silence, want it to keep probing", probes, hold)
		}
	} else if probes != 0 || mailboxes["probing"]+mailboxes["answered"] != 0 {
		t.Errorf("node 2 still hears the primary but probed its mailbox (%v probes, states %v)", probes, mailboxes)
	}
	for n, bad := range map[*ptNode][]string{
		c.n1: {"lease lost", "to=fenced", "stopped serving NFS"},
		c.n2: {"to=candidate", "to=primary", "serving NFS"},
	} {
		for _, line := range strings.Split(n.log(), "\n") {
			// Only what happened from the cut on (slog text lines start
			// with time=RFC3339, to the millisecond).
			ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
			if at, err := time.Parse(time.RFC3339Nano, ts); err != nil || at.Before(cut.Truncate(time.Millisecond)) {
				continue
			}
			for _, b := range bad {
				if strings.Contains(line, b) {
					t.Errorf("node %d log shows %q during a network-only partition: %s", n.id, b, line)
				}
			}
		}
	}
}

// ptHeal checks that heartbeats come back on both sides once the link is up.
func ptHeal(t *testing.T, c *ptCluster) {
	t.Helper()
	healed := time.Now()
	ptWaitStatus(t, c.n2, 3*time.Second, "hear the primary again", func(s ptStatus) bool {
		return s.PeerHeartbeats && s.Role == "backup" && s.Mailbox == "idle"
	})
	ptWaitStatus(t, c.n1, 3*time.Second, "hear the backup again", func(s ptStatus) bool { return s.PeerHeartbeats })
	t.Logf("heartbeats back %v after the heal", time.Since(healed).Round(time.Millisecond))
	ptWait(t, 2*time.Second, "hanfs_node_peer_heartbeats_up back to 1 on both nodes", func() (bool, string) {
		v1, err1 := c.n1.metric("hanfs_node_peer_heartbeats_up")
		v2, err2 := c.n2.metric("hanfs_node_peer_heartbeats_up")
		return err1 == nil && err2 == nil && v1 == 1 && v2 == 1, fmt.Sprintf("node 1 %v %v, node 2 %v %v", v1, err1, v2, err2)
	})
	if err := c.client.getattr(); err != nil {
		t.Fatalf("after the heal: %v", err)
	}
	if s := c.n1.mustStatus(); s.Role != "primary" || s.LeaseEpoch != c.epoch {
		t.Fatalf("after the heal: node 1 is %s at lease epoch %d, want primary at %d", s.Role, s.LeaseEpoch, c.epoch)
	}
	if s := c.n2.mustStatus(); s.Role != "backup" || s.LeaseEpoch != c.epoch {
		t.Fatalf("after the heal: node 2 is %s at lease epoch %d, want backup at %d", s.Role, s.LeaseEpoch, c.epoch)
	}
}

// TestPartitionRelay cuts the heartbeat link through a UDP relay: both
// directions, then primary->backup only, then backup->primary only.
func TestPartitionRelay(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hanfsd processes for about 30 s")
	}
	bin := ptBuild(t)
	for _, tc := range []struct {
		name string
		p    ptPartition
	}{
		{"both-directions", ptPartition{primaryToBackup: true, backupToPrimary: true}},
		{"primary-to-backup", ptPartition{primaryToBackup: true}},
		{"backup-to-primary", ptPartition{backupToPrimary: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := ptFormat(t, bin)
			relay := ptNewRelay(t)
			hb := map[int]string{1: ptFreeUDP(t), 2: ptFreeUDP(t)}
			relay.start(t, hb[1], hb[2])
			// Node 1 sends to in12 (forwarded to node 2), node 2 to in21.
			peer := map[int]string{1: "2=" + relay.in12.LocalAddr().String(), 2: "1=" + relay.in21.LocalAddr().String()}
			service := ptFreeTCP(t)
			c := ptBringUp(t, func(id int) *ptNode {
				return ptStartNode(t, nil, bin, img, id, service, ptFreeTCP(t),
					"--heartbeat", hb[id], "--peer", peer[id], "--export", "/ 127.0.0.0/8 rw")
			}, service)

			relay.drop12.Store(tc.p.primaryToBackup)
			relay.drop21.Store(tc.p.backupToPrimary)
			ptHold(t, c, tc.p)
			if tc.p.primaryToBackup && relay.dropped.Load() == 0 || tc.p.backupToPrimary && relay.dropped2.Load() == 0 {
				t.Fatalf("the relay dropped nothing (1->2 %d, 2->1 %d): the heartbeats do not go through it", relay.dropped.Load(), relay.dropped2.Load())
			}
			f12, f21 := relay.fwd12.Load(), relay.fwd21.Load()
			relay.drop12.Store(false)
			relay.drop21.Store(false)
			ptHeal(t, c)
			ptWait(t, 2*time.Second, "the relay forwarding both ways after the heal", func() (bool, string) {
				a, b := relay.fwd12.Load()-f12, relay.fwd21.Load()-f21
				return a > 0 && b > 0, fmt.Sprintf("forwarded 1->2 %d, 2->1 %d", a, b)
			})
		})
	}
}

// --- the network-namespace variant ---

func ptRun(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// TestPartitionNetns runs each node in its own network namespace: the
// heartbeat link is a veth pair between the two namespaces, and each
// namespace has a second veth pair to the test's namespace for the NFS
// service and the HTTP endpoint. The cut is `ip link set down` on the
// heartbeat veth, which takes the link down in both directions.
//
// The nodes' service addresses differ (each namespace has its own); this
// test does not need a takeover to move the address, only that none happens.
func TestPartitionNetns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hanfsd processes")
	}
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root; the relay variant (TestPartitionRelay) covers the partition")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no `ip` command (iproute2); the relay variant (TestPartitionRelay) covers the partition")
	}
	tag := strconv.Itoa(os.Getpid() % 100000)
	nsA, nsB := "pt"+tag+"a", "pt"+tag+"b"
	if err := ptRun("ip", "netns", "add", nsA); err != nil {
		t.Skipf("ip netns is not usable here (%v); the relay variant (TestPartitionRelay) covers the partition", err)
	}
	t.Cleanup(func() { ptRun("ip", "netns", "del", nsA) })
	if err := ptRun("ip", "netns", "add", nsB); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ptRun("ip", "netns", "del", nsB) })
	// Three /24s: the heartbeat link, root<->A, root<->B.
	o := 16 + (os.Getpid()%70)*3
	hbA, hbB := fmt.Sprintf("10.231.%d.1", o), fmt.Sprintf("10.231.%d.2", o)
	svcA, rootA := fmt.Sprintf("10.231.%d.1", o+1), fmt.Sprintf("10.231.%d.2", o+1)
	svcB, rootB := fmt.Sprintf("10.231.%d.1", o+2), fmt.Sprintf("10.231.%d.2", o+2)
	hbvA, hbvB := "pt"+tag+"h", "pt"+tag+"i"
	cA, rA := "pt"+tag+"c", "pt"+tag+"r"
	cB, rB := "pt"+tag+"d", "pt"+tag+"s"
	setup := [][]string{
		{"ip", "link", "add", hbvA, "type", "veth", "peer", "name", hbvB},
		{"ip", "link", "set", hbvA, "netns", nsA},
		{"ip", "link", "set", hbvB, "netns", nsB},
		{"ip", "-n", nsA, "addr", "add", hbA + "/24", "dev", hbvA},
		{"ip", "-n", nsB, "addr", "add", hbB + "/24", "dev", hbvB},
		{"ip", "link", "add", rA, "type", "veth", "peer", "name", cA},
		{"ip", "link", "set", cA, "netns", nsA},
		{"ip", "-n", nsA, "addr", "add", svcA + "/24", "dev", cA},
		{"ip", "addr", "add", rootA + "/24", "dev", rA},
		{"ip", "link", "add", rB, "type", "veth", "peer", "name", cB},
		{"ip", "link", "set", cB, "netns", nsB},
		{"ip", "-n", nsB, "addr", "add", svcB + "/24", "dev", cB},
		{"ip", "addr", "add", rootB + "/24", "dev", rB},
		{"ip", "-n", nsA, "link", "set", "lo", "up"},
		{"ip", "-n", nsB, "link", "set", "lo", "up"},
		{"ip", "-n", nsA, "link", "set", hbvA, "up"},
		{"ip", "-n", nsB, "link", "set", hbvB, "up"},
		{"ip", "-n", nsA, "link", "set", cA, "up"},
		{"ip", "-n", nsB, "link", "set", cB, "up"},
		{"ip", "link", "set", rA, "up"},
		{"ip", "link", "set", rB, "up"},
	}
	// Deleting the namespaces deletes the veths in them, and their peers.
	t.Cleanup(func() { ptRun("ip", "link", "del", rA); ptRun("ip", "link", "del", rB) })
	for _, a := range setup {
		if err := ptRun(a...); err != nil {
			t.Skipf("cannot build the namespaces' network (%v); the relay variant (TestPartitionRelay) covers the partition", err)
		}
	}
	bin := ptBuild(t)
	img := ptFormat(t, bin)
	ns := map[int]string{1: nsA, 2: nsB}
	hb := map[int]string{1: hbA + ":7000", 2: hbB + ":7000"}
	peer := map[int]string{1: "2=" + hb[2], 2: "1=" + hb[1]}
	svc := map[int]string{1: svcA, 2: svcB}
	c := ptBringUp(t, func(id int) *ptNode {
		return ptStartNode(t, []string{"ip", "netns", "exec", ns[id]}, bin, img, id, svc[id]+":2049", svc[id]+":9050",
			"--heartbeat", hb[id], "--peer", peer[id], "--export", "/ 10.231.0.0/16 rw")
	}, svcA+":2049")

	if err := ptRun("ip", "-n", nsA, "link", "set", hbvA, "down"); err != nil {
		t.Fatal(err)
	}
	ptHold(t, c, ptPartition{primaryToBackup: true, backupToPrimary: true})
	if err := ptRun("ip", "-n", nsA, "link", "set", hbvA, "up"); err != nil {
		t.Fatal(err)
	}
	ptHeal(t, c)
	// Node 2 never bound its service address: nothing listens there.
	if nc, err := net.DialTimeout("tcp", svcB+":2049", time.Second); err == nil {
		nc.Close()
		t.Fatalf("node 2 (backup) accepts connections on its service address")
	}
}
