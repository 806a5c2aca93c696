package faultdisk

import (
	"fmt"
	"math/rand/v2"

	"github.com/hanfs/hanfs/shareddisk"
)

// PowerCut applies to the wrapped disk the part of each cached write that
// keep chooses (i is the write's index in issue order, off and n its offset
// and length), drops the rest, flushes the wrapped disk and kills this
// disk: every later call returns ErrPowerCut. It returns an error only if
// the wrapped disk fails, or if the power was already cut.
func (d *Disk) PowerCut(keep func(i int, off int64, n int) Keep) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.deadErr(Write, 0); err != nil {
		return err
	}
	return d.powerCutLocked(keep, d.rnd)
}

// PowerCutRandom cuts the power keeping each cached write whole with
// probability 1/2, dropping it with probability 1/4 and tearing it with
// probability 1/4, drawing from r.
func (d *Disk) PowerCutRandom(r *rand.Rand) error {
	r = orDefault(r)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.deadErr(Write, 0); err != nil {
		return err
	}
	return d.powerCutLocked(randomKeep(r), r)
}

// randomKeep returns PowerCutRandom's choice function.
func randomKeep(r *rand.Rand) func(int, int64, int) Keep {
	return func(int, int64, int) Keep {
		switch r.IntN(4) {
		case 0, 1:
			return KeepAll
		case 2:
			return Drop
		}
		return Torn
	}
}

// powerCutLocked performs a power cut; r picks torn prefixes. The caller
// holds mu.
func (d *Disk) powerCutLocked(keep func(int, int64, int) Keep, r *rand.Rand) error {
	pending := d.pending
	d.pending = nil
	d.dead = true
	var first error
	for i, w := range pending {
		sectors := len(w.data) / SectorSize
		var k int
		switch fate := keep(i, w.off, len(w.data)); {
		case fate == KeepAll:
			k = sectors
		case fate == Torn:
			if sectors >= 2 {
				k = 1 + r.IntN(sectors-1)
			}
		case fate > 0:
			k = min(int(fate), sectors)
		}
		if err := d.applyPrefix(w, k*SectorSize); err != nil && first == nil {
			first = err
		}
	}
	if err := d.inner.Flush(); err != nil && first == nil {
		first = fmt.Errorf("power cut: %w", err)
	}
	return first
}

// applyPrefix writes the first n bytes of w to the wrapped disk, merging a
// partial write with the blocks already there.
func (d *Disk) applyPrefix(w pendingWrite, n int) error {
	switch {
	case n <= 0:
		return nil
	case n >= len(w.data):
		if _, err := d.inner.WriteAt(w.data, w.off); err != nil {
			return fmt.Errorf("power cut: %w", err)
		}
		return nil
	}
	buf := shareddisk.AlignedBuf(len(w.data))
	if _, err := d.inner.ReadAt(buf, w.off); err != nil {
		return fmt.Errorf("power cut: torn write: %w", err)
	}
	copy(buf, w.data[:n])
	if _, err := d.inner.WriteAt(buf, w.off); err != nil {
		return fmt.Errorf("power cut: torn write: %w", err)
	}
	return nil
}
