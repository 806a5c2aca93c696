package nfs

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/fsstore/txn"
	"github.com/hanfs/hanfs/nfs/rpcwire"
	"github.com/hanfs/hanfs/shareddisk"
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
	data := readTestData()
	size := len(data)
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
	cases := []readCase{
		{0, MaxIO}, {0, 1}, {0, 3}, {1, 5}, {4095, 2}, {4096, 4096}, {100, MaxIO},
		{MaxIO, MaxIO}, {size - 10, 100}, {size - 4096, 4096}, {size - 1234, MaxIO},
		{size, 10}, {size + 5000, 10}, {2 << 20, 7}, {0, 0}, {3 << 20, MaxIO + 4096},
	}
	readCases(t, rc, fh, data, &xid, cases)
}

type readCase struct{ off, count int }

// readCases sends a READ for each case and checks the reply against data.
func readCases(t *testing.T, rc *rawClient, fh, data []byte, xid *uint32, cases []readCase) {
	t.Helper()
	size := len(data)
	for _, c := range cases {
		t.Run(fmt.Sprintf("off%d-count%d", c.off, c.count), func(t *testing.T) {
			e := rpcwire.NewEncoder(nil)
			e.Opaque(fh)
			e.Uint64(uint64(c.off))
			e.Uint32(uint32(c.count))
			*xid++
			d := rc.call(*xid, ProgNFS, procRead, e.Bytes())
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

func readTestData() []byte {
	data := make([]byte, 3<<20+1234)
	for i := range data {
		data[i] = byte(i*7 + i>>12)
	}
	return data
}

// TestReadRepliesFromCache reads a file sequentially, so that the store
// reads ahead, then reads what it cached: the replies are sent from the
// cache's buffers (with the count cut and the XDR padding added).
func TestReadRepliesFromCache(t *testing.T) {
	d := shareddisk.NewMem(256 << 20)
	if _, err := fsstore.Format(d, fsstore.FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	var cnt txn.DataCacheCounters
	n := startNodeWith(t, d, fsstore.Options{ReadCacheCounters: &cnt})
	st := n.st
	t.Cleanup(func() { n.srv.Close(); st.Close() })
	rc := dialRaw(t, n.addr)
	root := rc.mountRoot()
	s, fh := createResult(t, rc.call(2, ProgNFS, procCreate, createArgs(root, "f")))
	if s != nfsOK {
		t.Fatalf("create: %v", s)
	}
	data := readTestData()
	a, err := st.Lookup(nil, fsstore.RootIno, "f")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(nil, a.Ino, data, 0); err != nil {
		t.Fatal(err)
	}
	xid := uint32(10)
	var seq []readCase
	for off := 0; off < len(data); off += MaxIO {
		seq = append(seq, readCase{off, MaxIO})
	}
	readCases(t, rc, fh, data, &xid, seq)
	h0 := cnt.Hits.Load()
	if h0 == 0 {
		t.Fatal("the sequential reads hit no read-ahead")
	}
	readCases(t, rc, fh, data, &xid, []readCase{
		{2 << 20, 1001}, {2<<20 + 4096, 4096}, {2 << 20, 4093}, {2 << 20, MaxIO}, {3 << 20, MaxIO},
		{2 << 20, 2 << 20}, {3 << 20, 3}, {2<<20 + 8192, 5},
	}) // the read ahead started at 2 MiB (after the second read)
	if cnt.Hits.Load() < h0+8 {
		t.Fatalf("%d cache hits for 8 reads of cached data", cnt.Hits.Load()-h0)
	}
}
