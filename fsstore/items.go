package fsstore

// Items of the metadata B+tree. Every key is (Obj, Type, Off); the table below
// is the complete list of what the tree holds.
//
//	(ino,  itemInode,   0)            inode record (inodeSize bytes, see encodeInode)
//	(dir,  itemDirent,  hash56(name)) bucket of directory entries whose names share the hash
//	(ino,  itemBackref, hash56(p,n))  bucket of (parent, name) pairs naming ino: parent pointers
//	(ino,  itemExtent,  file block)   extent: disk block u64, block count u64
//	(ino,  itemSymlink, 0)            symlink target
//	(0,    itemOrphan,  ino)          an unlinked inode still open locally, freed at last close or next mount
//	(recObj, itemRecord, hash64(key)) a duplicate-request record: key [16]byte, value

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/hanfs/hanfs/fsstore/btree"
)

const (
	itemInode   uint8 = 1
	itemDirent  uint8 = 2
	itemBackref uint8 = 3
	itemExtent  uint8 = 4
	itemSymlink uint8 = 5
	itemOrphan  uint8 = 6
	itemRecord  uint8 = 7
)

// recObj is the object id under which duplicate-request records live.
const recObj = ^uint64(0) - 1

func inodeKey(ino Ino) btree.Key { return btree.Key{Obj: uint64(ino), Type: itemInode} }
func direntKey(dir Ino, h uint64) btree.Key {
	return btree.Key{Obj: uint64(dir), Type: itemDirent, Off: h}
}
func backrefKey(ino Ino, h uint64) btree.Key {
	return btree.Key{Obj: uint64(ino), Type: itemBackref, Off: h}
}
func extentKey(ino Ino, fb uint64) btree.Key {
	return btree.Key{Obj: uint64(ino), Type: itemExtent, Off: fb}
}
func symlinkKey(ino Ino) btree.Key { return btree.Key{Obj: uint64(ino), Type: itemSymlink} }
func orphanKey(ino Ino) btree.Key  { return btree.Key{Obj: 0, Type: itemOrphan, Off: uint64(ino)} }

// hash56 is FNV-1a 64 of the name, reduced to 56 bits so that a directory
// cookie can carry the hash and an 8-bit index within the bucket. The lowest
// bit is always set, so no cookie is below 257 (NFS uses 1 and 2 for "." and
// "..").
func hash56(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()>>8 | 1
}

func backrefHash(parent Ino, name string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(parent))
	h.Write(b[:])
	h.Write([]byte(name))
	return h.Sum64() >> 8
}

// inode is the decoded inode record.
type inode struct {
	mode, nlink, uid, gid uint32
	size, gen             uint64
	atime, mtime, ctime   int64 // unix nanoseconds
	rdev, blocks          uint64
	parent                uint64
	verf                  uint64 // exclusive-create verifier, cleared by setattr
}

// Inode record layout (little endian):
//
//	[0:4) mode   [4:8) nlink  [8:12) uid  [12:16) gid
//	[16:24) size [24:32) generation
//	[32:40) atime [40:48) mtime [48:56) ctime   (unix nanoseconds)
//	[56:64) rdev [64:72) blocks [72:80) parent  [80:88) create verifier
const inodeSize = 88

func encodeInode(in *inode) []byte {
	b := make([]byte, inodeSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], in.mode)
	le.PutUint32(b[4:], in.nlink)
	le.PutUint32(b[8:], in.uid)
	le.PutUint32(b[12:], in.gid)
	le.PutUint64(b[16:], in.size)
	le.PutUint64(b[24:], in.gen)
	le.PutUint64(b[32:], uint64(in.atime))
	le.PutUint64(b[40:], uint64(in.mtime))
	le.PutUint64(b[48:], uint64(in.ctime))
	le.PutUint64(b[56:], in.rdev)
	le.PutUint64(b[64:], in.blocks)
	le.PutUint64(b[72:], in.parent)
	le.PutUint64(b[80:], in.verf)
	return b
}

