package fsstore

import (
	"sync"

	"github.com/hanfs/hanfs/fsstore/txn"
)

// DefaultReadCacheBytes is the default bound of the read-ahead cache.
const DefaultReadCacheBytes = 64 << 20

// readAheadWindow is how far ahead of a sequential reader the store reads.
const readAheadWindow = 8 << 20

// maxReadAheadFiles bounds the files whose read pattern is followed.
const maxReadAheadFiles = 4096

// readAhead follows the reads of each file to read ahead of sequential
// readers into the Manager's data cache (fsstore/txn/datacache.go).
type readAhead struct {
	mu    sync.Mutex
	files map[Ino]*raFile
}

// raFile is what readAhead knows of one file's reads.
type raFile struct {
	next  uint64 // the furthest end of a read
	ahead uint64 // the end of the range already asked ahead
}

// ReadCacheBytes returns the memory the read-ahead cache holds or is
// reading into.
func (s *Store) ReadCacheBytes() int64 { return s.m.DataCacheBytes() }

// readCacheOptions returns the data cache options of the Manager that Open
// starts for opt.
func readCacheOptions(opt Options, to *txn.Options) {
	switch {
	case opt.ReadCacheBytes == 0:
		to.DataCacheBytes = DefaultReadCacheBytes
	case opt.ReadCacheBytes > 0:
		to.DataCacheBytes = opt.ReadCacheBytes
	}
	to.DataCacheCounters = opt.ReadCacheCounters
}

// readAhead notes a read of ino (size bytes long) over [off, end) and, if it
// continues a sequential read, asks the data cache to read the window after
// it. The caller holds ino's lock (shared at least), so the mapping it reads
// is current; a block remapped later is written through WriteData before
// it is read again, which drops it from the cache.
func (s *Store) readAhead(ino Ino, off, end, size uint64) {
	if !s.m.DataCacheEnabled() {
		return
	}
	ra := &s.ra
	ra.mu.Lock()
	if ra.files == nil || len(ra.files) >= maxReadAheadFiles {
		ra.files = make(map[Ino]*raFile)
	}
	f := ra.files[ino]
	if f == nil {
		ra.files[ino] = &raFile{next: end}
		ra.mu.Unlock()
		return
	}
	// Requests in flight together arrive a little out of order: a read
	// near the furthest end so far counts as sequential.
	if off+readAheadWindow < f.next || off > f.next+readAheadWindow {
		// A jump: perhaps a new sequential pass starts here.
		f.next, f.ahead = end, 0
		ra.mu.Unlock()
		return
	}
	f.next = max(f.next, end)
	from := max(f.next, f.ahead)
	to := min(f.next+readAheadWindow, size)
	// Ask in steps of half a window, so that fills are large.
	if from >= to || (f.ahead > f.next && to-from < readAheadWindow/2) {
		ra.mu.Unlock()
		return
	}
	f.ahead = to
	ra.mu.Unlock()
	var segs []seg
	err := s.view(func(t *stx) error {
		var err error
		segs, err = t.mapRange(ino, from/bs, (to+bs-1)/bs)
		return err
	})
	if err != nil {
		return // only a hint
	}
	for _, sg := range segs {
		if sg.disk != 0 {
			s.m.Prefetch(sg.disk, sg.n)
		}
	}
}

// dataRefs collects the pieces of a read that the read-ahead cache holds.
type dataRefs struct {
	pieces  []refPiece
	release []func()
}

// refPiece is a cached piece of a read: bytes [at, at+n) of the read, as
// slices of the cache's buffers.
type refPiece struct {
	at, n int
	bufs  [][]byte
}

// take references the n bytes at disk offset off, at byte at of the read,
// if the cache holds them all.
func (r *dataRefs) take(m *txn.Manager, at int, off int64, n int) bool {
	if r == nil {
		return false
	}
	bufs, release, ok := m.ReadDataRefs(off, n)
	if !ok {
		return false
	}
	r.pieces = append(r.pieces, refPiece{at: at, n: n, bufs: bufs})
	r.release = append(r.release, release)
	return true
}

func (r *dataRefs) done() {
	for _, rel := range r.release {
		rel()
	}
	r.release = nil
}

// ReadRefs reads like Read, but the blocks that the read-ahead cache holds
// are not copied into p: the data read is the concatenation of bufs (n
// bytes in all), slices of p and of the cache's buffers. Callers that send
// the data on (NFS READ) save a copy. bufs must not be written, and must not
// be used after release, which must be called (also after an error).
func (s *Store) ReadRefs(c *Cred, ino Ino, p []byte, off int64) (bufs [][]byte, n int, eof bool, release func(), err error) {
	var refs dataRefs
	release = refs.done
	n, eof, err = s.read(c, ino, p, off, &refs)
	if err != nil || n == 0 {
		return nil, n, eof, release, err
	}
	if len(refs.pieces) == 0 {
		return [][]byte{p[:n]}, n, eof, release, nil
	}
	// The read was direct (aligned, in place): p holds what is not cached.
	cur := 0
	add := func(b []byte) {
		if left := n - cur; left > 0 && len(b) > 0 {
			b = b[:min(len(b), left)]
			bufs = append(bufs, b)
			cur += len(b)
		}
	}
	for _, pc := range refs.pieces {
		if pc.at > cur {
			add(p[cur:pc.at])
		}
		for _, b := range pc.bufs {
			add(b)
		}
	}
	add(p[cur:n])
	return bufs, n, eof, release, nil
}
