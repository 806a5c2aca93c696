package nfsbench

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/hanfs/hanfs/fsstore"
	hnfs "github.com/hanfs/hanfs/nfs"
	"github.com/hanfs/hanfs/shareddisk"
)

// TestClient checks the pipelined client against an in-process hanfs server
// on an in-memory disk: mount, MKDIR, CREATE, WRITE (UNSTABLE and FILE_SYNC)
// with several calls in flight, COMMIT, READ.
func TestClient(t *testing.T) {
	d := shareddisk.NewMem(256 << 20)
	if _, err := fsstore.Format(d, fsstore.FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := fsstore.Open(d, fsstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	exp, err := hnfs.ParseExport("/ 127.0.0.0/8 rw,no_root_squash")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := hnfs.New(st, hnfs.Config{Exports: []hnfs.Export{exp}, Verifier: [8]byte{1},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	s := &server{name: "test", nfsAddr: l.Addr().String(), mountAddr: l.Addr().String(), path: "/"}
	if err := s.setup(); err != nil {
		t.Fatal(err)
	}
	c, err := Dial(s.nfsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir, err := c.Mkdir(s.root, "d")
	if err != nil {
		t.Fatal(err)
	}
	fh, err := c.Create(dir, "f")
	if err != nil {
		t.Fatal(err)
	}
	const chunk, n = 64 << 10, 32
	want := make([]byte, chunk*n)
	for i := 0; i < n; i++ {
		pattern(want[i*chunk:(i+1)*chunk], uint64(i))
	}
	for _, how := range []Stable{Unstable, FileSync} {
		var dur Durability
		err := parallel(8, n, func(_, i int) error {
			r, err := c.Write(fh, uint64(i*chunk), want[i*chunk:(i+1)*chunk], how)
			if err == nil {
				dur.Wrote(r)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		v, err := c.Commit(fh)
		if err != nil {
			t.Fatal(err)
		}
		dur.Committed(v)
		if err := dur.Err(); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, len(want))
	err = parallel(4, n, func(_, i int) error {
		m, _, err := c.ReadAt(fh, got[i*chunk:(i+1)*chunk], uint64(i*chunk))
		if err == nil && m != chunk {
			t.Errorf("read %d bytes at %d", m, i*chunk)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("read back different data")
	}
}
