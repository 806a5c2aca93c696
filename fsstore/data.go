package fsstore

import (
	"fmt"
	"time"

	"github.com/hanfs/hanfs/fsstore/block"
	"github.com/hanfs/hanfs/fsstore/btree"
	"github.com/hanfs/hanfs/fsstore/journal"
	"github.com/hanfs/hanfs/fsstore/txn"
	"github.com/hanfs/hanfs/shareddisk"
)

const bs = block.Size

// maxExtent is the longest extent, in blocks (128 MiB).
const maxExtent = 32768

// seg is a piece of a file's block range: n blocks from file block fb, at
// disk block disk (0 for a hole).
type seg struct{ fb, n, disk uint64 }

// mapRange returns the segments covering file blocks [fb0, fb1).
func (t *stx) mapRange(ino Ino, fb0, fb1 uint64) ([]seg, error) {
	var segs []seg
	cur := fb0
	from := fb0
	err := btree.ScanBack(t.tx, t.info.root, extentKey(ino, fb0), func(k btree.Key, v []byte) (bool, error) {
		if k.Obj == uint64(ino) && k.Type == itemExtent {
			e, err := decodeExtent(v)
			if err != nil {
				return false, fmt.Errorf("inode %d: %w", ino, err)
			}
			if k.Off+e.n > fb0 {
				from = k.Off
			}
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	err = btree.Scan(t.tx, t.info.root, extentKey(ino, from), func(k btree.Key, v []byte) (bool, error) {
		if k.Obj != uint64(ino) || k.Type != itemExtent || k.Off >= fb1 {
			return false, nil
		}
		e, err := decodeExtent(v)
		if err != nil {
			return false, fmt.Errorf("inode %d: %w", ino, err)
		}
		start, end := max(k.Off, cur), min(k.Off+e.n, fb1)
		if end <= start {
			return true, nil
		}
		if start > cur {
			segs = append(segs, seg{fb: cur, n: start - cur})
		}
		segs = append(segs, seg{fb: start, n: end - start, disk: e.disk + (start - k.Off)})
		cur = end
		return cur < fb1, nil
	})
	if err != nil {
		return nil, err
	}
	if cur < fb1 {
		segs = append(segs, seg{fb: cur, n: fb1 - cur})
	}
	return segs, nil
}

// addExtent maps n file blocks at fb to disk blocks at disk, merging with the
// preceding extent when both are contiguous.
func (t *stx) addExtent(ino Ino, fb, disk, n uint64) error {
	if fb > 0 {
		var pk btree.Key
		var prev extent
		found := false
		err := btree.ScanBack(t.tx, t.info.root, extentKey(ino, fb-1), func(k btree.Key, v []byte) (bool, error) {
			if k.Obj == uint64(ino) && k.Type == itemExtent {
				e, err := decodeExtent(v)
				if err != nil {
					return false, err
				}
				pk, prev, found = k, e, true
			}
			return false, nil
		})
		if err != nil {
			return err
		}
		if found && pk.Off+prev.n == fb && prev.disk+prev.n == disk && prev.n+n <= maxExtent {
			return t.put(pk, encodeExtent(extent{disk: prev.disk, n: prev.n + n}))
		}
	}
	return t.put(extentKey(ino, fb), encodeExtent(extent{disk: disk, n: n}))
}

// freeExtents unmaps and frees every block of ino at or after file block
// from, and returns how many blocks it freed.
func (t *stx) freeExtents(ino Ino, from uint64) (uint64, error) {
	type item struct {
		k btree.Key
		e extent
	}
	var items []item
	start := from
	err := btree.ScanBack(t.tx, t.info.root, extentKey(ino, from), func(k btree.Key, v []byte) (bool, error) {
		if k.Obj == uint64(ino) && k.Type == itemExtent {
			e, err := decodeExtent(v)
			if err != nil {
				return false, err
			}
			if k.Off < from && k.Off+e.n > from {
				start = k.Off
			}
		}
		return false, nil
	})
	if err != nil {
		return 0, err
	}
	err = btree.Scan(t.tx, t.info.root, extentKey(ino, start), func(k btree.Key, v []byte) (bool, error) {
		if k.Obj != uint64(ino) || k.Type != itemExtent {
			return false, nil
		}
		e, err := decodeExtent(v)
		if err != nil {
			return false, err
		}
		items = append(items, item{k, e})
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	var freed uint64
	for _, it := range items {
		if it.k.Off < from { // straddles: keep the head
			keep := from - it.k.Off
			if err := t.tx.FreeRun(it.e.disk+keep, it.e.n-keep); err != nil {
				return 0, fmt.Errorf("inode %d: %w", ino, err)
			}
			freed += it.e.n - keep
			if err := t.put(it.k, encodeExtent(extent{disk: it.e.disk, n: keep})); err != nil {
				return 0, err
			}
			continue
		}
		if err := t.tx.FreeRun(it.e.disk, it.e.n); err != nil {
			return 0, fmt.Errorf("inode %d: %w", ino, err)
		}
		freed += it.e.n
		if _, err := t.del(it.k); err != nil {
			return 0, err
		}
	}
	return freed, nil
}

// fileForIO loads ino for a read or write by c.
func (t *stx) fileForIO(c *Cred, ino Ino, mask uint32) (*inode, error) {
	in, err := t.inode(ino)
	if err != nil {
		return nil, err
	}
	switch in.mode & ModeType {
	case ModeRegular:
	case ModeDir:
		return nil, fmt.Errorf("inode %d: %w", ino, ErrIsDir)
	default:
		return nil, fmt.Errorf("inode %d is not a regular file: %w", ino, ErrInvalid)
	}
	return in, checkAccess(c, ino, in, mask)
}

// Read reads from ino at off into p. eof reports that the read reached the
// end of the file.
func (s *Store) Read(c *Cred, ino Ino, p []byte, off int64) (n int, eof bool, err error) {
	return s.read(c, ino, p, off, nil)
}

// read is Read; with refs, blocks held by the read-ahead cache are not
// copied into p but referenced in refs (ReadRefs).
func (s *Store) read(c *Cred, ino Ino, p []byte, off int64, refs *dataRefs) (n int, eof bool, err error) {
	if off < 0 {
		return 0, false, fmt.Errorf("read at %d: %w", off, ErrInvalid)
	}
	mu := s.ilock(ino)
	mu.RLock()
	defer mu.RUnlock()
	if len(p) > 0 {
		// Writers inside the file's size hold the inode lock shared too:
		// exclude those that overlap, so a read sees a write whole or not.
		fb := uint64(off) / bs
		defer s.ranges.lock(ino, fb, (uint64(off)+uint64(len(p))+bs-1)/bs, false)()
	}
	var size uint64
	var segs []seg
	err = s.view(func(t *stx) error {
		in, err := t.fileForIO(c, ino, AccessRead)
		if err != nil {
			return err
		}
		size = in.size
		if uint64(off) >= size || len(p) == 0 {
			return nil
		}
		end := min(uint64(off)+uint64(len(p)), size)
		segs, err = t.mapRange(ino, uint64(off)/bs, (end+bs-1)/bs)
		return err
	})
	if err != nil {
		return 0, false, err
	}
	if uint64(off) >= size {
		return 0, true, nil
	}
	if len(p) == 0 {
		return 0, false, nil // no segments were mapped
	}
	n = int(min(uint64(len(p)), size-uint64(off)))
	s.readAhead(ino, uint64(off), uint64(off)+uint64(n), size)
	fb0 := uint64(off) / bs
	span := int((segs[len(segs)-1].fb + segs[len(segs)-1].n - fb0) * bs)
	// An aligned request with room for whole blocks is read in place.
	direct := uint64(off)%bs == 0 && shareddisk.IsAligned(p) && len(p) >= span
	buf := p
	if !direct {
		buf = s.getBuf(span)
		defer s.putBuf(buf)
	}
	for _, sg := range segs {
		at := (sg.fb - fb0) * bs
		if sg.disk == 0 {
			clear(buf[at : at+sg.n*bs])
			continue
		}
		if direct && refs.take(s.m, int(at), int64(sg.disk*bs), int(sg.n*bs)) {
			continue
		}
		if err := s.m.ReadData(buf[at:at+sg.n*bs], int64(sg.disk*bs)); err != nil {
			return 0, false, fmt.Errorf("read inode %d: %w", ino, err)
		}
	}
	if !direct {
		copy(p[:n], buf[uint64(off)-fb0*bs:])
	}
	return n, uint64(off)+uint64(n) >= size, nil
}

// Write writes p to ino at off. It returns once the data and the new size
// are durable.
func (s *Store) Write(op *Op, ino Ino, p []byte, off int64) (Attr, error) {
	if off < 0 {
		return Attr{}, fmt.Errorf("write at %d: %w", off, ErrInvalid)
	}
	end := uint64(off) + uint64(len(p))
	if end > MaxFileSize {
		return Attr{}, fmt.Errorf("write to %d: %w", end, ErrFBig)
	}
	// A write holds the inode lock shared and a lock on its block range, so
	// that writers of disjoint ranges of one file (random writes, and
	// concurrent sequential writes) run their data I/O in parallel and share
	// a commit, when it stays inside the file's size, or when both the size
	// and the write's end are block-aligned (the size then stays aligned
	// while the lock is shared, so no bytes past an old end of file ever
	// need zeroing, and the size only grows, to a max, in the transaction).
	// Other writes that grow the file hold the inode lock exclusive: they
	// may zero the bytes past the old end of file.
	mu := s.ilock(ino)
	unlock := func() {}
	defer func() { unlock() }()
	var in *inode
	var segs []seg
	fb0, fb1 := uint64(off)/bs, (end+bs-1)/bs
	load := func() error {
		return s.view(func(t *stx) error {
			var err error
			if in, err = t.fileForIO(op.cred(), ino, AccessWrite); err != nil {
				return err
			}
			if len(p) == 0 {
				return nil
			}
			segs, err = t.mapRange(ino, fb0, fb1)
			return err
		})
	}
	mu.RLock()
	unlock = mu.RUnlock
	err := load()
	shared := func() bool { return end <= in.size || (in.size%bs == 0 && end%bs == 0) }
	if err == nil && !shared() {
		unlock()
		mu.Lock()
		unlock = mu.Unlock
		err = load()
	}
	if err == nil && shared() && len(p) > 0 {
		release := s.ranges.lock(ino, fb0, fb1, true)
		unlockInode := unlock
		unlock = func() { release(); unlockInode() }
		// The view ran before the range was ours: map it again.
		err = load()
	}
	if err != nil {
		return Attr{}, err
	}
	if len(p) == 0 {
		return in.attr(ino), nil
	}
	// Reserve blocks for the holes, near the blocks before them.
	var reserved []seg
	unreserve := func() {
		for _, r := range reserved {
			s.m.Unreserve(txn.Run{Start: r.disk, N: r.n})
		}
	}
	var pieces []seg
	hint := uint64(0)
	for _, sg := range segs {
		if sg.disk != 0 {
			pieces = append(pieces, sg)
			hint = sg.disk + sg.n
			continue
		}
		for fb, left := sg.fb, sg.n; left > 0; {
			r, err := s.m.Reserve(min(left, maxExtent), hint)
			if err != nil {
				unreserve()
				return Attr{}, err
			}
			piece := seg{fb: fb, n: r.N, disk: r.Start}
			reserved = append(reserved, piece)
			pieces = append(pieces, piece)
			fb, left, hint = fb+r.N, left-r.N, r.Start+r.N
		}
	}
	// Assemble whole blocks: partial head and tail blocks keep their old
	// bytes. A block-aligned request in aligned memory goes to the disk as
	// it is; others go through a pooled aligned buffer.
	aligned := uint64(off)%bs == 0 && end%bs == 0 && shareddisk.IsAligned(p)
	buf := p
	if !aligned {
		buf = s.getBuf(int((fb1 - fb0) * bs))
		defer s.putBuf(buf)
		clear(buf[:uint64(off)-fb0*bs])
		clear(buf[end-fb0*bs:])
	}
	isNew := func(fb uint64) bool {
		for _, r := range reserved {
			if fb >= r.fb && fb < r.fb+r.n {
				return true
			}
		}
		return false
	}
	diskOf := func(fb uint64) uint64 {
		for _, pc := range pieces {
			if fb >= pc.fb && fb < pc.fb+pc.n {
				return pc.disk + fb - pc.fb
			}
		}
		return 0
	}
	for _, fb := range []uint64{fb0, fb1 - 1} {
		partial := (fb == fb0 && uint64(off)%bs != 0) || (fb == fb1-1 && end%bs != 0)
		if partial && !isNew(fb) && (fb == fb0 || fb1-1 != fb0) {
			at := (fb - fb0) * bs
			if err := s.m.ReadData(buf[at:at+bs], int64(diskOf(fb)*bs)); err != nil {
				unreserve()
				return Attr{}, fmt.Errorf("write inode %d: %w", ino, err)
			}
		}
	}
	// Bytes past the old end of file in its last block may hold stale data
	// (an earlier write that never committed): they become visible now, so
	// they must be zeros.
	// The zeroing must reach the disk before the transaction that grows the
	// file, like the data of new blocks: the commit flushes first.
	var zeroed *journal.DataSum
	if old := in.size; end > old && old%bs != 0 {
		lb := old / bs
		if lb >= fb0 && lb < fb1 {
			if !aligned { // an aligned write covers the whole block
				at := (lb-fb0)*bs + old%bs
				clear(buf[at : (lb-fb0+1)*bs])
			}
		} else if lb < fb0 {
			var err error
			if zeroed, err = s.zeroPastEOF(ino, old); err != nil {
				unreserve()
				return Attr{}, err
			}
		}
	}
	if !aligned {
		copy(buf[uint64(off)-fb0*bs:], p)
	}
	// A small write journals its data with the metadata: one journal write
	// and one flush (see txn/journaled.go). A larger one writes the data at
	// its home, and the transaction records a checksum of every piece whose
	// bytes it makes visible: new blocks, and blocks that reach past the old
	// end of the file. Data and journal then share one flush (see txn).
	journaled := fb1-fb0 <= s.journaledMax
	var sums []journal.DataSum
	eofBlk := (in.size + bs - 1) / bs // first block wholly past the old end
	if in.size%bs != 0 {
		eofBlk-- // the old last block holds bytes past the end too
	}
	for _, pc := range pieces {
		if !isNew(pc.fb) {
			settle := s.m.Settle
			if journaled {
				settle = s.m.SettleJournaled
			}
			if err := settle(pc.disk, pc.n); err != nil {
				unreserve()
				return Attr{}, fmt.Errorf("write inode %d: %w", ino, err)
			}
		}
		if journaled {
			continue
		}
		if isNew(pc.fb) || pc.fb+pc.n > eofBlk {
			at := (pc.fb - fb0) * bs
			sums = append(sums, txn.SumOf(pc.disk, buf[at:at+pc.n*bs]))
		}
	}
	if zeroed != nil {
		sums = append(sums, *zeroed)
	}
	// The transaction goes first and the data after it, while the locks
	// keep readers of this range out: the group's journal write overlaps
	// the data write, and its flush waits for the data (AwaitData).

	var a Attr
	c, err := s.m.Update(func(tx *txn.Tx) error {
		t, err := s.begin(tx)
		if err != nil {
			return err
		}
		cur, err := t.inode(ino)
		if err != nil {
			return err
		}
		if cur.gen != in.gen {
			return fmt.Errorf("inode %d: %w", ino, ErrStale)
		}
		var added uint64
		for _, r := range reserved {
			if err := tx.Claim(txn.Run{Start: r.disk, N: r.n}); err != nil {
				return err
			}
			if err := t.addExtent(ino, r.fb, r.disk, r.n); err != nil {
				return err
			}
			added += r.n
		}
		for _, ds := range sums {
			tx.DataWritten(ds)
		}
		if journaled {
			for _, pc := range pieces {
				at := (pc.fb - fb0) * bs
				if err := tx.JournalData(pc.disk, buf[at:at+pc.n*bs]); err != nil {
					return err
				}
			}
		} else {
			tx.AwaitData()
		}
		cur.blocks += added
		if end > cur.size {
			cur.size = end
		}
		cur.mtime, cur.ctime = t.now, t.now
		if c := op.cred(); c != nil && c.UID != 0 && cur.mode&0o6000 != 0 {
			// A write by a non-root user drops setuid, and setgid when it
			// means "set group id on execution", as Linux does.
			cur.mode &^= 0o4000
			if cur.mode&0o010 != 0 {
				cur.mode &^= 0o2000
			}
		}
		if err := t.putInode(ino, cur); err != nil {
			return err
		}
		a = cur.attr(ino)
		if err := t.record(op, a); err != nil {
			return err
		}
		return t.end()
	})
	if err != nil {
		unreserve()
		return Attr{}, err
	}
	var werr error
	for _, pc := range pieces {
		if journaled {
			break
		}
		at := (pc.fb - fb0) * bs
		if werr = s.m.WriteSettled(buf[at:at+pc.n*bs], int64(pc.disk*bs)); werr != nil {
			werr = fmt.Errorf("write inode %d: %w", ino, werr)
			break
		}
	}
	c.DataDone()
	if werr != nil {
		return Attr{}, werr
	}
	// Wait for durability without the locks, so that concurrent writes to
	// one file share the flush (group commit).
	unlock()
	unlock = func() {}
	return a, c.Wait()
}

// Setattr changes the attributes sa names.
func (s *Store) Setattr(op *Op, ino Ino, sa SetAttr) (Attr, error) {
	c := op.cred()
	var zeroed *journal.DataSum
	if sa.Size != nil {
		if *sa.Size > MaxFileSize {
			return Attr{}, fmt.Errorf("truncate to %d: %w", *sa.Size, ErrFBig)
		}
		mu := s.ilock(ino)
		mu.Lock()
		defer mu.Unlock()
		if a, err := s.Getattr(ino); err == nil && *sa.Size > a.Size && a.IsRegular() {
			if zeroed, err = s.zeroPastEOF(ino, a.Size); err != nil {
				return Attr{}, err
			}
		}
	}
	var a Attr
	err := s.update(func(t *stx) error {
		in, err := t.inode(ino)
		if err != nil {
			return err
		}
		if zeroed != nil {
			t.tx.DataWritten(*zeroed) // the new size needs the zeroing on disk
		}
		if sa.Guard != nil && sa.Guard.UnixNano() != in.ctime {
			return fmt.Errorf("inode %d: %w", ino, ErrGuard)
		}
		changed := false
		if sa.Mode != nil {
			if !isOwner(c, in) {
				return fmt.Errorf("chmod inode %d: %w", ino, ErrPerm)
			}
			mode := *sa.Mode & ModePerm
			if c != nil && c.UID != 0 && !c.inGroup(in.gid) {
				mode &^= 0o2000
			}
			in.mode = in.mode&ModeType | mode
			changed = true
		}
		if sa.UID != nil && *sa.UID != in.uid {
			if c != nil && c.UID != 0 {
				return fmt.Errorf("chown inode %d: %w", ino, ErrPerm)
			}
			in.uid = *sa.UID
			changed = true
		}
		if sa.GID != nil && *sa.GID != in.gid {
			if c != nil && c.UID != 0 && (c.UID != in.uid || !c.inGroup(*sa.GID)) {
				return fmt.Errorf("chgrp inode %d: %w", ino, ErrPerm)
			}
			in.gid = *sa.GID
			changed = true
		}
		if (sa.UID != nil || sa.GID != nil) && in.mode&ModeType != ModeDir {
			// As Linux does on every chown, even by root: drop setuid, and
			// setgid when it means "set group id on execution".
			in.mode &^= 0o4000
			if in.mode&0o010 != 0 {
				in.mode &^= 0o2000
			}
			changed = true
		}
		if sa.Size != nil {
			switch in.mode & ModeType {
			case ModeRegular:
			case ModeDir:
				return fmt.Errorf("truncate inode %d: %w", ino, ErrIsDir)
			default:
				return fmt.Errorf("truncate inode %d: %w", ino, ErrInvalid)
			}
			if err := checkAccess(c, ino, in, AccessWrite); err != nil {
				return err
			}
			if *sa.Size < in.size {
				freed, err := t.freeExtents(ino, (*sa.Size+bs-1)/bs)
				if err != nil {
					return err
				}
				in.blocks -= min(in.blocks, freed)
			}
			if *sa.Size != in.size {
				in.mtime = t.now
			}
			in.size = *sa.Size
			changed = true
		}
		for _, tm := range []struct {
			now bool
			at  *int64
			v   *int64
		}{{sa.AtimeNow, &in.atime, unixNano(sa.Atime)}, {sa.MtimeNow, &in.mtime, unixNano(sa.Mtime)}} {
			if !tm.now && tm.v == nil {
				continue
			}
			if tm.now {
				if !isOwner(c, in) && !allowed(c, in, AccessWrite) {
					return fmt.Errorf("utimes inode %d: %w", ino, ErrAccess)
				}
				*tm.at = t.now
			} else {
				if !isOwner(c, in) {
					return fmt.Errorf("utimes inode %d: %w", ino, ErrPerm)
				}
				*tm.at = *tm.v
			}
			changed = true
		}
		if changed {
			in.ctime = t.now
			if err := t.putInode(ino, in); err != nil {
				return err
			}
		}
		a = in.attr(ino)
		return t.record(op, a)
	})
	return a, err
}

func unixNano(tm *time.Time) *int64 {
	if tm == nil {
		return nil
	}
	v := tm.UnixNano()
	return &v
}

// zeroPastEOF clears the bytes past size in the block that holds the end of
// the file, before the file grows over them: a write that never committed may
// have left data there. It is done in place, before the transaction that grows
// the file, which must record the returned checksum (nil if nothing was
// written); if that transaction is lost, only bytes past the end were zeroed.
// The caller holds ino's lock.
func (s *Store) zeroPastEOF(ino Ino, size uint64) (*journal.DataSum, error) {
	if size%bs == 0 {
		return nil, nil
	}
	var disk uint64
	err := s.view(func(t *stx) error {
		segs, err := t.mapRange(ino, size/bs, size/bs+1)
		if err != nil {
			return err
		}
		disk = segs[0].disk
		return nil
	})
	if err != nil || disk == 0 {
		return nil, err
	}
	buf := s.getBuf(bs)
	defer s.putBuf(buf)
	if err := s.m.ReadData(buf, int64(disk*bs)); err != nil {
		return nil, err
	}
	clear(buf[size%bs:])
	if err := s.m.WriteData(buf, int64(disk*bs)); err != nil {
		return nil, err
	}
	ds := txn.SumOf(disk, buf)
	return &ds, nil
}

// StatFS reports space and inode usage.
func (s *Store) StatFS() StatFS {
	st := StatFS{BlockSize: bs, TotalBlocks: s.sb.Layout.DataBlocks}
	_ = s.m.View(func(tx *txn.Tx) error {
		st.FreeBlocks = tx.FreeBlocks()
		b, err := tx.Read(s.sb.Layout.FSInfo)
		if err != nil {
			return err
		}
		st.Files = decodeInfo(b).inodes
		return nil
	})
	st.FreeFiles = st.FreeBlocks
	return st
}

// poolBufSize is the size of pooled I/O buffers: a 1 MiB request that
// straddles blocks, with a spare block at each end.
const poolBufSize = 1<<20 + 2*bs

// getBuf returns an aligned buffer of n bytes with undefined contents.
func (s *Store) getBuf(n int) []byte {
	if n > poolBufSize {
		return shareddisk.AlignedBuf(n)
	}
	if b, ok := s.bufs.Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return shareddisk.AlignedBuf(poolBufSize)[:n]
}

// putBuf returns a buffer from getBuf to the pool.
func (s *Store) putBuf(b []byte) {
	if cap(b) != poolBufSize {
		return
	}
	b = b[:poolBufSize]
	s.bufs.Put(&b)
}
