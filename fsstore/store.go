// Package fsstore is the hanfs file system on the shared disk: inodes with
// generations and parent pointers, directories with O(log n) lookup, extents,
// block allocation and a redo journal with group commit (fsstore/txn), all
// metadata in one B+tree (fsstore/btree).
//
// Every mutating call is one journal transaction and returns only when its
// effect is durable on the disk. File data goes straight to the disk (never
// cached) and reaches it before the metadata that makes it visible.
package fsstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/hanfs/hanfs/fsstore/block"
	"github.com/hanfs/hanfs/fsstore/btree"
	"github.com/hanfs/hanfs/fsstore/journal"
	"github.com/hanfs/hanfs/fsstore/txn"
	"github.com/hanfs/hanfs/shareddisk"
)

// FormatOptions tune Format.
type FormatOptions struct {
	JournalBlocks uint64 // 0: the default for the disk's size
	Label         string
	Force         bool // overwrite an existing hanfs disk or a non-empty device
}

// Options tune Open.
type Options struct {
	CacheBlocks int          // metadata blocks cached (default 16384 = 64 MiB)
	Logger      *slog.Logger // default slog.Default()
	// WriteGate is called before every disk write; an error stops the store.
	WriteGate func() error
	// ReadCacheBytes bounds the cache of file data read ahead for
	// sequential readers (0: DefaultReadCacheBytes; negative: no cache and
	// no read-ahead). Only the node holding the write lease opens a store,
	// which is what makes the cache coherent (docs/architecture.md).
	ReadCacheBytes int64
	// ReadCacheCounters, when set, receive the read-ahead cache's counts.
	ReadCacheCounters *txn.DataCacheCounters
	// JournaledWriteBlocks: a write that touches at most this many blocks
	// puts its data into the journal with its metadata (one journal write
	// and one flush; the checkpoint writes the data home later). 0 means
	// txn.MaxJournaledBlocks, the most allowed; negative: never.
	JournaledWriteBlocks int
}

const lockShards = 1024

// Store is an open hanfs file system. It is safe for concurrent use.
type Store struct {
	d    shareddisk.Disk
	sb   *shareddisk.Superblock
	m    *txn.Manager
	logr *slog.Logger

	locks [lockShards]sync.RWMutex // per-inode data locks, by ino % lockShards
	// ranges locks block ranges of a file for I/O under a shared inode lock.
	ranges rangeLocks

	pmu  sync.Mutex
	pins map[Ino]int

	bufs sync.Pool // aligned I/O buffers of poolBufSize bytes

	ra readAhead
	// journaledMax is the most blocks a write journals its data in (0: none).
	journaledMax uint64
}

// fsinfo is the file-system info block (home block Layout.FSInfo).
//
//	[32:40) B+tree root block   [40:48) next inode number
//	[48:56) next generation     [56:64) inodes in use
//	[64:72) epoch (bumped each time a node starts serving; the NFS write verifier)
type fsinfo struct {
	root, nextIno, nextGen, inodes, epoch uint64
}

func decodeInfo(b []byte) fsinfo {
	le := binary.LittleEndian
	return fsinfo{le.Uint64(b[32:]), le.Uint64(b[40:]), le.Uint64(b[48:]), le.Uint64(b[56:]), le.Uint64(b[64:])}
}

func (fi fsinfo) encodeInto(b []byte) {
	le := binary.LittleEndian
	le.PutUint64(b[32:], fi.root)
	le.PutUint64(b[40:], fi.nextIno)
	le.PutUint64(b[48:], fi.nextGen)
	le.PutUint64(b[56:], fi.inodes)
	le.PutUint64(b[64:], fi.epoch)
}

