package nfs

import (
	"bytes"
	"net"
	"testing"

	nfsc "github.com/willscott/go-nfs-client/nfs"
	"github.com/willscott/go-nfs-client/nfs/rpc"

	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/shareddisk"
)

func startServer(t *testing.T) (*Server, string, *fsstore.Store) {
	t.Helper()
	d := shareddisk.NewMem(256 << 20)
	if _, err := fsstore.Format(d, fsstore.FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := fsstore.Open(d, fsstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	exp, err := ParseExport("/ 127.0.0.0/8 rw,no_root_squash")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(st, Config{Exports: []Export{exp}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Close(); st.Close() })
	return s, l.Addr().String(), st
}

func dialTarget(t *testing.T, addr string) *nfsc.Target {
	t.Helper()
	c, err := rpc.DialTCP("tcp", addr, false)
	if err != nil {
		t.Fatal(err)
	}
	m := &nfsc.Mount{Client: c}
	tgt, err := m.Mount("/", rpc.NewAuthUnix("test", 0, 0).Auth())
	if err != nil {
		t.Fatal(err)
	}
	return tgt
}

func TestInProcessBasics(t *testing.T) {
	_, addr, _ := startServer(t)
	tgt := dialTarget(t, addr)
	if _, err := tgt.Mkdir("d", 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := tgt.OpenFile("d/f", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("hanfs "), 50000)
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	f.Close()
	r, err := tgt.Open("d/f")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data)+10)
	n := 0
	for n < len(data) {
		m, err := r.Read(got[n:])
		n += m
		if m == 0 || err != nil {
			break
		}
	}
	if !bytes.Equal(got[:n], data) {
		t.Fatalf("read back %d bytes, want %d equal", n, len(data))
	}
	ents, err := tgt.ReadDirPlus("d")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, e := range ents {
		names[e.Name()] = true
	}
	if !names["f"] {
		t.Fatalf("readdirplus: %v", names)
	}
	if err := tgt.Rename("d/f", "d/g"); err != nil {
		t.Fatal(err)
	}
	if err := tgt.Remove("d/g"); err != nil {
		t.Fatal(err)
	}
	if err := tgt.RmDir("d"); err != nil {
		t.Fatal(err)
	}
}
