package nfs

import (
	"errors"
	"testing"

	"github.com/hanfs/hanfs/fsstore"
)

func TestHandles(t *testing.T) {
	var key, key2 [32]byte
	key2[0] = 1
	fsid := [16]byte{1, 2, 3}
	h := NewHandles(fsid, key)
	fh := h.Make(7, 42, 9)
	if exp, ino, gen, err := h.Parse(fh); err != nil || exp != 7 || ino != 42 || gen != 9 {
		t.Fatalf("round trip: %d %d %d %v", exp, ino, gen, err)
	}
	forged := append([]byte(nil), fh...)
	forged[25] ^= 1 // another inode number, same MAC
	if _, _, _, err := h.Parse(forged); !errors.Is(err, ErrBadHandle) {
		t.Fatalf("forged handle: %v", err)
	}
	if _, _, _, err := h.Parse(fh[:20]); !errors.Is(err, ErrBadHandle) {
		t.Fatalf("short handle: %v", err)
	}
	other := NewHandles([16]byte{9}, key2).Make(7, 42, 9)
	if _, _, _, err := h.Parse(other); !errors.Is(err, ErrStaleHandle) {
		t.Fatalf("handle of another disk: %v", err)
	}
	if statusOf(fsstore.ErrStale) != nfsErrStale || statusOf(ErrBadHandle) != nfsErrBadhandle {
		t.Fatal("status mapping")
	}
}
