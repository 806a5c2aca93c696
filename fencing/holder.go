package fencing

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrLeaseLost reports that another node took the lease, or it was released.
var ErrLeaseLost = errors.New("lease lost")

// ErrLeaseExpired reports that the holder's renewal deadline passed by its
// own clock: it must not write any more.
var ErrLeaseExpired = errors.New("lease expired")

// Holder is a node's hold on the lease, from a confirmed claim until the
// lease is lost, expires or is released. It renews the lease and answers the
// write gate: file-system writes are allowed only before the deadline.
type Holder struct {
	area *Area
	t    Timing
	now  func() time.Time

	mu       sync.Mutex
	rec      Lease
	deadline time.Time // file-system writes must start before it
	lastOK   time.Time // start of the last successful lease write
	lost     error
	// onLost is called once, from the renewing goroutine, when the lease is
	// lost or expires.
	onLost func(error)
}

// NewHolder returns the holder of a confirmed claim rec, made at claimStart
// (the time just before the claim's write was issued).
func NewHolder(area *Area, t Timing, rec Lease, claimStart time.Time, now func() time.Time, onLost func(error)) *Holder {
	if now == nil {
		now = time.Now
	}
	return &Holder{area: area, t: t, now: now, rec: rec, deadline: claimStart.Add(t.Validity()), lastOK: claimStart, onLost: onLost}
}

// Epoch returns the epoch of the held lease.
func (h *Holder) Epoch() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rec.Epoch
}

// Record returns the lease record as last written.
func (h *Holder) Record() Lease {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rec
}

// Deadline returns the time after which the holder may not start writes.
func (h *Holder) Deadline() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.deadline
}

// Gate returns nil while the holder may write to the file system. Call it
// right before every disk write.
func (h *Holder) Gate() error {
	h.mu.Lock()
	if h.lost != nil {
		err := h.lost
		h.mu.Unlock()
		return err
	}
	now := h.now()
	if now.Before(h.deadline) {
		h.mu.Unlock()
		return nil
	}
	err := fmt.Errorf("%w: renewal deadline passed %v ago (epoch %d)", ErrLeaseExpired, now.Sub(h.deadline).Round(time.Millisecond), h.rec.Epoch)
	renewable := now.Before(h.lastOK.Add(h.t.RenewWindow()))
	h.mu.Unlock()
	if renewable {
		return err // a renewal in time can still reopen the gate
	}
	h.lose(err) // tells onLost, once
	return h.Err()
}

// Err returns why the lease is gone, or nil while it is held.
func (h *Holder) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lost
}

func (h *Holder) lose(err error) {
	h.mu.Lock()
	first := h.lost == nil
	if first {
		h.lost = err
	}
	cb := h.onLost
	h.mu.Unlock()
	if first && cb != nil {
		cb(err)
	}
}

// Renew reads the lease record, checks that it is still ours, and writes it
// back with the counter bumped. On success the deadline moves to the time
// the renewal started plus the validity. A record that is no longer ours
// loses the lease at once; an I/O failure leaves the deadline where it was.
func (h *Holder) Renew() error {
	if err := h.Err(); err != nil {
		return err
	}
	start := h.now()
	cur, _, err := h.area.ReadLease()
	if err != nil {
		h.checkExpiry()
		return fmt.Errorf("renew: %w", err)
	}
	h.mu.Lock()
	mine := h.rec
	h.mu.Unlock()
	if cur.State != Held || cur.Owner != mine.Owner || cur.Epoch != mine.Epoch || cur.Incarnation != mine.Incarnation {
		err := fmt.Errorf("%w: the lease record now says %s by node %d at epoch %d (we held epoch %d)", ErrLeaseLost, cur.State, cur.Owner, cur.Epoch, mine.Epoch)
		h.lose(err)
		return err
	}
	next := mine
	next.Counter = cur.Counter + 1
	return h.write(next, start)
}

// RenewAfterConfirm is the first renewal after a confirmed claim: the
// confirming read just showed the record is ours, so it writes at once.
// The claim's settle delay used most of the validity; this write gives the
// new holder a full lease before it starts writing the file system.
func (h *Holder) RenewAfterConfirm() error {
	if err := h.Err(); err != nil {
		return err
	}
	h.mu.Lock()
	next := h.rec
	h.mu.Unlock()
	next.Counter++
	return h.write(next, h.now())
}

// write writes the lease record next, started at start. A lease write is
// only allowed within the renew window of the last successful one: a write
// read long ago (a pause) could otherwise overwrite a new owner's claim.
func (h *Holder) write(next Lease, start time.Time) error {
	h.mu.Lock()
	window := h.lastOK.Add(h.t.RenewWindow())
	h.mu.Unlock()
	if !h.now().Before(window) {
		err := fmt.Errorf("%w: no successful renewal within the renew window %v", ErrLeaseExpired, h.t.RenewWindow())
		h.lose(err)
		return err
	}
	if err := h.area.WriteLease(next); err != nil {
		h.checkExpiry()
		return fmt.Errorf("renew: %w", err)
	}
	h.mu.Lock()
	if h.lost == nil {
		h.rec = next
		h.lastOK = start
		if d := start.Add(h.t.Validity()); d.After(h.deadline) {
			h.deadline = d
		}
	}
	h.mu.Unlock()
	return h.Err()
}

// checkExpiry loses the lease once no renewal can be written any more (the
// renew window of the last successful lease write has passed).
func (h *Holder) checkExpiry() error {
	h.mu.Lock()
	expired := h.lost == nil && !h.now().Before(h.lastOK.Add(h.t.RenewWindow()))
	h.mu.Unlock()
	if expired {
		err := fmt.Errorf("%w: no successful renewal within the renew window %v", ErrLeaseExpired, h.t.RenewWindow())
		h.lose(err)
		return err
	}
	return h.Err()
}

// Run renews every RenewInterval until stop is closed or the lease is lost.
func (h *Holder) Run(stop <-chan struct{}) {
	tk := time.NewTicker(h.t.RenewInterval)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
			_ = h.Renew()
			if h.Err() != nil {
				return
			}
		}
	}
}

// Release gives the lease up for a planned switchover: the record becomes
// released, handed to node target (0: any), with the same epoch. The holder
// may not write afterwards.
func (h *Holder) Release(target int) error {
	h.mu.Lock()
	rec := h.rec
	h.mu.Unlock()
	if err := h.Err(); err != nil {
		return err
	}
	rec.State, rec.HandoffTo = Released, target
	h.mu.Lock()
	if h.lost == nil {
		h.lost = fmt.Errorf("%w: released (hand-off to node %d)", ErrLeaseLost, target)
	}
	h.mu.Unlock()
	return h.area.WriteLease(rec)
}
