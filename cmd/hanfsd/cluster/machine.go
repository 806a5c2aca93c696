// Package cluster runs a hanfs node: the role state machine (backup,
// candidate, primary, fenced) and the driver that feeds it the disk lease,
// the heartbeats and the mailbox, and carries out its decisions (claim the
// lease, start or stop serving NFS, hand off).
//
// The state machine (Machine) does no I/O and reads no clock: every event
// carries the time, and every decision is an Action for the driver. It is
// tested with a fake clock, a fake network and a fake disk.
package cluster

import (
	"fmt"
	"time"

	"github.com/hanfs/hanfs/fencing"
)

// Role is a node's role.
type Role = fencing.Role

// Config is what the state machine needs to know.
type Config struct {
	Node        int
	Incarnation uint64
	Timing      fencing.Timing
	// HeartbeatTimeout: no heartbeat from the primary for this long makes
	// the backup probe the primary through the disk mailbox.
	HeartbeatTimeout time.Duration
	// ProbeTimeout: a probe not answered within this is a silent mailbox.
	ProbeTimeout time.Duration
}

// Events fed to the machine.
type (
	// Tick is the passing of time.
	Tick struct{ Now time.Time }
	// LeaseRead is a read of the lease record.
	LeaseRead struct {
		Now time.Time
		Rec fencing.Lease
		Raw []byte
		Err error
	}
	// HeartbeatHeard is a network heartbeat from a peer.
	HeartbeatHeard struct {
		Now   time.Time
		From  int
		Epoch uint64
		Role  Role
	}
	// ProbeSent reports that a mailbox probe was written (or failed).
	ProbeSent struct {
		Now time.Time
		To  int
		Seq uint64
		Err error
	}
	// ProbeAnswered reports that the probed node answered in its mailbox.
	ProbeAnswered struct {
		Now time.Time
		Seq uint64
	}
	// ClaimWritten reports the claim write's result.
	ClaimWritten struct {
		Now time.Time
		Err error
	}
	// ClaimChecked reports the claim confirmation read.
	ClaimChecked struct {
		Now time.Time
		OK  bool
		Cur fencing.Lease
		Err error
	}
	// ServingStarted reports the end of the takeover (store opened, journal
	// replayed, NFS listening), or its failure.
	ServingStarted struct {
		Now time.Time
		Err error
	}
	// LeaseLost reports that the holder lost or let expire the lease.
	LeaseLost struct {
		Now time.Time
		Err error
	}
	// FenceReceived reports a fence message in the mailbox.
	FenceReceived struct {
		Now   time.Time
		Epoch uint64
	}
	// ServingStopped reports that serving has fully stopped.
	ServingStopped struct{ Now time.Time }
	// SwitchoverRequested asks a primary to hand the role to node To.
	SwitchoverRequested struct {
		Now time.Time
		To  int
	}
)

// Actions the driver carries out.
type (
	// SendProbe asks the driver to probe node To through the mailbox.
	SendProbe struct{ To int }
	// WriteClaim asks the driver to write the claim record.
	WriteClaim struct{ Claim fencing.Lease }
	// CheckClaim asks the driver to read the lease back at time At.
	CheckClaim struct {
		Claim fencing.Lease
		At    time.Time
	}
	// StartServing asks the driver to take over: hold the lease, fence the
	// previous owner, open the store and serve.
	StartServing struct {
		Claim      fencing.Lease
		ClaimStart time.Time
		Previous   int
	}
	// StopServing asks the driver to stop at once: close every client,
	// write nothing more.
	StopServing struct{ Reason string }
	// Handoff asks the driver to stop serving cleanly and release the lease
	// to node To.
	Handoff struct{ To int }
	// Transition reports a change of role, for the log and metrics.
	Transition struct {
		From, To Role
		Reason   string
	}
)

type probeState int

const (
	probeIdle probeState = iota
	probePending
	probeAnswered
	probeSilent
)

// Machine is a node's role state machine.
type Machine struct {
	cfg     Config
	role    Role
	started time.Time
	w       fencing.Watcher
	leaseOK bool

	hbFrom map[int]time.Time // heartbeats from a node that says it is primary
	hbAny  map[int]time.Time // any heartbeat: the peer link is up

	probe      probeState
	probeTo    int
	probeSeq   uint64
	probeAt    time.Time
	answeredAt time.Time

	claim      fencing.Lease
	claimStart time.Time
	prevOwner  int
	fast       bool
	checking   bool

	epoch    uint64
	maxEpoch uint64 // the highest epoch seen on the disk, in heartbeats or held
	reason   string
}

