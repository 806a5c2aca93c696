package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/hanfs/hanfs/fencing"
	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/fsstore/txn"
	"github.com/hanfs/hanfs/heartbeat"
	"github.com/hanfs/hanfs/nfs"
	"github.com/hanfs/hanfs/shareddisk"
)

// Options configure a node.
type Options struct {
	Node int
	Disk shareddisk.Disk // for the lease, presence and mailbox I/O
	// StoreDisk is the disk the file system is written through (default
	// Disk). The node puts its lease's write gate right in front of it.
	StoreDisk shareddisk.Disk
	Layout    shareddisk.Layout
	Service   string         // the NFS service address the primary binds
	Heartbeat string         // this node's UDP heartbeat address
	Peers     map[int]string // peer node id -> heartbeat address
	StatusURL string         // recorded in the presence record for `hanfsd status`
	Exports   []nfs.Export
	Timing    fencing.Timing
	// HeartbeatInterval, HeartbeatTimeout and ProbeTimeout tune failure
	// detection (defaults 100ms, 400ms, 250ms).
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
	ProbeTimeout      time.Duration
	Logger            *slog.Logger
	Registerer        prometheus.Registerer
	// WrapStoreDisk, when set, wraps the gated store disk (tests record
	// every write with the node and epoch, or stall it).
	WrapStoreDisk func(d shareddisk.Disk, epoch func() uint64) shareddisk.Disk
	// AfterCommit is passed to the NFS server (fault-injection tests).
	AfterCommit func(proc string)
	// VIP, when set, is added to an interface while this node serves.
	VIP *VIP
	// FenceCommand runs (sh -c) when the node stops serving because it lost
	// the lease; Watchdog is a watchdog device fed while it serves. Both are
	// optional hard fencing.
	FenceCommand string
	Watchdog     string
	// OnServing is called when the node starts or stops serving (FUSE mount).
	OnServing func(store *fsstore.Store, serving bool)
	// ReadCacheBytes bounds the read-ahead cache of the store the node
	// opens when it becomes primary, as fsstore.Options.ReadCacheBytes (0:
	// the default, negative: none). A backup has no store, hence no cache.
	ReadCacheBytes int64
	// JournaledWriteBlocks is fsstore.Options.JournaledWriteBlocks for the
	// store the node opens (0: the default, negative: off).
	JournaledWriteBlocks int
}

// Node is one running hanfs node.
type Node struct {
	o    Options
	log  *slog.Logger
	inc  uint64
	area *fencing.Area
	mbox *heartbeat.Mailbox
	bc   *heartbeat.Beacon
	m    *Machine
	met  *nodeMetrics
	nfsm *nfs.Metrics
	// rcc counts what the read-ahead caches of the node's successive
	// stores did (metrics outlive a term as primary).
	rcc txn.DataCacheCounters
	// stc adds up the store counters of the node's terms; guarded by mu.
	stc storeCounters

	events chan Event
	lost   chan Event // lease losses: handled before anything else
	hard   *hardFence

	mu        sync.Mutex
	holder    *fencing.Holder
	holderEnd chan struct{}
	store     *fsstore.Store
	srv       *nfs.Server
	servedAt  time.Time
	status    Status
	pending   *CheckClaim
	presCount uint64
}

// presenceInterval is how often a node writes its presence record (with a
// flush: kept rare, as it costs the primary's disk a little).
const presenceInterval = 250 * time.Millisecond

// ErrNodeAlive is returned when another process runs with the same node id.
var ErrNodeAlive = errors.New("a node with this id is already running on the disk")

