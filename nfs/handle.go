package nfs

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"

	"github.com/hanfs/hanfs/fsstore"
)

// File handle layout (HandleSize bytes):
//
//	[0]      format version (1)
//	[1:17)   fsid: the disk's UUID
//	[17:21)  export id: FNV-1a 32 of the export's path, big endian
//	[21:29)  inode number, big endian
//	[29:37)  generation, big endian
//	[37:45)  the first 8 bytes of HMAC-SHA256 over [0:37) keyed with the
//	         disk's handle key, so a client cannot forge a handle for an
//	         object it was never given a handle to
//
// A handle depends only on on-disk state, so it names the same object on
// every node, before and after a failover.
const (
	HandleSize    = 45
	handleVersion = 1
)

// ErrBadHandle reports a handle that is malformed or fails authentication
// (NFS3ERR_BADHANDLE).
var ErrBadHandle = errors.New("malformed or forged file handle")

// ErrStaleHandle reports a handle of another file system or of an object that
// no longer exists (NFS3ERR_STALE).
var ErrStaleHandle = errors.New("stale file handle")

// Handles makes and checks file handles for one disk.
type Handles struct {
	fsid [16]byte
	key  []byte
	// macs holds keyed HMAC states for reuse: building one hashes the key
	// (two SHA-256 blocks), which every request would pay again.
	macs sync.Pool
}

// NewHandles returns the handle codec for the disk with uuid fsid and key.
func NewHandles(fsid [16]byte, key [32]byte) *Handles {
	h := &Handles{fsid: fsid, key: append([]byte(nil), key[:]...)}
	h.macs.New = func() any { return hmac.New(sha256.New, h.key) }
	return h
}

func (h *Handles) mac(b []byte) []byte {
	m := h.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(b)
	var sum [sha256.Size]byte
	out := m.Sum(sum[:0])[:8:8]
	h.macs.Put(m)
	return out
}

// Make returns the handle of inode ino with generation gen in export exp.
func (h *Handles) Make(exp uint32, ino fsstore.Ino, gen uint64) []byte {
	b := make([]byte, HandleSize)
	b[0] = handleVersion
	copy(b[1:17], h.fsid[:])
	binary.BigEndian.PutUint32(b[17:21], exp)
	binary.BigEndian.PutUint64(b[21:29], uint64(ino))
	binary.BigEndian.PutUint64(b[29:37], gen)
	copy(b[37:], h.mac(b[:37]))
	return b
}

// Parse checks a handle and returns its export id, inode number and
// generation.
func (h *Handles) Parse(b []byte) (exp uint32, ino fsstore.Ino, gen uint64, err error) {
	if len(b) != HandleSize || b[0] != handleVersion {
		return 0, 0, 0, fmt.Errorf("handle of %d bytes: %w", len(b), ErrBadHandle)
	}
	if string(b[1:17]) != string(h.fsid[:]) {
		return 0, 0, 0, fmt.Errorf("handle of another file system: %w", ErrStaleHandle)
	}
	if !hmac.Equal(b[37:], h.mac(b[:37])) {
		return 0, 0, 0, fmt.Errorf("handle authentication failed: %w", ErrBadHandle)
	}
	return binary.BigEndian.Uint32(b[17:21]), fsstore.Ino(binary.BigEndian.Uint64(b[21:29])), binary.BigEndian.Uint64(b[29:37]), nil
}
