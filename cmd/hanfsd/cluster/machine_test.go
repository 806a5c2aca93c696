package cluster

import (
	"testing"
	"time"

	"github.com/hanfs/hanfs/fencing"
)

// sim is a fake world for state machines: a fake clock, a fake disk (the
// lease record and mailbox answers) and a fake network (heartbeats that can
// be cut). Nodes step in lock step every poll interval.
type sim struct {
	t      *testing.T
	now    time.Time
	lease  fencing.Lease
	nodes  map[int]*simNode
	netCut bool
}

type simNode struct {
	id       int
	m        *Machine
	alive    bool // process running (answers the mailbox, renews)
	diskOK   bool // its disk I/O works
	serving  bool
	pending  *CheckClaim
	renewed  time.Time
	probeSeq uint64
	acked    uint64
}

func newSim(t *testing.T, ids ...int) *sim {
	s := &sim{t: t, now: time.Unix(1000, 0), nodes: map[int]*simNode{}}
	for _, id := range ids {
		cfg := Config{Node: id, Incarnation: uint64(id) * 100, Timing: fencing.DefaultTiming(),
			HeartbeatTimeout: 400 * time.Millisecond, ProbeTimeout: 250 * time.Millisecond}
		s.nodes[id] = &simNode{id: id, m: NewMachine(cfg, s.now), alive: true, diskOK: true}
	}
	return s
}

func (s *sim) raw() []byte {
	l := s.lease
	return []byte{byte(l.State), byte(l.Owner), byte(l.Epoch), byte(l.Counter), byte(l.Counter >> 8)}
}

func (s *sim) apply(n *simNode, acts []Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case SendProbe:
			n.probeSeq++
			s.apply(n, n.m.Step(ProbeSent{Now: s.now, To: a.To, Seq: n.probeSeq}))
		case WriteClaim:
			if n.diskOK {
				s.lease = a.Claim
			}
			s.apply(n, n.m.Step(ClaimWritten{Now: s.now}))
		case CheckClaim:
			c := a
			n.pending = &c
		case StartServing:
			n.serving, n.renewed = true, s.now
			s.apply(n, n.m.Step(ServingStarted{Now: s.now}))
		case StopServing, Handoff:
			if h, ok := a.(Handoff); ok {
				s.lease.State, s.lease.HandoffTo = fencing.Released, h.To
			}
			n.serving = false
			s.apply(n, n.m.Step(ServingStopped{Now: s.now}))
		}
	}
}

// step advances the world by one poll interval.
func (s *sim) step() {
	s.now = s.now.Add(25 * time.Millisecond)
	for _, n := range s.nodes {
		if !n.alive {
			continue
		}
		// The primary renews (a holder whose disk fails cannot) and sends
		// heartbeats; everyone reads the lease and answers probes.
		if n.serving && n.diskOK && s.lease.Owner == n.id && s.now.Sub(n.renewed) >= 100*time.Millisecond {
			s.lease.Counter++
			n.renewed = s.now
		}
		if n.serving && s.now.Sub(n.renewed) > fencing.DefaultTiming().Validity() {
			s.apply(n, n.m.Step(LeaseLost{Now: s.now}))
		}
		if n.serving && s.lease.Owner != n.id {
			s.apply(n, n.m.Step(LeaseLost{Now: s.now}))
		}
		if n.diskOK {
			s.apply(n, n.m.Step(LeaseRead{Now: s.now, Rec: s.lease, Raw: s.raw()}))
		}
		for _, o := range s.nodes {
			if o != n && o.alive && !s.netCut {
				r, _ := o.m.Role()
				s.apply(n, n.m.Step(HeartbeatHeard{Now: s.now, From: o.id, Role: r}))
			}
			// Mailbox: a live node with a working disk answers probes.
			if o != n && o.alive && o.diskOK && n.m.probe == probePending && n.m.probeTo == o.id {
				s.apply(n, n.m.Step(ProbeAnswered{Now: s.now, Seq: n.m.probeSeq}))
			}
		}
		s.apply(n, n.m.Step(Tick{Now: s.now}))
		if c := n.pending; c != nil && !s.now.Before(c.At) {
			n.pending = nil
			s.apply(n, n.m.Step(ClaimChecked{Now: s.now, OK: s.lease == c.Claim, Cur: s.lease}))
		}
	}
}

func (s *sim) run(d time.Duration) {
	for end := s.now.Add(d); s.now.Before(end); {
		s.step()
		s.checkOneServer()
	}
}