// New prepares a node: it checks that no live process uses its node id.
func New(o Options) (*Node, error) {
	if o.Timing == (fencing.Timing{}) {
		o.Timing = fencing.DefaultTiming()
	}
	if err := o.Timing.Validate(); err != nil {
		return nil, err
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = 100 * time.Millisecond
	}
	if o.HeartbeatTimeout <= 0 {
		o.HeartbeatTimeout = 400 * time.Millisecond
	}
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = 250 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Node < 1 || o.Node > fencing.MaxNodes {
		return nil, fmt.Errorf("node id %d out of range 1..%d", o.Node, fencing.MaxNodes)
	}
	for p := range o.Peers {
		if p == o.Node || p < 1 || p > fencing.MaxNodes {
			return nil, fmt.Errorf("peer node id %d invalid (this node is %d; ids are 1..%d)", p, o.Node, fencing.MaxNodes)
		}
	}
	var b [8]byte
	rand.Read(b[:])
	n := &Node{o: o, log: o.Logger.With("node", o.Node), hard: &hardFence{log: o.Logger.With("node", o.Node), node: o.Node, command: o.FenceCommand, watchdog: o.Watchdog}, inc: binary.LittleEndian.Uint64(b[:]) | 1, events: make(chan Event, 64), lost: make(chan Event, 4)}
	var err error
	if n.area, err = fencing.NewArea(o.Disk, o.Layout, o.Timing.IOTimeout); err != nil {
		return nil, err
	}
	if n.mbox, err = heartbeat.Open(o.Disk, o.Layout, o.Node, o.Timing.IOTimeout); err != nil {
		return nil, err
	}
	if err := n.checkNotAlive(); err != nil {
		return nil, err
	}
	if n.met, err = newNodeMetrics(o.Registerer, o.Node); err != nil {
		return nil, err
	}
	if n.nfsm, err = nfs.NewMetrics(o.Registerer); err != nil {
		return nil, err
	}
	if err := n.registerReadCacheMetrics(o.Registerer); err != nil {
		return nil, err
	}
	if err := n.registerStoreMetrics(o.Registerer); err != nil {
		return nil, err
	}
	return n, nil
}

// checkNotAlive watches this node id's presence record for a few renew
// intervals: if its counter moves, another process is running as this node.
func (n *Node) checkNotAlive() error {
	p0, ok, err := n.area.ReadPresence(n.o.Node)
	if err != nil && !errors.Is(err, fencing.ErrCorrupt) {
		return fmt.Errorf("read presence record: %w", err)
	}
	if !ok {
		return n.claimPresence()
	}
	n.presCount = p0.Counter
	time.Sleep(3*presenceInterval + n.o.Timing.IOTimeout)
	p1, _, err := n.area.ReadPresence(n.o.Node)
	if err != nil {
		return fmt.Errorf("read presence record: %w", err)
	}
	if p1.Counter != p0.Counter {
		return fmt.Errorf("%w: node %d (incarnation %x, status %s) wrote its presence record %d times in the last %v; stop it first or pick another --node",
			ErrNodeAlive, n.o.Node, p1.Incarnation, p1.StatusURL, p1.Counter-p0.Counter, 3*presenceInterval+n.o.Timing.IOTimeout)
	}
	n.presCount = p1.Counter
	return n.claimPresence()
}

// claimPresence writes this process's presence record and reads it back a
// little later: of two processes started at once with the same new id, the
// one whose record was overwritten gives up.
func (n *Node) claimPresence() error {
	n.presCount++
	if err := n.area.WritePresence(fencing.Presence{Node: n.o.Node, Incarnation: n.inc, Counter: n.presCount,
		WallTime: time.Now().UnixNano(), Role: fencing.RoleBackup, StatusURL: n.o.StatusURL, Service: n.o.Service}); err != nil {
		return fmt.Errorf("write presence record: %w", err)
	}
	time.Sleep(2*presenceInterval + n.o.Timing.IOTimeout)
	p, _, err := n.area.ReadPresence(n.o.Node)
	if err != nil {
		return fmt.Errorf("read presence record: %w", err)
	}
	if p.Incarnation != n.inc {
		return fmt.Errorf("%w: another process (incarnation %x, status %s) started as node %d at the same time", ErrNodeAlive, p.Incarnation, p.StatusURL, n.o.Node)
	}
	return nil
}