// NewMachine returns a machine that starts as a backup at now.
func NewMachine(cfg Config, now time.Time) *Machine {
	return &Machine{cfg: cfg, role: fencing.RoleBackup, started: now, hbFrom: make(map[int]time.Time), hbAny: make(map[int]time.Time)}
}

// Role returns the current role and the reason it was entered.
func (m *Machine) Role() (Role, string) { return m.role, m.reason }

// Epoch returns the epoch of the lease this node holds or held last.
func (m *Machine) Epoch() uint64 { return m.epoch }

// PeerLink reports whether heartbeats from the lease owner arrive, and
// whether the owner answered the last mailbox probe.
func (m *Machine) PeerLink(now time.Time) (heartbeats bool, mailbox string) {
	if m.role == fencing.RolePrimary {
		for _, t := range m.hbAny {
			if now.Sub(t) <= m.cfg.HeartbeatTimeout {
				return true, "idle"
			}
		}
		return false, "idle"
	}
	owner := m.w.Record().Owner
	t, ok := m.hbAny[owner]
	hb := ok && now.Sub(t) <= m.cfg.HeartbeatTimeout
	return hb, [...]string{"idle", "probing", "answered", "silent"}[m.probe]
}

func (m *Machine) lastHeard(node int) time.Time {
	if t, ok := m.hbFrom[node]; ok {
		return t
	}
	return m.started
}

func (m *Machine) become(r Role, reason string, acts []Action) []Action {
	if r == m.role {
		return acts
	}
	from := m.role
	m.role, m.reason = r, reason
	return append(acts, Transition{From: from, To: r, Reason: reason})
}

// Action is something the driver must do.
type Action any

// Event is something that happened.
type Event any

// Step feeds one event to the machine and returns what to do.
func (m *Machine) Step(ev Event) []Action {
	switch e := ev.(type) {
	case LeaseRead:
		if e.Err != nil {
			m.leaseOK = false
			return nil
		}
		m.leaseOK = true
		m.maxEpoch = max(m.maxEpoch, e.Rec.Epoch)
		if m.w.Observe(e.Rec, e.Raw, e.Now) && m.probe == probeSilent {
			// The lease moved: its holder is alive on the disk.
			m.probe = probeIdle
		}
		return nil
	case HeartbeatHeard:
		m.hbAny[e.From] = e.Now
		m.maxEpoch = max(m.maxEpoch, e.Epoch)
		// Only a heartbeat that says "primary" proves the primary alive: a
		// primary that fenced itself (say, its disk stalled) keeps sending
		// heartbeats as a backup.
		if e.Role == fencing.RolePrimary {
			m.hbFrom[e.From] = e.Now
		}
		return nil
	case ProbeSent:
		if m.probe == probePending && e.To == m.probeTo {
			m.probeSeq = e.Seq
			if e.Err != nil {
				m.probeSeq = ^uint64(0)
			}
		}
		return nil
	case ProbeAnswered:
		if m.probe == probePending && e.Seq == m.probeSeq {
			m.probe, m.answeredAt = probeAnswered, e.Now
		}
		return nil
	case Tick:
		return m.tick(e.Now)
	case ClaimWritten:
		if m.role != fencing.RoleCandidate {
			return nil
		}
		if e.Err != nil {
			m.w.Reset()
			return m.become(fencing.RoleBackup, fmt.Sprintf("claim write failed: %v", e.Err), nil)
		}
		at := m.claimStart.Add(m.cfg.Timing.SettleDelay())
		if m.fast {
			at = e.Now
		}
		m.checking = true
		return []Action{CheckClaim{Claim: m.claim, At: at}}
	case ClaimChecked:
		if m.role != fencing.RoleCandidate || !m.checking {
			return nil
		}
		m.checking = false
		if e.Err != nil || !e.OK {
			m.w.Reset()
			why := "another node's claim won"
			if e.Err != nil {
				why = fmt.Sprintf("claim check failed: %v", e.Err)
			}
			return m.become(fencing.RoleBackup, why, nil)
		}
		m.epoch = m.claim.Epoch
		acts := m.become(fencing.RolePrimary, fmt.Sprintf("lease claimed at epoch %d", m.claim.Epoch), nil)
		return append(acts, StartServing{Claim: m.claim, ClaimStart: m.claimStart, Previous: m.prevOwner})
	case ServingStarted:
		if m.role == fencing.RolePrimary && e.Err != nil {
			acts := m.become(fencing.RoleFenced, fmt.Sprintf("could not start serving: %v", e.Err), nil)
			return append(acts, StopServing{Reason: m.reason})
		}
		return nil
	case LeaseLost:
		if m.role != fencing.RolePrimary {
			return nil
		}
		acts := m.become(fencing.RoleFenced, fmt.Sprintf("lease lost: %v", e.Err), nil)
		return append(acts, StopServing{Reason: m.reason})
	case FenceReceived:
		if m.role != fencing.RolePrimary || e.Epoch <= m.epoch {
			return nil
		}
		acts := m.become(fencing.RoleFenced, fmt.Sprintf("fenced through the mailbox by epoch %d", e.Epoch), nil)
		return append(acts, StopServing{Reason: m.reason})
	case ServingStopped:
		if m.role == fencing.RoleFenced || m.role == fencing.RolePrimary {
			m.w.Reset()
			m.probe = probeIdle
			m.started = e.Now
			return m.become(fencing.RoleBackup, "rejoined as backup", nil)
		}
		return nil
	case SwitchoverRequested:
		if m.role != fencing.RolePrimary {
			return nil
		}
		acts := m.become(fencing.RoleFenced, fmt.Sprintf("switchover to node %d", e.To), nil)
		return append(acts, Handoff{To: e.To})
	}
	return nil
}

