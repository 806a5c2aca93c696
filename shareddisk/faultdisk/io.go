package faultdisk

import (
	"fmt"

	"github.com/hanfs/hanfs/shareddisk"
)

// ReadAt reads from the wrapped disk and overlays the cached writes.
func (d *Disk) ReadAt(p []byte, off int64) (int, error) {
	d.mu.RLock()
	err := d.deadErr(Read, off)
	d.mu.RUnlock()
	if err != nil {
		return 0, err
	}
	if err := shareddisk.CheckIO(d.inner.Name(), d.inner.Size(), "read", off, len(p)); err != nil {
		return 0, err
	}
	if err := d.inject(Read, off, len(p)); err != nil {
		return 0, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if err := d.deadErr(Read, off); err != nil {
		return 0, err
	}
	n, err := d.inner.ReadAt(p, off)
	if err != nil {
		return n, err
	}
	end := off + int64(len(p))
	for _, w := range d.pending {
		lo, hi := max(off, w.off), min(end, w.off+int64(len(w.data)))
		if lo < hi {
			copy(p[lo-off:hi-off], w.data[lo-w.off:hi-w.off])
		}
	}
	return len(p), nil
}

// WriteAt puts a copy of p in the volatile cache; it reaches the wrapped
// disk at the next Flush, or at a power cut if the cut keeps it.
func (d *Disk) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	if err := d.deadErr(Write, off); err != nil {
		d.mu.Unlock()
		return 0, err
	}
	d.writes++
	k := d.writes
	d.mu.Unlock()

	err := shareddisk.CheckIO(d.inner.Name(), d.inner.Size(), "write", off, len(p))
	if err == nil {
		err = d.inject(Write, off, len(p))
	}
	var data []byte
	if err == nil {
		if _, _, hook := d.hooks(); hook != nil {
			hook(off, p)
		}
		data = append([]byte(nil), p...)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if derr := d.deadErr(Write, off); derr != nil {
		return 0, derr
	}
	if err == nil {
		d.pending = append(d.pending, pendingWrite{off: off, data: data})
	}
	if k == d.cutWrite {
		r := d.cutWRand
		return 0, cutErr(fmt.Sprintf("write %s at offset %d", d.inner.Name(), off), d.powerCutLocked(randomKeep(r), r))
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes the cached writes to the wrapped disk in order and flushes it.
func (d *Disk) Flush() error {
	d.mu.Lock()
	if err := d.deadErr(Flush, 0); err != nil {
		d.mu.Unlock()
		return err
	}
	d.flushes++
	if d.flushes == d.cutFlush {
		r := d.cutFRand
		err := d.powerCutLocked(randomKeep(r), r)
		d.mu.Unlock()
		return cutErr("flush "+d.inner.Name(), err)
	}
	d.mu.Unlock()

	if err := d.inject(Flush, 0, 0); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.deadErr(Flush, 0); err != nil {
		return err
	}
	if err := d.applyPendingLocked(); err != nil {
		return err
	}
	if err := d.inner.Flush(); err != nil {
		return fmt.Errorf("faultdisk flush: %w", err)
	}
	return nil
}

// applyPendingLocked writes the cached writes to the wrapped disk in order;
// on an error the unwritten ones stay cached. The caller holds mu.
func (d *Disk) applyPendingLocked() error {
	for i, w := range d.pending {
		if _, err := d.inner.WriteAt(w.data, w.off); err != nil {
			d.pending = d.pending[i:]
			return fmt.Errorf("faultdisk flush: %w", err)
		}
	}
	d.pending = nil
	return nil
}

// Close writes the cached writes to the wrapped disk, as a clean shutdown
// eventually would, without flushing it, and closes it. After a power cut it
// returns ErrPowerCut and leaves the wrapped disk open.
func (d *Disk) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.deadErr(Write, 0); err != nil {
		return err
	}
	d.closed = true
	err := d.applyPendingLocked()
	if cerr := d.inner.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("faultdisk close: %w", cerr)
	}
	return err
}

// cutErr returns the ErrPowerCut error of a call that triggered a power cut,
// mentioning a failure of the wrapped disk while applying it.
func cutErr(what string, applyErr error) error {
	if applyErr != nil {
		return fmt.Errorf("%s: %w (applying the cut failed: %v)", what, ErrPowerCut, applyErr)
	}
	return fmt.Errorf("%s: %w", what, ErrPowerCut)
}
