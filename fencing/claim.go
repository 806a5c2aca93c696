package fencing

import (
	"bytes"
	"fmt"
	"time"
)

// Watcher tracks how long the lease record has stayed unchanged, by the
// watcher's own clock.
type Watcher struct {
	raw       []byte
	rec       Lease
	changedAt time.Time
	have      bool
}

// Observe records a read of the lease made at now; it reports whether the
// record changed since the previous read.
func (w *Watcher) Observe(rec Lease, raw []byte, now time.Time) bool {
	if w.have && bytes.Equal(raw, w.raw) {
		return false
	}
	w.raw = append(w.raw[:0], raw...)
	w.rec, w.changedAt, w.have = rec, now, true
	return true
}

// Record returns the last record observed.
func (w *Watcher) Record() Lease { return w.rec }

// UnchangedFor returns how long the record has been seen unchanged.
func (w *Watcher) UnchangedFor(now time.Time) time.Duration {
	if !w.have {
		return 0
	}
	return now.Sub(w.changedAt)
}

// Reset forgets the history, so the full wait starts again.
func (w *Watcher) Reset() { w.have = false }

// ClaimFor returns the record node writes to claim the lease after prev.
func ClaimFor(prev Lease, node int, incarnation uint64) Lease {
	return Lease{State: Held, Owner: node, Epoch: prev.Epoch + 1, Incarnation: incarnation}
}

// Confirm reads the lease record back after the settle delay and reports
// whether the claim stands.
func Confirm(a *Area, claim Lease) (bool, Lease, error) {
	cur, _, err := a.ReadLease()
	if err != nil {
		return false, cur, fmt.Errorf("confirm claim: %w", err)
	}
	return cur == claim, cur, nil
}
