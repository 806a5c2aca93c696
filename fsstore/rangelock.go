package fsstore

import "sync"

// rangeShards is the number of independent range-lock tables.
const rangeShards = 64

// rangeLocks locks ranges of file blocks of one inode, so that writers of
// disjoint ranges of a file run their data I/O in parallel while the inode
// lock is held shared. A reader conflicts only with overlapping writers.
type rangeLocks struct {
	shards [rangeShards]rangeShard
}

type rangeShard struct {
	mu   sync.Mutex
	cond *sync.Cond
	held []heldRange
}

type heldRange struct {
	ino    Ino
	lo, hi uint64 // file blocks [lo, hi)
	write  bool
}

func (h heldRange) conflicts(o heldRange) bool {
	return h.ino == o.ino && h.lo < o.hi && o.lo < h.hi && (h.write || o.write)
}

// lock blocks until [lo, hi) of ino can be held (for writing if write) and
// returns the function that releases it.
func (r *rangeLocks) lock(ino Ino, lo, hi uint64, write bool) func() {
	sh := &r.shards[uint64(ino)%rangeShards]
	want := heldRange{ino: ino, lo: lo, hi: hi, write: write}
	sh.mu.Lock()
	if sh.cond == nil {
		sh.cond = sync.NewCond(&sh.mu)
	}
	for {
		busy := false
		for _, h := range sh.held {
			if h.conflicts(want) {
				busy = true
				break
			}
		}
		if !busy {
			break
		}
		sh.cond.Wait()
	}
	sh.held = append(sh.held, want)
	sh.mu.Unlock()
	return func() {
		sh.mu.Lock()
		for i, h := range sh.held {
			if h == want {
				sh.held[i] = sh.held[len(sh.held)-1]
				sh.held = sh.held[:len(sh.held)-1]
				break
			}
		}
		sh.cond.Broadcast()
		sh.mu.Unlock()
	}
}