func (m *Machine) tick(now time.Time) []Action {
	if m.role != fencing.RoleBackup || !m.leaseOK {
		return nil
	}
	rec := m.w.Record()
	switch rec.State {
	case fencing.Free:
		return m.startClaim(now, rec, false, "the lease is free (new disk)")
	case fencing.Released:
		if rec.HandoffTo == m.cfg.Node {
			return m.startClaim(now, rec, true, fmt.Sprintf("node %d handed the lease over", rec.Owner))
		}
		if rec.HandoffTo == 0 {
			return m.startClaim(now, rec, false, fmt.Sprintf("node %d released the lease", rec.Owner))
		}
		// Released to another node: wait, but not forever.
		if m.w.UnchangedFor(now) >= m.cfg.Timing.TakeoverWait()+m.cfg.Timing.SettleDelay() {
			return m.startClaim(now, rec, false, fmt.Sprintf("node %d did not take the hand-off", rec.HandoffTo))
		}
		return nil
	}
	owner := rec.Owner
	if owner == m.cfg.Node && rec.Incarnation == m.cfg.Incarnation {
		// Our own record, left by a takeover that failed or a demotion: this
		// process is not writing, and no other node holds the lease (it
		// would have changed the record). Claim again after a short pause.
		if m.w.UnchangedFor(now) >= m.cfg.Timing.SettleDelay() {
			return m.startClaim(now, rec, false, "the lease record is this process's own, from a start that failed")
		}
		return nil
	}
	if now.Sub(m.lastHeard(owner)) <= m.cfg.HeartbeatTimeout {
		m.probe = probeIdle
		return nil
	}
	switch m.probe {
	case probeIdle:
		m.probe, m.probeTo, m.probeAt, m.probeSeq = probePending, owner, now, 0
		return []Action{SendProbe{To: owner}}
	case probePending:
		if now.Sub(m.probeAt) > m.cfg.ProbeTimeout {
			m.probe = probeSilent
		}
	case probeAnswered:
		// The peer link is down but the primary answers on the disk: do
		// not take over. Probe again now and then, in case it dies later.
		if now.Sub(m.answeredAt) > m.cfg.ProbeTimeout {
			m.probe = probeIdle
		}
		return nil
	}
	if m.probe == probeSilent && m.w.UnchangedFor(now) >= m.cfg.Timing.TakeoverWait() {
		return m.startClaim(now, rec, false, fmt.Sprintf("node %d: no heartbeat for %v, no answer in the mailbox, lease unrenewed for %v",
			owner, now.Sub(m.lastHeard(owner)).Round(time.Millisecond), m.w.UnchangedFor(now).Round(time.Millisecond)))
	}
	return nil
}

func (m *Machine) startClaim(now time.Time, prev fencing.Lease, fast bool, why string) []Action {
	// Claim above every epoch seen, not just the record's: a stale write
	// may have put an older epoch back, and no epoch may be used twice.
	base := prev
	base.Epoch = max(prev.Epoch, m.maxEpoch)
	m.claim = fencing.ClaimFor(base, m.cfg.Node, m.cfg.Incarnation)
	m.maxEpoch = m.claim.Epoch
	m.claimStart, m.fast, m.prevOwner = now, fast, prev.Owner
	m.probe = probeIdle
	acts := m.become(fencing.RoleCandidate, why, nil)
	return append(acts, WriteClaim{Claim: m.claim})
}
