package nfs

import (
	"net"
	"testing"

	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/nfs/rpcwire"
	"github.com/hanfs/hanfs/shareddisk"
)

// rawClient sends hand-built RPC calls, so a test controls xids and can
// retransmit exactly the same request.
type rawClient struct {
	t  *testing.T
	c  net.Conn
	rr *rpcwire.RecordReader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, c: c, rr: rpcwire.NewRecordReader(c, MaxRecord)}
}

// call sends a call and returns the decoder positioned at the results.
func (rc *rawClient) call(xid, prog, proc uint32, args []byte) *rpcwire.Decoder {
	rc.t.Helper()
	rec := rpcwire.BuildCall(xid, prog, 3, proc, &rpcwire.AuthUnix{Machine: "test", UID: 0, GID: 0}, args)
	if err := rpcwire.WriteRecord(rc.c, rec); err != nil {
		rc.t.Fatal(err)
	}
	reply, err := rc.rr.Next()
	if err != nil {
		rc.t.Fatal(err)
	}
	r, err := rpcwire.ParseReply(reply)
	if err != nil {
		rc.t.Fatal(err)
	}
	if r.XID != xid || !r.Accepted || r.AcceptStat != rpcwire.Success {
		rc.t.Fatalf("reply xid %d accepted %v stat %v", r.XID, r.Accepted, r.AcceptStat)
	}
	return rpcwire.NewDecoder(r.Body)
}

func (rc *rawClient) mountRoot() []byte {
	rc.t.Helper()
	e := rpcwire.NewEncoder(nil)
	e.String("/")
	d := rc.call(1, ProgMount, mntMnt, e.Bytes())
	st, _ := d.Uint32()
	if st != 0 {
		rc.t.Fatalf("mount status %d", st)
	}
	fh, err := d.Opaque(64)
	if err != nil {
		rc.t.Fatal(err)
	}
	return append([]byte(nil), fh...)
}

func dirop(fh []byte, name string) *rpcwire.Encoder {
	e := rpcwire.NewEncoder(nil)
	e.Opaque(fh)
	e.String(name)
	return e
}

func emptySattr(e *rpcwire.Encoder) {
	for i := 0; i < 6; i++ {
		e.Uint32(0)
	}
}

func createArgs(dir []byte, name string) []byte {
	e := dirop(dir, name)
	e.Uint32(createGuarded)
	emptySattr(e)
	return e.Bytes()
}

// status reads a reply's nfsstat3 and, for CREATE, the new handle.
func createResult(t *testing.T, d *rpcwire.Decoder) (nfsstat, []byte) {
	t.Helper()
	st, err := d.Uint32()
	if err != nil {
		t.Fatal(err)
	}
	if nfsstat(st) != nfsOK {
		return nfsstat(st), nil
	}
	follows, _ := d.Bool()
	if !follows {
		t.Fatal("no handle in CREATE reply")
	}
	fh, _ := d.Opaque(64)
	return nfsOK, append([]byte(nil), fh...)
}

// node is one "process" on a shared disk: store plus server.
type node struct {
	st   *fsstore.Store
	srv  *Server
	addr string
}

func startNode(t *testing.T, d shareddisk.Disk) *node {
	t.Helper()
	return startNodeWith(t, d, fsstore.Options{})
}

