package txn

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/hanfs/hanfs/fsstore/block"
	"github.com/hanfs/hanfs/shareddisk"
)

// allocator mirrors the on-disk block bitmap in memory. A set bit means the
// block is in use, or freed by a transaction that is not yet durable. Guarded
// by the metadata lock.
type allocator struct {
	lay    shareddisk.Layout
	bits   []uint64 // bit i: data block DataStart+i
	n      uint64   // data blocks
	free   uint64
	cursor uint64 // next-fit position (relative)
}

// loadAllocator reads and verifies every bitmap block.
func loadAllocator(d shareddisk.Disk, lay shareddisk.Layout) (*allocator, error) {
	a := &allocator{lay: lay, n: lay.DataBlocks}
	a.bits = make([]uint64, (lay.BitmapBlocks*shareddisk.BitsPerBitmapBlock+63)/64)
	const chunk = 256
	buf := shareddisk.AlignedBuf(chunk * block.Size)
	wordsPer := shareddisk.BitsPerBitmapBlock / 64
	for first := uint64(0); first < lay.BitmapBlocks; first += chunk {
		cnt := min(uint64(chunk), lay.BitmapBlocks-first)
		b := buf[:cnt*block.Size]
		if _, err := d.ReadAt(b, int64(lay.BitmapStart+first)*block.Size); err != nil {
			return nil, fmt.Errorf("%s: read bitmap blocks %d..%d: %w", d.Name(), lay.BitmapStart+first, lay.BitmapStart+first+cnt-1, err)
		}
		for i := uint64(0); i < cnt; i++ {
			blk := b[i*block.Size : (i+1)*block.Size]
			num := lay.BitmapStart + first + i
			if err := block.Verify(blk, num, block.TypeBitmap); err != nil {
				return nil, fmt.Errorf("%s: bitmap region: %w", d.Name(), err)
			}
			base := (first + i) * uint64(wordsPer)
			for w := 0; w < wordsPer; w++ {
				a.bits[base+uint64(w)] = binary.LittleEndian.Uint64(blk[block.HeaderSize+8*w:])
			}
		}
	}
	for i := uint64(0); i < a.n; i++ {
		if a.bits[i/64]&(1<<(i%64)) == 0 {
			a.free++
		}
	}
	return a, nil
}

func (a *allocator) isSet(rel uint64) bool { return a.bits[rel/64]&(1<<(rel%64)) != 0 }

// set marks the absolute blocks [start, start+n) used or free in memory.
func (a *allocator) set(start, n uint64, used bool) {
	for b := start; b < start+n; b++ {
		rel := b - a.lay.DataStart
		was := a.isSet(rel)
		if used {
			a.bits[rel/64] |= 1 << (rel % 64)
			if !was {
				a.free--
			}
		} else {
			a.bits[rel/64] &^= 1 << (rel % 64)
			if was {
				a.free++
			}
		}
	}
}

func (a *allocator) checkAllocated(r run) error {
	if r.n == 0 || r.start < a.lay.DataStart || r.start+r.n > a.lay.DataStart+a.n || r.start+r.n < r.start {
		return fmt.Errorf("free of blocks %d+%d outside the data region", r.start, r.n)
	}
	for b := r.start; b < r.start+r.n; b++ {
		if !a.isSet(b - a.lay.DataStart) {
			return fmt.Errorf("free of block %d, which is not allocated", b)
		}
	}
	return nil
}

// find looks for up to n contiguous free blocks at or after hint, wrapping
// around once; busy says a block still has an image in the live journal.
func (a *allocator) find(n, hint uint64, busy func(uint64) bool) (run, bool) {
	if a.free == 0 || n == 0 {
		return run{}, false
	}
	start := a.cursor
	if hint >= a.lay.DataStart && hint < a.lay.DataStart+a.n {
		start = hint - a.lay.DataStart
	}
	for pass := 0; pass < 2; pass++ {
		lo, hi := start, a.n
		if pass == 1 {
			lo, hi = 0, start
		}
		for i := lo; i < hi; {
			w := a.bits[i/64]
			if i%64 == 0 && w == ^uint64(0) {
				i += 64
				continue
			}
			if w>>(i%64) == ^uint64(0)>>(i%64) {
				i += 64 - i%64
				continue
			}
			if i%64 != 0 || w != 0 {
				// skip to the next zero bit in this word
				inv := ^w >> (i % 64)
				i += uint64(bits.TrailingZeros64(inv))
				if i >= hi {
					break
				}
			}
			if a.isSet(i) || busy(a.lay.DataStart+i) {
				i++
				continue
			}
			j := i + 1
			for j < a.n && j-i < n && !a.isSet(j) && !busy(a.lay.DataStart+j) {
				j++
			}
			a.cursor = j % a.n
			return run{a.lay.DataStart + i, j - i}, true
		}
	}
	return run{}, false
}

// Reserve sets aside up to n contiguous free blocks near hint in memory only,
// for file data that is written before the transaction that claims them.
// Release them with Unreserve unless a committed transaction claims them.
func (m *Manager) Reserve(n, hint uint64) (Run, error) {
	if err := m.Err(); err != nil {
		return Run{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running == nil {
		return Run{}, ErrClosed
	}
	m.cmu.Lock()
	r, ok := m.alloc.find(n, hint, func(b uint64) bool { _, busy := m.ckpt[b]; return busy })
	m.cmu.Unlock()
	if !ok {
		return Run{}, fmt.Errorf("%s: reserve %d blocks: %w", m.d.Name(), n, ErrNoSpace)
	}
	m.alloc.set(r.start, r.n, true)
	return Run{Start: r.start, N: r.n}, nil
}

// Unreserve returns reserved blocks that no transaction claimed.
func (m *Manager) Unreserve(r Run) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.alloc != nil && r.N > 0 {
		m.alloc.set(r.Start, r.N, false)
	}
}

// Claim records reserved blocks as allocated on the disk, in this
// transaction. If the transaction fails the blocks stay reserved.
func (tx *Tx) Claim(r Run) error {
	if tx.readOnly {
		return ErrReadOnly
	}
	return tx.setBitmap(run{r.Start, r.N}, true)
}