// Status is what /status and `hanfsd status` show of a node.
type Status struct {
	Node            int           `json:"node"`
	Role            string        `json:"role"`
	Reason          string        `json:"reason"`
	Epoch           uint64        `json:"epoch"`
	LeaseOwner      int           `json:"lease_owner"`
	LeaseState      string        `json:"lease_state"`
	LeaseEpoch      uint64        `json:"lease_epoch"`
	LeaseAgeMS      int64         `json:"lease_unchanged_ms"`
	PeerHeartbeats  bool          `json:"peer_heartbeats"`
	Mailbox         string        `json:"mailbox"`
	LastHeartbeatMS map[int]int64 `json:"last_heartbeat_ms"`
	Service         string        `json:"service"`
	ServingSince    string        `json:"serving_since,omitempty"`
}

// Status returns the node's current state.
func (n *Node) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.status
}

// Switchover asks the primary to hand over to node to (0: any peer).
func (n *Node) Switchover(to int) error {
	if to == 0 {
		ids := make([]int, 0, len(n.o.Peers))
		for p := range n.o.Peers {
			ids = append(ids, p)
		}
		sort.Ints(ids)
		if len(ids) == 0 {
			return errors.New("no peer to hand over to")
		}
		to = ids[0]
	}
	if _, ok := n.o.Peers[to]; !ok {
		return fmt.Errorf("node %d is not a peer", to)
	}
	if r, _ := n.m.Role(); r != fencing.RolePrimary {
		return fmt.Errorf("node %d is %s, not primary", n.o.Node, r)
	}
	n.events <- SwitchoverRequested{Now: time.Now(), To: to}
	return nil
}

// Run runs the node until ctx is done; then it stops serving (checkpointing
// and releasing the lease if it holds it).
func (n *Node) Run(ctx context.Context) error {
	bc, err := heartbeat.Listen(n.o.Heartbeat, n.o.Peers)
	if err != nil {
		return err
	}
	n.bc = bc
	defer bc.Close()
	go bc.Receive(func(msg heartbeat.Message, at time.Time) {
		select {
		case n.events <- HeartbeatHeard{Now: at, From: msg.Node, Epoch: msg.Epoch, Role: Role(msg.Role)}:
		default:
		}
	})
	if n.o.VIP != nil {
		// A killed primary may have left the address on its interface.
		if err := n.o.VIP.Remove(); err != nil {
			n.log.Warn("remove a stale virtual address", "err", err)
		}
	}
	now := time.Now()
	n.m = NewMachine(Config{Node: n.o.Node, Incarnation: n.inc, Timing: n.o.Timing,
		HeartbeatTimeout: n.o.HeartbeatTimeout, ProbeTimeout: n.o.ProbeTimeout}, now)
	n.log.Info("node starting as backup", "incarnation", fmt.Sprintf("%x", n.inc), "service", n.o.Service,
		"heartbeat", bc.Addr().String(), "takeover_wait", n.o.Timing.TakeoverWait(), "settle", n.o.Timing.SettleDelay())
	poll := time.NewTicker(n.o.Timing.PollInterval)
	defer poll.Stop()
	lastHB, lastPres := time.Time{}, time.Time{}
	peers := make([]int, 0, len(n.o.Peers))
	for p := range n.o.Peers {
		peers = append(peers, p)
	}
	for {
		// A lost lease comes first, whatever else is queued.
		select {
		case ev := <-n.lost:
			n.do(n.m.Step(ev))
			continue
		default:
		}
		select {
		case <-ctx.Done():
			n.shutdown()
			return nil
		case ev := <-n.lost:
			n.do(n.m.Step(ev))
		case ev := <-n.events:
			n.do(n.m.Step(ev))
		case <-poll.C:
			now := time.Now()
			rec, raw, err := n.area.ReadLease()
			if err != nil {
				n.log.Warn("read lease", "err", err)
				n.met.ioErrors.WithLabelValues("lease_read").Inc()
			}
			n.do(n.m.Step(LeaseRead{Now: now, Rec: rec, Raw: raw, Err: err}))
			fence, err := n.mbox.Serve(peers)
			if err != nil {
				n.met.ioErrors.WithLabelValues("mailbox").Inc()
			}
			if fence > 0 {
				n.do(n.m.Step(FenceReceived{Now: now, Epoch: fence}))
			}
			if n.m.probe == probePending && n.m.probeSeq != 0 && n.m.probeSeq != ^uint64(0) {
				if ok, err := n.mbox.Answered(n.m.probeTo, n.m.probeSeq); err == nil && ok {
					n.do(n.m.Step(ProbeAnswered{Now: now, Seq: n.m.probeSeq}))
				}
			}
			if now.Sub(lastHB) >= n.o.HeartbeatInterval {
				role, _ := n.m.Role()
				if role == fencing.RolePrimary && n.gate() != nil {
					// A primary whose lease lapsed must not look alive.
					role = fencing.RoleFenced
				}
				bc.Send(heartbeat.Message{Node: n.o.Node, Incarnation: n.inc, Epoch: n.m.Epoch(), Role: uint8(role)})
				lastHB = now
			}
			if now.Sub(lastPres) >= presenceInterval {
				n.writePresence(now)
				lastPres = now
			}
			n.do(n.m.Step(Tick{Now: now}))
			if c := n.pending; c != nil && !now.Before(c.At) {
				n.pending = nil
				ok, cur, err := fencing.Confirm(n.area, c.Claim)
				n.do(n.m.Step(ClaimChecked{Now: time.Now(), OK: ok, Cur: cur, Err: err}))
			}
			n.updateStatus(now)
		}
	}
}