// startNodeWith opens the store on d with opt and serves it on loopback.
func startNodeWith(t *testing.T, d shareddisk.Disk, opt fsstore.Options) *node {
	t.Helper()
	st, err := fsstore.Open(d, opt)
	if err != nil {
		t.Fatal(err)
	}
	exp, _ := ParseExport("/ 127.0.0.0/8 rw,no_root_squash")
	srv, err := New(st, Config{Exports: []Export{exp}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	return &node{st: st, srv: srv, addr: l.Addr().String()}
}

// crash stops the node without checkpointing (the journal holds the last
// transactions, as after kill -9).
func (n *node) crash() {
	n.srv.Close()
	n.st.Kill(errCrashed)
}

var errCrashed = &net.OpError{Op: "test crash"}

func TestExactlyOnceAcrossRestart(t *testing.T) {
	d := shareddisk.NewMem(256 << 20)
	if _, err := fsstore.Format(d, fsstore.FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, d)
	rc := dialRaw(t, n.addr)
	root := rc.mountRoot()

	// CREATE, retransmitted to the same process: same result.
	st, fh1 := createResult(t, rc.call(100, ProgNFS, procCreate, createArgs(root, "x")))
	if st != nfsOK {
		t.Fatalf("create: %v", st)
	}
	st, fh2 := createResult(t, rc.call(100, ProgNFS, procCreate, createArgs(root, "x")))
	if st != nfsOK || string(fh1) != string(fh2) {
		t.Fatalf("retransmitted create: %v, same handle %v", st, string(fh1) == string(fh2))
	}
	// A new request (new xid) for the same name really is a duplicate name.
	if st, _ := createResult(t, rc.call(101, ProgNFS, procCreate, createArgs(root, "x"))); st != nfsErrExist {
		t.Fatalf("second create with a new xid: %v, want EXIST", st)
	}
	// MKDIR and REMOVE, then a crash before anything is checkpointed.
	e := dirop(root, "d")
	emptySattr(e)
	mkdirArgs := e.Bytes()
	if st, _ := createResult(t, rc.call(102, ProgNFS, procMkdir, mkdirArgs)); st != nfsOK {
		t.Fatalf("mkdir: %v", st)
	}
	removeArgs := dirop(root, "x").Bytes()
	if st, _ := rc.call(103, ProgNFS, procRemove, removeArgs).Uint32(); nfsstat(st) != nfsOK {
		t.Fatalf("remove: %v", nfsstat(st))
	}
	e = dirop(root, "d")
	e.Opaque(root)
	e.String("d2")
	renameArgs := e.Bytes()
	if st, _ := rc.call(104, ProgNFS, procRename, renameArgs).Uint32(); nfsstat(st) != nfsOK {
		t.Fatalf("rename: %v", nfsstat(st))
	}
	n.crash()

	// A fresh process on the same disk answers the retransmissions from the
	// records written with the effects: success, not EXIST or NOENT.
	n2 := startNode(t, d)
	defer n2.crash()
	rc2 := dialRaw(t, n2.addr)
	if st, fh := createResult(t, rc2.call(100, ProgNFS, procCreate, createArgs(root, "x"))); st != nfsOK || string(fh) != string(fh1) {
		t.Fatalf("create retransmitted after restart: %v (same handle %v)", st, string(fh) == string(fh1))
	}
	if st, _ := createResult(t, rc2.call(102, ProgNFS, procMkdir, mkdirArgs)); st != nfsOK {
		t.Fatalf("mkdir retransmitted after restart: %v", st)
	}
	if st, _ := rc2.call(103, ProgNFS, procRemove, removeArgs).Uint32(); nfsstat(st) != nfsOK {
		t.Fatalf("remove retransmitted after restart: %v", nfsstat(st))
	}
	if st, _ := rc2.call(104, ProgNFS, procRename, renameArgs).Uint32(); nfsstat(st) != nfsOK {
		t.Fatalf("rename retransmitted after restart: %v", nfsstat(st))
	}
	// And the effects happened exactly once.
	if _, err := n2.st.Lookup(nil, fsstore.RootIno, "x"); err == nil {
		t.Fatal("x exists after its remove")
	}
	if _, err := n2.st.Lookup(nil, fsstore.RootIno, "d2"); err != nil {
		t.Fatalf("d2 missing after rename: %v", err)
	}
	// Without the record, the same request would fail: prove the test can fail.
	if st, _ := rc2.call(105, ProgNFS, procRemove, removeArgs).Uint32(); nfsstat(st) != nfsErrNoent {
		t.Fatalf("remove with a new xid: %v, want NOENT", nfsstat(st))
	}
}