// Format creates a new, empty file system on d.
func Format(d shareddisk.Disk, opt FormatOptions) (*shareddisk.Superblock, error) {
	sb, err := shareddisk.Format(d, shareddisk.FormatOptions{JournalBlocks: opt.JournalBlocks, Label: opt.Label, Force: opt.Force})
	if err != nil {
		return nil, err
	}
	lay := sb.Layout
	if err := journal.Format(d, lay.JournalStart, lay.JournalBlocks); err != nil {
		return nil, fmt.Errorf("format: %w", err)
	}
	// Bitmap blocks: all free, except the bits past the end of the disk.
	const chunk = 256
	buf := shareddisk.AlignedBuf(chunk * block.Size)
	for first := uint64(0); first < lay.BitmapBlocks; first += chunk {
		cnt := min(uint64(chunk), lay.BitmapBlocks-first)
		for i := uint64(0); i < cnt; i++ {
			b := buf[i*block.Size : (i+1)*block.Size]
			block.Init(b, block.TypeBitmap)
			base := (first + i) * shareddisk.BitsPerBitmapBlock
			for bit := uint64(0); bit < shareddisk.BitsPerBitmapBlock; bit++ {
				if base+bit >= lay.DataBlocks {
					b[block.HeaderSize+bit/8] |= 1 << (bit % 8)
				}
			}
			block.Seal(b, lay.BitmapStart+first+i, 0)
		}
		if _, err := d.WriteAt(buf[:cnt*block.Size], int64(lay.BitmapStart+first)*block.Size); err != nil {
			return nil, fmt.Errorf("format %s: write bitmap: %w", d.Name(), err)
		}
	}
	info := shareddisk.AlignedBuf(block.Size)
	block.Init(info, block.TypeFSInfo)
	fsinfo{nextIno: uint64(RootIno) + 1, nextGen: 1}.encodeInto(info)
	block.Seal(info, lay.FSInfo, 0)
	if _, err := d.WriteAt(info, int64(lay.FSInfo)*block.Size); err != nil {
		return nil, fmt.Errorf("format %s: write fsinfo: %w", d.Name(), err)
	}
	if err := d.Flush(); err != nil {
		return nil, fmt.Errorf("format %s: flush: %w", d.Name(), err)
	}
	m, err := txn.Open(d, lay, txn.Options{CacheBlocks: 256, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("format %s: %w", d.Name(), err)
	}
	now := time.Now().UnixNano()
	c, err := m.Update(func(tx *txn.Tx) error {
		root, err := btree.Create(tx)
		if err != nil {
			return err
		}
		fi := fsinfo{root: root, nextIno: uint64(RootIno) + 1, nextGen: 2, inodes: 1, epoch: 0}
		in := &inode{mode: ModeDir | 0o755, nlink: 2, gen: 1, atime: now, mtime: now, ctime: now, parent: uint64(RootIno)}
		if fi.root, err = btree.Put(tx, fi.root, inodeKey(RootIno), encodeInode(in)); err != nil {
			return err
		}
		b, err := tx.Modify(lay.FSInfo)
		if err != nil {
			return err
		}
		fi.encodeInto(b)
		return nil
	})
	if err == nil {
		err = c.Wait()
	}
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("format %s: create root directory: %w", d.Name(), err)
	}
	return sb, nil
}

// Open opens the file system on d, replaying its journal.
func Open(d shareddisk.Disk, opt Options) (*Store, error) {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	sb, err := shareddisk.ReadSuperblock(d)
	if err != nil {
		return nil, err
	}
	to := txn.Options{CacheBlocks: opt.CacheBlocks, Logger: opt.Logger, WriteGate: opt.WriteGate}
	readCacheOptions(opt, &to)
	m, err := txn.Open(d, sb.Layout, to)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", d.Name(), err)
	}
	s := &Store{d: d, sb: sb, m: m, logr: opt.Logger, pins: make(map[Ino]int)}
	switch j := opt.JournaledWriteBlocks; {
	case j == 0 || j > txn.MaxJournaledBlocks:
		s.journaledMax = txn.MaxJournaledBlocks
	case j > 0:
		s.journaledMax = uint64(j)
	}
	if err := m.View(func(tx *txn.Tx) error {
		b, err := tx.Read(sb.Layout.FSInfo)
		if err != nil {
			return err
		}
		if block.TypeOf(b) != block.TypeFSInfo {
			return fmt.Errorf("fsinfo block %d: %w", sb.Layout.FSInfo, block.ErrType)
		}
		if decodeInfo(b).root == 0 {
			return fmt.Errorf("fsinfo block %d: no root: the disk was not fully formatted: %w", sb.Layout.FSInfo, corrupt())
		}
		return nil
	}); err != nil {
		m.Kill(err)
		return nil, fmt.Errorf("open %s: %w", d.Name(), err)
	}
	if err := s.reapOrphans(); err != nil {
		m.Kill(err)
		return nil, fmt.Errorf("open %s: %w", d.Name(), err)
	}
	return s, nil
}

// Close commits everything pending, checkpoints the journal and closes the
// store. It does not close the disk. The read-ahead cache goes with it.
func (s *Store) Close() error {
	err := s.m.Close()
	s.m.CloseDataCache()
	return err
}

// Kill stops the store at once, without committing what is pending, as a
// crash or a lost lease would. The read-ahead cache goes with it.
func (s *Store) Kill(reason error) {
	s.m.Kill(reason)
	s.m.CloseDataCache()
}

