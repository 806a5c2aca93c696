package nfs

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/hanfs/hanfs/nfs/rpcwire"
)

// TestReadReplies checks READ replies built in pooled buffers: counts that
// are not multiples of 4 (XDR padding) or of the block size, unaligned
// offsets, reads across and past the end of file, and pooled buffers
// reused by the next READ with different sizes (no bytes of an earlier
// reply leak into a later one).
func TestReadReplies(t *testing.T) {
	_, addr, _ := startServer(t)
	rc := dialRaw(t, addr)
	root := rc.mountRoot()
	st, fh := createResult(t, rc.call(2, ProgNFS, procCreate, createArgs(root, "f")))
	if st != nfsOK {
		t.Fatalf("create: %v", st)
	}
	const size = 3<<20 + 1234
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + i>>12)
	}
	xid := uint32(10)
	for off := 0; off < size; off += MaxIO {
		chunk := data[off:min(off+MaxIO, size)]
		e := rpcwire.NewEncoder(nil)
		e.Opaque(fh)
		e.Uint64(uint64(off))
		e.Uint32(uint32(len(chunk)))
		e.Uint32(fileSync)
		e.Opaque(chunk)
		xid++
		d := rc.call(xid, ProgNFS, procWrite, e.Bytes())
		if s, _ := d.Uint32(); nfsstat(s) != nfsOK {
			t.Fatalf("write at %d: %v", off, nfsstat(s))
		}
	}
	cases := []struct{ off, count int }{
		{0, MaxIO}, {0, 1}, {0, 3}, {1, 5}, {4095, 2}, {4096, 4096}, {100, MaxIO},
		{MaxIO, MaxIO}, {size - 10, 100}, {size - 4096, 4096}, {size - 1234, MaxIO},
		{size, 10}, {size + 5000, 10}, {2 << 20, 7}, {0, 0}, {3 << 20, MaxIO + 4096},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("off%d-count%d", c.off, c.count), func(t *testing.T) {
			e := rpcwire.NewEncoder(nil)
			e.Opaque(fh)
			e.Uint64(uint64(c.off))
			e.Uint32(uint32(c.count))
			xid++
			d := rc.call(xid, ProgNFS, procRead, e.Bytes())
			if s, _ := d.Uint32(); nfsstat(s) != nfsOK {
				t.Fatalf("status %v", nfsstat(s))
			}
			if follows, _ := d.Bool(); follows {
				if _, err := d.FixedOpaque(84); err != nil {
					t.Fatal(err)
				}
			}
			n, _ := d.Uint32()
			eof, _ := d.Bool()
			got, err := d.Opaque(MaxIO)
			if err != nil {
				t.Fatal(err)
			}
			if d.Remaining() != 0 {
				t.Fatalf("%d bytes after the data", d.Remaining())
			}
			lo := min(c.off, size)
			want := data[lo:min(lo+min(c.count, MaxIO), size)]
			if int(n) != len(want) || !bytes.Equal(got, want) {
				t.Fatalf("got count %d, %d bytes (equal %v); want %d bytes", n, len(got), bytes.Equal(got, want), len(want))
			}
			if wantEOF := lo+len(want) >= size; eof != wantEOF {
				t.Fatalf("eof %v, want %v", eof, wantEOF)
			}
		})
	}
}