// gate is the current holder's write gate (an error when not holding).
func (n *Node) gate() error {
	n.mu.Lock()
	h := n.holder
	n.mu.Unlock()
	if h == nil {
		return errors.New("no lease held")
	}
	return h.Gate()
}

func (n *Node) writePresence(now time.Time) {
	role, _ := n.m.Role()
	n.presCount++
	err := n.area.WritePresence(fencing.Presence{Node: n.o.Node, Incarnation: n.inc, Counter: n.presCount,
		WallTime: now.UnixNano(), Epoch: n.m.Epoch(), Role: role, StatusURL: n.o.StatusURL, Service: n.o.Service})
	if err != nil {
		n.met.ioErrors.WithLabelValues("presence").Inc()
	}
}

func (n *Node) updateStatus(now time.Time) {
	role, reason := n.m.Role()
	hb, mb := n.m.PeerLink(now)
	rec := n.m.w.Record()
	last := make(map[int]int64)
	for p := range n.o.Peers {
		if t, _, ok := n.bc.LastHeard(p); ok {
			last[p] = now.Sub(t).Milliseconds()
		}
	}
	n.mu.Lock()
	n.status = Status{Node: n.o.Node, Role: role.String(), Reason: reason, Epoch: n.m.Epoch(),
		LeaseOwner: rec.Owner, LeaseState: rec.State.String(), LeaseEpoch: rec.Epoch,
		LeaseAgeMS: n.m.w.UnchangedFor(now).Milliseconds(), PeerHeartbeats: hb, Mailbox: mb,
		LastHeartbeatMS: last, Service: n.o.Service}
	if !n.servedAt.IsZero() {
		n.status.ServingSince = n.servedAt.Format(time.RFC3339Nano)
	}
	n.mu.Unlock()
	n.met.role.Set(float64(role))
	n.met.epoch.Set(float64(n.m.Epoch()))
	if hb {
		n.met.peerLink.Set(1)
	} else {
		n.met.peerLink.Set(0)
	}
}

