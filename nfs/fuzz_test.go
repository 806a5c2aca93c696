package nfs

import (
	"net/netip"
	"testing"

	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/nfs/rpcwire"
	"github.com/hanfs/hanfs/shareddisk"
)

// FuzzHandleRecord feeds arbitrary RPC records to the front's request
// handler: it must never panic, whatever the procedure and arguments.
func FuzzHandleRecord(f *testing.F) {
	d := shareddisk.NewMem(128 << 20)
	if _, err := fsstore.Format(d, fsstore.FormatOptions{}); err != nil {
		f.Fatal(err)
	}
	st, err := fsstore.Open(d, fsstore.Options{})
	if err != nil {
		f.Fatal(err)
	}
	exp, _ := ParseExport("/ 127.0.0.0/8 rw,no_root_squash")
	srv, err := New(st, Config{Exports: []Export{exp}})
	if err != nil {
		f.Fatal(err)
	}
	root := srv.h.Make(srv.exports[0].id, fsstore.RootIno, 1)
	c := &conn{s: srv, ip: netip.MustParseAddr("127.0.0.1"), nc: nopConn{}}
	cred := &rpcwire.AuthUnix{Machine: "fuzz", UID: 1000, GID: 1000}
	for proc := uint32(0); proc < numProcs+1; proc++ {
		e := rpcwire.NewEncoder(nil)
		e.Opaque(root)
		e.String("name")
		e.Uint32(1)
		e.Uint64(0)
		f.Add(rpcwire.BuildCall(proc, ProgNFS, 3, proc, cred, e.Bytes()))
	}
	f.Add(rpcwire.BuildCall(9, ProgMount, 3, mntMnt, nil, []byte{0, 0, 0, 1, '/', 0, 0, 0}))
	f.Add(rpcwire.BuildCall(9, ProgMount, 3, mntExport, nil, nil))
	f.Add([]byte{0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, rec []byte) {
		_ = c.handle(rec)
	})
}

// nopConn satisfies net.Conn for a conn that never does I/O in the fuzzer.
type nopConn struct{ netConnStub }