func (s *sim) checkOneServer() {
	count := 0
	for _, n := range s.nodes {
		if n.serving && n.alive {
			count++
		}
	}
	if count > 1 {
		s.t.Fatalf("%v: %d nodes serving at once", s.now, count)
	}
}

func (s *sim) primary() int {
	for _, n := range s.nodes {
		if r, _ := n.m.Role(); r == fencing.RolePrimary && n.alive {
			return n.id
		}
	}
	return 0
}

func TestFreshDiskOnePrimary(t *testing.T) {
	s := newSim(t, 1, 2)
	s.run(2 * time.Second)
	if s.primary() == 0 {
		t.Fatal("no primary on a fresh disk")
	}
}

func TestTakeoverAfterCrash(t *testing.T) {
	s := newSim(t, 1, 2)
	s.run(2 * time.Second)
	old := s.primary()
	s.nodes[old].alive, s.nodes[old].serving = false, false
	killed := s.now
	for s.primary() == 0 || s.primary() == old {
		s.step()
		if s.now.Sub(killed) > 5*time.Second {
			t.Fatal("no takeover within 5 s of the crash")
		}
	}
	took := s.now.Sub(killed)
	if took < fencing.DefaultTiming().TakeoverWait() {
		t.Fatalf("took over after %v, before the lease could have lapsed", took)
	}
	if s.lease.Epoch != 2 {
		t.Fatalf("epoch %d after takeover, want 2", s.lease.Epoch)
	}
	t.Logf("takeover %v after the crash", took)
}

func TestPartitionDoesNotTakeOver(t *testing.T) {
	s := newSim(t, 1, 2)
	s.run(2 * time.Second)
	p := s.primary()
	s.netCut = true
	s.run(5 * time.Second)
	if s.primary() != p || s.lease.Epoch != 1 {
		t.Fatalf("took over during a partition: primary %d epoch %d", s.primary(), s.lease.Epoch)
	}
	backup := s.nodes[3-p]
	if hb, mb := backup.m.PeerLink(s.now); hb || (mb != "answered" && mb != "probing" && mb != "idle") {
		t.Fatalf("backup's view of the peer link: heartbeats %v mailbox %s", hb, mb)
	}
}

func TestRenewingPrimaryWithSilentMailboxKeepsLease(t *testing.T) {
	// Heartbeats cut and mailbox answers lost, but the lease is renewed:
	// the holder is alive on the disk, so nobody takes over.
	s := newSim(t, 1, 2)
	s.run(2 * time.Second)
	p := s.primary()
	s.netCut = true
	backup := s.nodes[3-p]
	for end := s.now.Add(5 * time.Second); s.now.Before(end); {
		s.step()
		backup.m.probe = probeSilent // nobody answers
		s.checkOneServer()
	}
	if s.lease.Owner != p || s.lease.Epoch != 1 {
		t.Fatalf("a renewed lease was taken: %+v", s.lease)
	}
}

func TestDiskStallFencesPrimary(t *testing.T) {
	s := newSim(t, 1, 2)
	s.run(2 * time.Second)
	p := s.primary()
	s.nodes[p].diskOK = false
	s.run(5 * time.Second)
	if s.nodes[p].serving {
		t.Fatal("the primary kept serving with a stalled disk")
	}
	if np := s.primary(); np == p || np == 0 {
		t.Fatalf("no takeover after the primary's disk stalled (primary %d)", np)
	}
}

func TestHandoffIsFast(t *testing.T) {
	s := newSim(t, 1, 2)
	s.run(2 * time.Second)
	p := s.primary()
	s.apply(s.nodes[p], s.nodes[p].m.Step(SwitchoverRequested{Now: s.now, To: 3 - p}))
	start := s.now
	for s.primary() != 3-p {
		s.step()
		if s.now.Sub(start) > 500*time.Millisecond {
			t.Fatal("hand-off took longer than 0.5 s")
		}
	}
	if r, _ := s.nodes[p].m.Role(); r != fencing.RoleBackup {
		t.Fatalf("old primary is %v after the hand-off", r)
	}
}

func TestFenceMessageStopsPrimary(t *testing.T) {
	s := newSim(t, 1)
	s.run(2 * time.Second)
	n := s.nodes[1]
	acts := n.m.Step(FenceReceived{Now: s.now, Epoch: 5})
	stopped := false
	for _, a := range acts {
		if _, ok := a.(StopServing); ok {
			stopped = true
		}
	}
	if !stopped {
		t.Fatal("a fence message with a higher epoch did not stop the primary")
	}
}
