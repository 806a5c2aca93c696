package fencing

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// ErrHeld reports that a live node holds the lease.
var ErrHeld = errors.New("the lease is held by a live node")

// Acquire takes the lease for a node outside a cluster's state machine (a
// local FUSE mount): if the record is held or handed to another node, it
// watches it for the full takeover wait and fails with ErrHeld if it moves;
// then it claims, waits the settle delay and confirms. It returns the claim
// and when it was started, for NewHolder.
func Acquire(a *Area, t Timing, node int, incarnation uint64) (Lease, time.Time, error) {
	rec, raw, err := a.ReadLease()
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return Lease{}, time.Time{}, err
	}
	busy := rec.State == Held || (rec.State == Released && rec.HandoffTo != 0 && rec.HandoffTo != node)
	if busy || err != nil {
		start := time.Now()
		for time.Since(start) < t.TakeoverWait() {
			time.Sleep(t.PollInterval)
			cur, raw2, err := a.ReadLease()
			if err != nil && !errors.Is(err, ErrCorrupt) {
				return Lease{}, time.Time{}, err
			}
			if !bytes.Equal(raw, raw2) {
				return Lease{}, time.Time{}, a.heldError(cur)
			}
		}
	}
	claim := ClaimFor(rec, node, incarnation)
	claimStart := time.Now()
	if err := a.WriteLease(claim); err != nil {
		return Lease{}, time.Time{}, fmt.Errorf("claim the lease: %w", err)
	}
	time.Sleep(t.SettleDelay())
	ok, cur, err := Confirm(a, claim)
	if err != nil {
		return Lease{}, time.Time{}, err
	}
	if !ok {
		return Lease{}, time.Time{}, a.heldError(cur)
	}
	return claim, claimStart, nil
}

func (a *Area) heldError(cur Lease) error {
	who := fmt.Sprintf("node %d", cur.Owner)
	if p, ok, err := a.ReadPresence(cur.Owner); err == nil && ok && p.StatusURL != "" {
		who += fmt.Sprintf(" (%s, status %s/status)", p.Role, p.StatusURL)
	}
	return fmt.Errorf("%w: %s holds it at epoch %d and renews it; stop that node (or run \"hanfsd switchover\" towards another) before using the disk here", ErrHeld, who, cur.Epoch)
}