// Err returns the error that stopped the store, or nil while it runs.
func (s *Store) Err() error { return s.m.Err() }

// Superblock returns the disk's superblock.
func (s *Store) Superblock() *shareddisk.Superblock { return s.sb }

// Disk returns the disk the store is on.
func (s *Store) Disk() shareddisk.Disk { return s.d }

// Stats returns the transaction layer's counters.
func (s *Store) Stats() txn.Stats { return s.m.Stats() }

// Sync waits until every completed call is durable (they already are: Sync
// exists for callers that want to be sure).
func (s *Store) Sync() error { return s.m.Sync() }

func (s *Store) ilock(ino Ino) *sync.RWMutex { return &s.locks[uint64(ino)%lockShards] }

// ToErrno maps an error from the store to the errno a file-system client
// should see.
func ToErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	switch {
	case errors.Is(err, txn.ErrNoSpace):
		return syscall.ENOSPC
	case errors.Is(err, txn.ErrTooLarge):
		return syscall.EFBIG
	case errors.Is(err, ErrGuard):
		return syscall.EAGAIN
	}
	return syscall.EIO
}

// stx is the file system's view of one transaction.
type stx struct {
	s     *Store
	tx    *txn.Tx
	info  fsinfo
	info0 fsinfo
	now   int64
}

func (s *Store) begin(tx *txn.Tx) (*stx, error) {
	b, err := tx.Read(s.sb.Layout.FSInfo)
	if err != nil {
		return nil, err
	}
	fi := decodeInfo(b)
	return &stx{s: s, tx: tx, info: fi, info0: fi, now: time.Now().UnixNano()}, nil
}

func (t *stx) end() error {
	if t.info == t.info0 {
		return nil
	}
	b, err := t.tx.Modify(t.s.sb.Layout.FSInfo)
	if err != nil {
		return err
	}
	t.info.encodeInto(b)
	return nil
}

// update runs fn in a transaction and waits until it is durable.
func (s *Store) update(fn func(t *stx) error) error {
	c, err := s.m.Update(func(tx *txn.Tx) error {
		t, err := s.begin(tx)
		if err != nil {
			return err
		}
		if err := fn(t); err != nil {
			return err
		}
		return t.end()
	})
	if err != nil {
		return err
	}
	return c.Wait()
}

// view runs fn under the shared metadata lock.
func (s *Store) view(fn func(t *stx) error) error {
	return s.m.View(func(tx *txn.Tx) error {
		t, err := s.begin(tx)
		if err != nil {
			return err
		}
		return fn(t)
	})
}

func (t *stx) get(k btree.Key) ([]byte, bool, error) { return btree.Get(t.tx, t.info.root, k) }

func (t *stx) put(k btree.Key, v []byte) error {
	r, err := btree.Put(t.tx, t.info.root, k, v)
	if err != nil {
		return err
	}
	t.info.root = r
	return nil
}

func (t *stx) del(k btree.Key) (bool, error) {
	r, found, err := btree.Delete(t.tx, t.info.root, k)
	if err != nil {
		return false, err
	}
	t.info.root = r
	return found, nil
}

// inode loads ino; a missing inode is ErrStale.
func (t *stx) inode(ino Ino) (*inode, error) {
	v, ok, err := t.get(inodeKey(ino))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("inode %d: %w", ino, ErrStale)
	}
	return decodeInode(ino, v)
}

func (t *stx) putInode(ino Ino, in *inode) error { return t.put(inodeKey(ino), encodeInode(in)) }

// dir loads ino and checks that it is a directory.
func (t *stx) dir(ino Ino) (*inode, error) {
	in, err := t.inode(ino)
	if err != nil {
		return nil, err
	}
	if in.mode&ModeType != ModeDir {
		return nil, fmt.Errorf("inode %d: %w", ino, ErrNotDir)
	}
	return in, nil
}

// Epoch returns the epoch recorded on the disk.
func (s *Store) Epoch() (uint64, error) {
	var e uint64
	err := s.view(func(t *stx) error { e = t.info.epoch; return nil })
	return e, err
}

// BumpEpoch increments the on-disk epoch durably and returns the new value.
// A node calls it when it starts serving, so the NFS write verifier changes.
func (s *Store) BumpEpoch() (uint64, error) {
	var e uint64
	err := s.update(func(t *stx) error {
		t.info.epoch++
		e = t.info.epoch
		return nil
	})
	return e, err
}
