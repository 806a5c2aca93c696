package faultdisk

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hanfs/hanfs/shareddisk"
)

// Disk is a fault-injecting shareddisk.Disk. It is safe for concurrent use.
type Disk struct {
	inner shareddisk.Disk

	mu       sync.RWMutex // guards the fields below
	pending  []pendingWrite
	dead     bool // after a power cut
	closed   bool
	writes   int
	flushes  int
	rnd      *rand.Rand // picks torn prefixes for PowerCut
	cutWrite int        // k of CutAtWrite, 0 if unset
	cutWRand *rand.Rand
	cutFlush int // k of CutAtFlush, 0 if unset
	cutFRand *rand.Rand

	hmu   sync.RWMutex // guards the hooks
	fault func(op Op, off int64, n int) error
	stall func(op Op, off int64, n int) time.Duration
	hook  func(off int64, p []byte)
}

// New wraps inner. Torn writes of PowerCut use a rand seeded with 1 until
// SetRand replaces it.
func New(inner shareddisk.Disk) *Disk {
	return &Disk{inner: inner, rnd: rand.New(rand.NewPCG(1, 1))}
}

// Inner returns the wrapped disk, e.g. to wrap it again after a power cut.
func (d *Disk) Inner() shareddisk.Disk { return d.inner }

// Size returns the size of the wrapped disk.
func (d *Disk) Size() int64 { return d.inner.Size() }

// Name returns the name of the wrapped disk.
func (d *Disk) Name() string { return d.inner.Name() }

// SetRand sets the source of torn prefixes for PowerCut.
func (d *Disk) SetRand(r *rand.Rand) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rnd = orDefault(r)
}

// SetFault installs f, called before every read, write and flush; a non-nil
// result fails that call without effect. Nil removes it.
func (d *Disk) SetFault(f func(op Op, off int64, n int) error) {
	d.hmu.Lock()
	defer d.hmu.Unlock()
	d.fault = f
}

// SetStall installs f, called before every read, write and flush; the call
// sleeps for the returned duration first. Nil removes it.
func (d *Disk) SetStall(f func(op Op, off int64, n int) time.Duration) {
	d.hmu.Lock()
	defer d.hmu.Unlock()
	d.stall = f
}

// SetWriteHook installs f, called with every write that passes the fault
// hook, before it enters the cache. f must neither keep nor modify p.
func (d *Disk) SetWriteHook(f func(off int64, p []byte)) {
	d.hmu.Lock()
	defer d.hmu.Unlock()
	d.hook = f
}

// Writes returns the number of WriteAt calls so far.
func (d *Disk) Writes() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.writes
}

// Flushes returns the number of Flush calls so far.
func (d *Disk) Flushes() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.flushes
}

// Pending returns the number of writes in the volatile cache.
func (d *Disk) Pending() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.pending)
}

// Dead reports whether the power has been cut.
func (d *Disk) Dead() bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.dead
}

// CutAtWrite cuts the power, as PowerCutRandom(r) does, during the k-th
// WriteAt call (1-based, counting every call since New); that write is
// among the pending ones and the call returns ErrPowerCut.
func (d *Disk) CutAtWrite(k int, r *rand.Rand) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cutWrite, d.cutWRand = k, orDefault(r)
}

// CutAtFlush cuts the power, as PowerCutRandom(r) does, when the k-th Flush
// call (1-based, counting every call since New) starts; that flush returns
// ErrPowerCut.
func (d *Disk) CutAtFlush(k int, r *rand.Rand) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cutFlush, d.cutFRand = k, orDefault(r)
}

// orDefault returns r, or a rand seeded with 1 if r is nil.
func orDefault(r *rand.Rand) *rand.Rand {
	if r == nil {
		return rand.New(rand.NewPCG(1, 1))
	}
	return r
}

// hooks returns the current hooks.
func (d *Disk) hooks() (func(Op, int64, int) error, func(Op, int64, int) time.Duration, func(int64, []byte)) {
	d.hmu.RLock()
	defer d.hmu.RUnlock()
	return d.fault, d.stall, d.hook
}

// deadErr returns the error for a call on a dead or closed disk, or nil. The
// caller holds mu.
func (d *Disk) deadErr(op Op, off int64) error {
	switch {
	case d.dead:
		return fmt.Errorf("%s %s at offset %d: %w", op, d.inner.Name(), off, ErrPowerCut)
	case d.closed:
		return fmt.Errorf("%s %s at offset %d: %w", op, d.inner.Name(), off, shareddisk.ErrClosed)
	}
	return nil
}

// inject runs the stall and fault hooks for one call.
func (d *Disk) inject(op Op, off int64, n int) error {
	fault, stall, _ := d.hooks()
	if stall != nil {
		if t := stall(op, off, n); t > 0 {
			time.Sleep(t)
		}
	}
	if fault != nil {
		if err := fault(op, off, n); err != nil {
			return fmt.Errorf("%s %s at offset %d length %d: injected fault: %w", op, d.inner.Name(), off, n, err)
		}
	}
	return nil
}
