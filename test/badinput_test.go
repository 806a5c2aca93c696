package test

// Bad input against a real process: broken framing, garbage, oversized
// records, wrong RPC versions, programs, procedures and credentials,
// arguments cut short, forged handles and a handle from another disk. Each
// gets a clear RPC or NFS error, or a cleanly closed connection; the server
// keeps serving other clients and never panics.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hanfs/hanfs/nfs/rpcwire"
)

// mark returns a record mark for a fragment of n bytes.
func mark(n uint32, last bool) []byte {
	if last {
		n |= 1 << 31
	}
	return binary.BigEndian.AppendUint32(nil, n)
}

// replyTo sends rec (framed) and returns the reply, failing on a close or timeout.
func replyTo(t *testing.T, rc *rpcConn, rec []byte) *rpcwire.Reply {
	t.Helper()
	r, err := rc.roundTrip(rec)
	if err != nil {
		t.Fatalf("no reply: %v", err)
	}
	return r
}

// stillServes checks that a new client gets answers.
func stillServes(t *testing.T, srv *Server) {
	t.Helper()
	if !srv.Running() {
		t.Fatalf("hanfsd is not running any more")
	}
	rc := dialRPC(t, srv.Addr)
	rc.null()
	rc.mustGetattr(rc.mountRoot())
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	srv := StartServer(t, newImage(t))
	main := dialRPC(t, srv.Addr)
	root := main.mountRoot()
	file := main.mustCreate(root, "f")
	nullCall := func(xid uint32) []byte { return rpcwire.BuildCall(xid, progNFS, 3, procNull, nil, nil) }

	t.Run("truncated record", func(t *testing.T) {
		main := main.on(t)
		_ = main
		rc := dialRPC(t, srv.Addr)
		rec := nullCall(1)
		rc.sendRaw(append(mark(uint32(len(rec))+100, true), rec...))
		rc.c.(*net.TCPConn).CloseWrite()
		if err := rc.expectClosed(5 * time.Second); err != nil {
			t.Errorf("record cut short, then EOF: %v", err)
		}
		// A mark cut short.
		rc = dialRPC(t, srv.Addr)
		rc.sendRaw([]byte{0x80, 0})
		rc.c.(*net.TCPConn).CloseWrite()
		if err := rc.expectClosed(5 * time.Second); err != nil {
			t.Errorf("record mark cut short: %v", err)
		}
		stillServes(t, srv)
	})

	t.Run("truncated call header", func(t *testing.T) {
		main := main.on(t)
		_ = main
		rc := dialRPC(t, srv.Addr)
		full := nullCall(0x5151)
		for _, n := range []int{0, 3, 4, 6, 8, 20, len(full) - 1} {
			if err := rc.sendRecord(full[:n]); err != nil {
				t.Fatal(err)
			}
		}
		// Whatever is answered is GARBAGE_ARGS for an xid that was sent; then NULL works.
		r := replyTo(t, rc, nullCall(0x6161))
		_ = r
		main.null()
	})

	t.Run("garbage bytes", func(t *testing.T) {
		main := main.on(t)
		_ = main
		rng := rand.New(rand.NewSource(1))
		for i := 0; i < 8; i++ {
			rc := dialRPC(t, srv.Addr)
			junk := make([]byte, 1+rng.Intn(64<<10))
			rng.Read(junk)
			rc.sendRaw(junk)
			rc.c.(*net.TCPConn).CloseWrite()
			for {
				rec, err := rc.recvRecord(5 * time.Second)
				if err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						t.Errorf("garbage stream %d: connection still open 5s after EOF", i)
					}
					break
				}
				if _, err := rpcwire.ParseReply(rec); err != nil {
					t.Errorf("garbage stream %d: malformed reply: %v", i, err)
				}
			}
		}
		stillServes(t, srv)
	})

	t.Run("2 GiB record mark", func(t *testing.T) {
		main := main.on(t)
		_ = main
		for _, m := range [][]byte{mark(1<<31-1, true), mark(1<<31-1, false), mark(MaxServerRecord+1, true)} {
			rc := dialRPC(t, srv.Addr)
			rc.sendRaw(append(m, 1, 2, 3, 4))
			start := time.Now()
			if err := rc.expectClosed(3 * time.Second); err != nil {
				t.Errorf("record mark %x: %v, want the connection closed at once", m, err)
			} else if d := time.Since(start); d > 2*time.Second {
				t.Errorf("record mark %x: closed only after %v", m, d)
			}
		}
		// Fragments each under the limit, adding up to more than it.
		rc := dialRPC(t, srv.Addr)
		frag := make([]byte, 600<<10)
		go func() {
			for i := 0; i < 3; i++ {
				if rc.sendRaw(append(mark(uint32(len(frag)), false), frag...)) != nil {
					return
				}
			}
		}()
		if err := rc.expectClosed(5 * time.Second); err != nil {
			t.Errorf("fragments adding up to 1.8 MiB: %v", err)
		}
		stillServes(t, srv)
	})

	t.Run("zero-length fragments", func(t *testing.T) {
		main := main.on(t)
		_ = main
		rc := dialRPC(t, srv.Addr)
		call := nullCall(0x7777)
		var b []byte
		for i := 0; i < 3; i++ {
			b = append(b, mark(0, false)...)
		}
		b = append(b, mark(10, false)...)
		b = append(b, call[:10]...)
		b = append(b, mark(0, false)...)
		b = append(b, mark(uint32(len(call)-10), true)...)
		b = append(b, call[10:]...)
		rc.sendRaw(b)
		r, err := rc.recvReply(5 * time.Second)
		if err != nil || r.XID != 0x7777 || !r.Accepted || r.AcceptStat != rpcwire.Success {
			t.Fatalf("a call split around empty fragments: %+v %v", r, err)
		}
		// An empty record: nothing to answer; the connection goes on.
		rc.sendRaw(mark(0, true))
		if r := replyTo(t, rc, nullCall(0x7778)); r.XID != 0x7778 || r.AcceptStat != rpcwire.Success {
			t.Errorf("NULL after an empty record: %+v", r)
		}
		// Endless empty fragments: closed.
		rc = dialRPC(t, srv.Addr)
		rc.sendRaw(bytes.Repeat(mark(0, false), rpcwire.MaxFragments+10))
		if err := rc.expectClosed(5 * time.Second); err != nil {
			t.Errorf("%d empty fragments: %v", rpcwire.MaxFragments+10, err)
		}
	})

	t.Run("RPC version 3", func(t *testing.T) {
		main := main.on(t)
		_ = main
		rc := dialRPC(t, srv.Addr)
		rec := nullCall(0x3333)
		binary.BigEndian.PutUint32(rec[8:], 3)
		r := replyTo(t, rc, rec)
		if r.Accepted || r.RejectStat != rpcwire.RejectRPCMismatch || r.Low != 2 || r.High != 2 {
			t.Errorf("RPC version 3: %+v, want MSG_DENIED RPC_MISMATCH 2..2", r)
		}
		rc.null()
	})

	t.Run("unknown program and version", func(t *testing.T) {
		main := main.on(t)
		_ = main
		rc := dialRPC(t, srv.Addr)
		r := replyTo(t, rc, rpcwire.BuildCall(1, 200999, 1, 0, nil, nil))
		if !r.Accepted || r.AcceptStat != rpcwire.ProgUnavail {
			t.Errorf("unknown program: %+v, want PROG_UNAVAIL", r)
		}
		for _, c := range []struct{ prog, vers, want uint32 }{{progNFS, 2, 3}, {progNFS, 4, 3}, {progMount, 1, 3}} {
			r := replyTo(t, rc, rpcwire.BuildCall(2, c.prog, c.vers, 0, nil, nil))
			if !r.Accepted || r.AcceptStat != rpcwire.ProgMismatch || r.Low != c.want || r.High != c.want {
				t.Errorf("program %d version %d: %+v, want PROG_MISMATCH %d..%d", c.prog, c.vers, r, c.want, c.want)
			}
		}
	})

	t.Run("unknown procedure", func(t *testing.T) {
		main := main.on(t)
		_ = main
		rc := dialRPC(t, srv.Addr)
		for _, c := range []struct{ prog, proc uint32 }{{progNFS, 99}, {progNFS, 22}, {progNFS, 1 << 31}, {progMount, 99}} {
			r := replyTo(t, rc, rc.buildCall(nextXID(), c.prog, c.proc, argsFH(root)))
			if !r.Accepted || r.AcceptStat != rpcwire.ProcUnavail {
				t.Errorf("program %d procedure %d: %+v, want PROC_UNAVAIL", c.prog, c.proc, r)
			}
		}
	})

	t.Run("credentials", func(t *testing.T) {
		main := main.on(t)
		_ = main
		rc := dialRPC(t, srv.Addr)
		gids := make([]uint32, 17)
		for i := range gids {
			gids[i] = uint32(100 + i)
		}
		r := replyTo(t, rc, rpcwire.BuildCall(0x1717, progNFS, 3, procGetattr,
			&rpcwire.AuthUnix{Machine: "m", UID: 1000, GID: 1000, GIDs: gids}, argsFH(root)))
		if r.Accepted || r.RejectStat != rpcwire.RejectAuthError || r.AuthStat != rpcwire.AuthBadCred {
			t.Errorf("AUTH_UNIX with 17 gids: %+v, want MSG_DENIED AUTH_ERROR AUTH_BADCRED", r)
		}
		r = replyTo(t, rc, rpcwire.BuildCall(0x1616, progNFS, 3, procGetattr,
			&rpcwire.AuthUnix{Machine: "m", UID: 1000, GID: 1000, GIDs: gids[:16]}, argsFH(root)))
		if !r.Accepted || r.AcceptStat != rpcwire.Success {
			t.Errorf("AUTH_UNIX with 16 gids: %+v, want SUCCESS", r)
		}
		r = replyTo(t, rc, rpcwire.BuildCall(0x2020, progNFS, 3, procGetattr,
			&rpcwire.AuthUnix{Machine: strings.Repeat("m", 256), GIDs: nil}, argsFH(root)))
		if r.Accepted || r.RejectStat != rpcwire.RejectAuthError {
			t.Errorf("AUTH_UNIX with a 256-byte machine name: %+v, want AUTH_ERROR", r)
		}
		// RPCSEC_GSS (flavor 6), which the server does not speak.
		rec := rpcwire.BuildCall(0x0606, progNFS, 3, procGetattr, nil, argsFH(root))
		binary.BigEndian.PutUint32(rec[24:], 6)
		r = replyTo(t, rc, rec)
		if r.Accepted || r.RejectStat != rpcwire.RejectAuthError {
			t.Errorf("flavor RPCSEC_GSS: %+v, want AUTH_ERROR", r)
		}
		// A credential body over 400 bytes.
		e := newEnc()
		for _, v := range []uint32{0x0404, 0, 2, progNFS, 3, procGetattr, 1} {
			e.Uint32(v)
		}
		e.Opaque(make([]byte, 404))
		e.Uint32(0)
		e.Uint32(0)
		r = replyTo(t, rc, append(e.Bytes(), argsFH(root)...))
		if r.Accepted || r.RejectStat != rpcwire.RejectAuthError {
			t.Errorf("a 404-byte credential: %+v, want AUTH_ERROR", r)
		}
		rc.null()
	})

	t.Run("arguments cut short", func(t *testing.T) {
		main := main.on(t)
		_ = main
		rc := dialRPC(t, srv.Addr)
		full := map[uint32][]byte{
			procGetattr:     argsFH(root),
			procSetattr:     argsSetattr(file, sattr{Mode: u32p(0o644)}, nil),
			procLookup:      argsDirop(root, "some-name"),
			procRead:        append(argsFH(file), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0),
			procWrite:       argsWrite(file, 0, []byte("0123456789"), fileSync),
			procCreate:      argsCreate(root, "cut", createGuarded, sattr{Mode: u32p(0o644)}, 0),
			procMkdir:       argsMkdir(root, "cut", sattr{}),
			procSymlink:     argsSymlink(root, "cut", "target", sattr{}),
			procMknod:       argsMknod(root, "cut", nf3Chr, sattr{}, 1, 2),
			procRemove:      argsDirop(root, "f"),
			procRename:      argsRename(root, "f", root, "g"),
			procLink:        argsLink(file, root, "g"),
			procReaddirplus: append(argsFH(root), make([]byte, 24)...),
			procCommit:      append(argsFH(file), make([]byte, 12)...),
			procFsinfo:      argsFH(root),
		}
		for proc, args := range full {
			for _, cut := range []int{0, 3, len(args) / 2, len(args) - 1} {
				xid := nextXID()
				r := replyTo(t, rc, rc.buildCall(xid, progNFS, proc, args[:cut]))
				if r.XID != xid || !r.Accepted || r.AcceptStat != rpcwire.GarbageArgs {
					t.Errorf("procedure %d with %d of %d argument bytes: accepted %v stat %v, want GARBAGE_ARGS",
						proc, cut, len(args), r.Accepted, r.AcceptStat)
				}
			}
		}
		// Out-of-range values: a bool of 2, a create mode of 7, a handle over 64 bytes.
		bad := argsSetattr(file, sattr{}, nil)
		binary.BigEndian.PutUint32(bad[len(bad)-4:], 2)
		badCreate := newEnc()
		putDirop(badCreate, root, "x")
		badCreate.Uint32(7)
		weird := []struct {
			proc uint32
			args []byte
		}{
			{procSetattr, bad},
			{procCreate, badCreate.Bytes()},
			{procGetattr, argsFH(make([]byte, 65))},
		}
		for _, w := range weird {
			r := replyTo(t, rc, rc.buildCall(nextXID(), progNFS, w.proc, w.args))
			if !r.Accepted || r.AcceptStat != rpcwire.GarbageArgs {
				t.Errorf("procedure %d with an out-of-range value: %+v, want GARBAGE_ARGS", w.proc, r)
			}
		}
		r := replyTo(t, rc, rc.buildCall(nextXID(), progMount, mntMnt, []byte{0, 0, 1}))
		if !r.Accepted || r.AcceptStat != rpcwire.GarbageArgs {
			t.Errorf("MNT with a path cut short: %+v, want GARBAGE_ARGS", r)
		}
		// Nothing was created or removed by the cut calls.
		if st, _, _ := main.lookup(root, "cut"); st != errNoent {
			t.Errorf("cut calls created something: %v", st)
		}
		if st, _, _ := main.lookup(root, "f"); st != nfsOK {
			t.Errorf("cut calls removed f: %v", st)
		}
		rc.null()
	})

	t.Run("a reply sent to the server", func(t *testing.T) {
		main := main.on(t)
		_ = main
		rc := dialRPC(t, srv.Addr)
		rc.sendRecord(rpcwire.AcceptedReply(0x4242, rpcwire.Success, nil))
		if r := replyTo(t, rc, nullCall(0x4343)); r.XID != 0x4343 {
			t.Errorf("after a REPLY message: answer to xid %#x", r.XID)
		}
	})

	t.Run("forged handles and another disk", func(t *testing.T) {
		main := main.on(t)
		_ = main
		// The root handle with the inode number of f but the root's MAC.
		fa := main.mustGetattr(file)
		forged := append([]byte(nil), root...)
		if len(forged) == 45 {
			binary.BigEndian.PutUint64(forged[21:29], fa.Fileid)
			if st, _ := main.getattr(forged); st != errBadhandle {
				t.Errorf("GETATTR of a forged handle: %v, want BADHANDLE", st)
			}
		}
		other := StartServer(t, newImage(t))
		oc := dialRPC(t, other.Addr)
		oroot := oc.mountRoot()
		ofile := oc.mustCreate(oroot, "f")
		for _, h := range [][]byte{oroot, ofile} {
			if st, _ := main.getattr(h); st != errStale && st != errBadhandle {
				t.Errorf("GETATTR of a handle from another disk: %v, want STALE (or BADHANDLE)", st)
			}
			if st, _, _ := main.lookup(h, "f"); st != errStale && st != errBadhandle {
				t.Errorf("LOOKUP with a directory handle from another disk: %v, want STALE (or BADHANDLE)", st)
			}
		}
	})

	t.Run("many bad clients at once", func(t *testing.T) {
		main := main.on(t)
		_ = main
		done := make(chan struct{})
		for i := 0; i < 16; i++ {
			go func(i int) {
				defer func() { done <- struct{}{} }()
				c, err := net.Dial("tcp", srv.Addr)
				if err != nil {
					return
				}
				defer c.Close()
				rng := rand.New(rand.NewSource(int64(i)))
				for j := 0; j < 20; j++ {
					rec := nullCall(uint32(j))
					rng.Read(rec[4 : 4+rng.Intn(len(rec)-4)])
					c.SetWriteDeadline(time.Now().Add(2 * time.Second))
					if rpcwire.WriteRecord(c, rec) != nil {
						return
					}
				}
			}(i)
		}
		for i := 0; i < 16; i++ {
			<-done
		}
		stillServes(t, srv)
	})

	// After all of it: alive, serving a normal client, and no panic in the log.
	stillServes(t, srv)
	_, tgt := dialGoNFS(t, srv.Addr, "/", 0, 0)
	if _, err := tgt.ReadDirPlus("."); err != nil {
		t.Errorf("go-nfs-client after the bad input: ReadDirPlus: %v", err)
	}
	if _, err := tgt.Mkdir("after-bad-input", 0o755); err != nil {
		t.Errorf("go-nfs-client after the bad input: Mkdir: %v", err)
	}
	main.null()
	if strings.Contains(srv.Logs(), "panic") {
		t.Errorf("hanfsd logged a panic")
	}
}

// MaxServerRecord is the largest record the server accepts (nfs.MaxRecord).
const MaxServerRecord = 1<<20 + 64<<10