// do carries out the machine's actions.
func (n *Node) do(acts []Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case Transition:
			n.log.Info("role change", "from", a.From.String(), "to", a.To.String(), "reason", a.Reason)
			n.met.transitions.WithLabelValues(a.From.String(), a.To.String()).Inc()
		case SendProbe:
			seq, err := n.mbox.Probe(a.To)
			if err != nil {
				n.log.Warn("mailbox probe", "to", a.To, "err", err)
			} else {
				n.log.Info("heartbeats from the primary stopped: probing it through the disk mailbox", "to", a.To, "seq", seq)
			}
			n.met.probes.Inc()
			n.do(n.m.Step(ProbeSent{Now: time.Now(), To: a.To, Seq: seq, Err: err}))
		case WriteClaim:
			err := n.area.WriteLease(a.Claim)
			n.do(n.m.Step(ClaimWritten{Now: time.Now(), Err: err}))
		case CheckClaim:
			c := a
			n.pending = &c
		case StartServing:
			err := n.startServing(a)
			n.do(n.m.Step(ServingStarted{Now: time.Now(), Err: err}))
		case StopServing:
			n.stopServing(a.Reason, false, 0)
			n.do(n.m.Step(ServingStopped{Now: time.Now()}))
		case Handoff:
			n.stopServing(fmt.Sprintf("switchover to node %d", a.To), true, a.To)
			n.do(n.m.Step(ServingStopped{Now: time.Now()}))
		}
	}
}

func (n *Node) startServing(a StartServing) error {
	start := time.Now()
	end := make(chan struct{})
	h := fencing.NewHolder(n.area, n.o.Timing, a.Claim, a.ClaimStart, nil, func(err error) {
		n.log.Error("lease lost: stopping all writes", "err", err)
		select {
		case n.lost <- LeaseLost{Now: time.Now(), Err: err}:
		default:
		}
	})
	// The claim's write started the lease; the settle delay used part of
	// it. Renew at once, so that serving starts with a full lease.
	if err := h.RenewAfterConfirm(); err != nil {
		return fmt.Errorf("first renewal after the claim: %w", err)
	}
	n.mu.Lock()
	n.holder, n.holderEnd = h, end
	n.mu.Unlock()
	go h.Run(end)
	if err := n.hard.arm(h.Gate, n.o.Timing.RenewInterval); err != nil {
		return err
	}
	if a.Previous != 0 && a.Previous != n.o.Node {
		if err := n.mbox.Fence(a.Previous, a.Claim.Epoch); err != nil {
			n.log.Warn("write fence message", "to", a.Previous, "err", err)
		}
	}
	base := n.o.StoreDisk
	if base == nil {
		base = n.o.Disk
	}
	gate := h.Gate
	if faultNoFence {
		gate = func() error { return nil }
	}
	var d shareddisk.Disk = &gatedDisk{Disk: base, gate: gate}
	if n.o.WrapStoreDisk != nil {
		d = n.o.WrapStoreDisk(d, h.Epoch)
	}
	st, err := fsstore.Open(d, fsstore.Options{Logger: n.log, WriteGate: gate,
		ReadCacheBytes: n.o.ReadCacheBytes, ReadCacheCounters: &n.rcc, JournaledWriteBlocks: n.o.JournaledWriteBlocks})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	replayed := time.Since(start)
	ep, err := st.BumpEpoch()
	if err != nil {
		st.Kill(err)
		return fmt.Errorf("bump epoch: %w", err)
	}
	var verf [8]byte
	binary.BigEndian.PutUint64(verf[:], ep)
	srv, err := nfs.New(st, nfs.Config{Exports: n.o.Exports, Verifier: verf, Logger: n.log,
		Metrics: n.nfsm, AfterCommit: n.o.AfterCommit, Gate: gate})
	if err != nil {
		st.Kill(err)
		return err
	}
	if n.o.VIP != nil {
		if err := n.o.VIP.Add(); err != nil {
			srv.Close()
			st.Kill(err)
			return err
		}
		n.log.Info("virtual address added", "vip", n.o.VIP.Prefix.String(), "dev", n.o.VIP.Dev)
	}
	l, err := listenReusePort(n.o.Service)
	if err != nil {
		srv.Close()
		st.Kill(err)
		return fmt.Errorf("bind service address %s: %w", n.o.Service, err)
	}
	go srv.Serve(l)
	n.mu.Lock()
	n.store, n.srv, n.servedAt = st, srv, time.Now()
	n.stc.cur = st
	n.mu.Unlock()
	if n.o.OnServing != nil {
		n.o.OnServing(st, true)
	}
	n.met.takeovers.Inc()
	n.log.Info("serving NFS", "service", n.o.Service, "lease_epoch", a.Claim.Epoch, "verifier_epoch", ep,
		"replay", replayed.Round(time.Millisecond), "takeover", time.Since(a.ClaimStart).Round(time.Millisecond))
	return nil
}