func decodeInode(ino Ino, b []byte) (*inode, error) {
	if len(b) != inodeSize {
		return nil, fmt.Errorf("inode %d: record of %d bytes, want %d: %w", ino, len(b), inodeSize, corrupt())
	}
	le := binary.LittleEndian
	in := &inode{
		mode: le.Uint32(b[0:]), nlink: le.Uint32(b[4:]), uid: le.Uint32(b[8:]), gid: le.Uint32(b[12:]),
		size: le.Uint64(b[16:]), gen: le.Uint64(b[24:]),
		atime: int64(le.Uint64(b[32:])), mtime: int64(le.Uint64(b[40:])), ctime: int64(le.Uint64(b[48:])),
		rdev: le.Uint64(b[56:]), blocks: le.Uint64(b[64:]), parent: le.Uint64(b[72:]), verf: le.Uint64(b[80:]),
	}
	switch in.mode & ModeType {
	case ModeRegular, ModeDir, ModeSymlink, ModeChar, ModeBlock, ModeFIFO, ModeSocket:
	default:
		return nil, fmt.Errorf("inode %d: bad mode %o: %w", ino, in.mode, corrupt())
	}
	return in, nil
}

func (in *inode) attr(ino Ino) Attr {
	return Attr{
		Ino: ino, Gen: in.gen, Mode: in.mode, Nlink: in.nlink, UID: in.uid, GID: in.gid,
		Size: in.size, Blocks: in.blocks, Rdev: in.rdev,
		Atime: time.Unix(0, in.atime), Mtime: time.Unix(0, in.mtime), Ctime: time.Unix(0, in.ctime),
		Parent: Ino(in.parent),
	}
}

// dent is one entry of a directory bucket or a backref bucket.
type dent struct {
	ino  uint64 // target (dirent) or parent (backref)
	typ  uint8  // mode>>12 of the target (dirent only)
	name string
}

// Bucket layout: entries back to back, each
//
//	[0:8) inode number  [8] type  [9] name length  [10:10+len) name
func encodeBucket(es []dent) []byte {
	n := 0
	for _, e := range es {
		n += 10 + len(e.name)
	}
	b := make([]byte, 0, n)
	for _, e := range es {
		b = binary.LittleEndian.AppendUint64(b, e.ino)
		b = append(b, e.typ, byte(len(e.name)))
		b = append(b, e.name...)
	}
	return b
}

func decodeBucket(b []byte) ([]dent, error) {
	var es []dent
	for len(b) > 0 {
		if len(b) < 10 {
			return nil, fmt.Errorf("directory bucket truncated: %w", corrupt())
		}
		l := int(b[9])
		if l == 0 || len(b) < 10+l {
			return nil, fmt.Errorf("directory bucket entry of %d bytes in %d: %w", l, len(b), corrupt())
		}
		es = append(es, dent{ino: binary.LittleEndian.Uint64(b), typ: b[8], name: string(b[10 : 10+l])})
		b = b[10+l:]
	}
	return es, nil
}

// extent maps n file blocks starting at the key's file block to disk blocks.
type extent struct{ disk, n uint64 }

func encodeExtent(e extent) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint64(b, e.disk)
	binary.LittleEndian.PutUint64(b[8:], e.n)
	return b
}

func decodeExtent(b []byte) (extent, error) {
	if len(b) != 16 {
		return extent{}, fmt.Errorf("extent record of %d bytes: %w", len(b), corrupt())
	}
	e := extent{disk: binary.LittleEndian.Uint64(b), n: binary.LittleEndian.Uint64(b[8:])}
	if e.n == 0 || e.disk == 0 {
		return extent{}, fmt.Errorf("empty extent: %w", corrupt())
	}
	return e, nil
}

func corrupt() error { return corruptErr{} }

type corruptErr struct{}

func (corruptErr) Error() string { return "file system metadata corrupt (EIO)" }
func (corruptErr) Is(target error) bool {
	return target == ErrCorrupt || target == ErrIO
}