// stopServing stops the NFS service and the store. A clean stop (hand-off
// or shutdown) checkpoints and releases the lease; a fenced stop writes
// nothing more.
func (n *Node) stopServing(reason string, clean bool, handoffTo int) {
	n.mu.Lock()
	srv, st, h, end := n.srv, n.store, n.holder, n.holderEnd
	n.srv, n.store, n.holder, n.holderEnd, n.servedAt = nil, nil, nil, nil, time.Time{}
	n.mu.Unlock()
	if srv != nil {
		closed := srv.CloseClients()
		srv.Close()
		n.log.Warn("stopped serving NFS: closed every client connection", "clients", closed, "reason", reason)
	}
	if n.o.VIP != nil && srv != nil {
		if err := n.o.VIP.Remove(); err != nil {
			n.log.Error("remove virtual address", "err", err)
		} else {
			n.log.Info("virtual address removed", "vip", n.o.VIP.Prefix.String())
		}
	}
	if n.o.OnServing != nil && st != nil {
		n.o.OnServing(st, false)
	}
	if st != nil {
		if clean && h != nil && h.Err() == nil {
			if err := st.Close(); err != nil {
				n.log.Error("close store", "err", err)
			}
		} else {
			st.Kill(errors.New(reason))
		}
		n.endStore(st)
	}
	if end != nil {
		close(end)
	}
	lostLease := h != nil && h.Err() != nil && !clean
	n.hard.release(clean || h == nil || h.Err() == nil)
	if lostLease {
		n.hard.fenced(h.Epoch(), reason)
	}
	if clean && h != nil && h.Err() == nil {
		if err := h.Release(handoffTo); err != nil {
			n.log.Error("release lease", "err", err)
		} else {
			n.log.Info("lease released", "handoff_to", handoffTo)
		}
	}
}

func (n *Node) shutdown() {
	if r, _ := n.m.Role(); r == fencing.RolePrimary {
		n.stopServing("shutdown", true, 0)
	} else {
		n.stopServing("shutdown", false, 0)
	}
	n.writePresenceStopped()
}

func (n *Node) writePresenceStopped() {
	n.presCount++
	_ = n.area.WritePresence(fencing.Presence{Node: n.o.Node, Incarnation: n.inc, Counter: n.presCount,
		WallTime: time.Now().UnixNano(), Epoch: n.m.Epoch(), Role: fencing.RoleStopped, StatusURL: n.o.StatusURL, Service: n.o.Service})
}

// gatedDisk checks the lease right before every write reaches the disk, so
// that no write starts after the holder's deadline, however long the path to
// it took.
type gatedDisk struct {
	shareddisk.Disk
	gate func() error
}

func (d *gatedDisk) WriteAt(p []byte, off int64) (int, error) {
	if err := d.gate(); err != nil {
		return 0, fmt.Errorf("write at block %d refused: %w", off/shareddisk.BlockSize, err)
	}
	return d.Disk.WriteAt(p, off)
}

func (d *gatedDisk) Flush() error {
	if err := d.gate(); err != nil {
		return fmt.Errorf("flush refused: %w", err)
	}
	return d.Disk.Flush()
}

// listenReusePort listens with SO_REUSEPORT, so a new primary can bind the
// service address even while a stopped (SIGSTOP) old primary still holds
// its socket; the old one closes it as soon as it runs again.
func listenReusePort(addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(context.Background(), "tcp", addr)
}
