package test

// Exactly-once for non-idempotent requests (invariant 7) with real
// processes: the server dies right after a request's journal commit, before
// its reply (--test-exit-after-commit), a new process starts on the same
// disk, and the client's retransmission (same xid, same client address, same
// credential, same bytes) gets the original outcome. A control with a new
// xid shows the test would fail without the duplicate-request records.

import (
	"bytes"
	"testing"
	"time"
)

// eoStep is one non-idempotent request whose reply is lost to a crash.
type eoStep struct {
	proc    string // name for --test-exit-after-commit
	num     uint32 // procedure number
	args    func() []byte
	decode  func(dec) (nfsStat, []byte) // status and the handle made, if any
	control nfsStat                     // what the same request with a new xid gets afterwards
	verify  func(t *testing.T, rc *rpcConn, fh []byte)
	// before, if set, runs on the new process before the retransmission.
	before func(t *testing.T, rc *rpcConn)
}

// runExactlyOnce runs steps on one disk: process i dies after step i's
// commit; process i+1 answers step i's retransmission.
func runExactlyOnce(t *testing.T, srv *Server, setup func(rc *rpcConn), steps []eoStep) {
	rc := dialRPC(t, srv.Addr)
	setup(rc)
	var prev *eoStep
	var prevRec []byte
	for i := range steps {
		step := &steps[i]
		// This process dies after the commit of step.proc. (The first
		// server is stopped cleanly: a released lease is claimed at once.)
		if srv.Running() {
			srv.Stop()
		}
		srv.Start("--test-exit-after-commit", step.proc)
		if prev != nil {
			retransmit(t, srv, prev, prevRec)
		}
		rec := rootCredCall(nextXID(), step.num, step.args())
		c := dialRPC(t, srv.Addr)
		if err := c.sendRecord(rec); err != nil {
			t.Fatalf("%s: send: %v", step.proc, err)
		}
		if err := c.expectClosed(20 * time.Second); err != nil {
			t.Fatalf("%s with --test-exit-after-commit: %v, want the connection closed without a reply", step.proc, err)
		}
		if code := srv.WaitExit(20 * time.Second); code != 137 {
			t.Fatalf("%s with --test-exit-after-commit: exit status %d, want 137", step.proc, code)
		}
		prev, prevRec = step, rec
	}
	srv.Start()
	retransmit(t, srv, prev, prevRec)
}

// rootCredCall builds an NFS call with the root credential, as the tests'
// client sends it (the stamp is part of the credential and stays the same).
func rootCredCall(xid, proc uint32, args []byte) []byte {
	c := rpcConn{Cred: rootCred}
	return c.buildCall(xid, progNFS, proc, args)
}

// retransmit sends rec again to the (new) process, twice (the second answered
// from memory), then checks the effect and the control with a new xid.
func retransmit(t *testing.T, srv *Server, step *eoStep, rec []byte) {
	t.Helper()
	rc := dialRPC(t, srv.Addr)
	if step.before != nil {
		step.before(t, rc)
	}
	var first []byte
	for i := 0; i < 2; i++ {
		r, err := rc.roundTrip(rec)
		if err != nil {
			t.Fatalf("%s retransmitted to a new process: %v", step.proc, err)
		}
		if !r.Accepted || r.AcceptStat != 0 {
			t.Fatalf("%s retransmitted: accept %v stat %v", step.proc, r.Accepted, r.AcceptStat)
		}
		st, fh := step.decode(dec{t, rpcwireDecoder(r.Body)})
		if st != nfsOK {
			t.Fatalf("%s retransmitted (same xid) to a new process on the same disk: %v, want OK (the original outcome)", step.proc, st)
		}
		if i == 0 {
			first = fh
			step.verify(t, rc, fh)
		} else if !bytes.Equal(fh, first) {
			t.Errorf("%s retransmitted twice: different handles", step.proc)
		}
	}
	// Control: the same request as a new one (new xid) is not a duplicate.
	xid := nextXID()
	ctl := rootCredCall(xid, step.num, step.args())
	r, err := rc.roundTrip(ctl)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := step.decode(dec{t, rpcwireDecoder(r.Body)}); st != step.control {
		t.Errorf("control: %s with a new xid: %v, want %v", step.proc, st, step.control)
	}
}

func statOnly(f func(dec) nfsStat) func(dec) (nfsStat, []byte) {
	return func(x dec) (nfsStat, []byte) { return f(x), nil }
}

func createdFH(x dec) (nfsStat, []byte) {
	st, fh, _ := decodeCreated(x)
	return st, fh
}

// countNamed counts the entries called name in a directory listing.
func countNamed(rc *rpcConn, dir []byte, name string) int {
	ents, _ := rc.listDir(dir, false, 8192)
	n := 0
	for _, e := range ents {
		if e.Name == name {
			n++
		}
	}
	return n
}

func TestExactlyOnceAfterCrash(t *testing.T) {
	t.Parallel()
	srv := StartServer(t, newImage(t))
	var root, dir []byte
	var srcID uint64
	setup := func(rc *rpcConn) {
		root = rc.mountRoot()
		dir = rc.mustMkdir(root, "eo")
		rc.mustCreate(dir, "victim")
		src := rc.mustCreate(dir, "src")
		srcID = rc.mustGetattr(src).Fileid
		rc.mustCreate(dir, "bystander")
	}
	steps := []eoStep{{
		proc: "CREATE", num: procCreate,
		args:    func() []byte { return argsCreate(dir, "newfile", createGuarded, sattr{Mode: u32p(0o640)}, 0) },
		decode:  createdFH,
		control: errExist,
		verify: func(t *testing.T, rc *rpcConn, fh []byte) {
			if fh == nil || !bytes.Equal(fh, rc.mustLookup(dir, "newfile")) {
				t.Errorf("CREATE retransmitted: the handle is not the file the first execution created")
			}
			if a := rc.mustGetattr(fh); a.Mode != 0o640 || a.Type != nf3Reg {
				t.Errorf("CREATE retransmitted: attributes %+v", a)
			}
			if n := countNamed(rc, dir, "newfile"); n != 1 {
				t.Errorf("CREATE: %d entries called newfile", n)
			}
		},
	}, {
		proc: "MKDIR", num: procMkdir,
		args:    func() []byte { return argsMkdir(dir, "newdir", sattr{Mode: u32p(0o750)}) },
		decode:  createdFH,
		control: errExist,
		verify: func(t *testing.T, rc *rpcConn, fh []byte) {
			if fh == nil || !bytes.Equal(fh, rc.mustLookup(dir, "newdir")) {
				t.Errorf("MKDIR retransmitted: the handle is not the directory the first execution made")
			}
			if a := rc.mustGetattr(fh); a.Type != nf3Dir || a.Mode != 0o750 {
				t.Errorf("MKDIR retransmitted: attributes %+v", a)
			}
			if n := countNamed(rc, dir, "newdir"); n != 1 {
				t.Errorf("MKDIR: %d entries called newdir", n)
			}
		},
	}, {
		proc: "REMOVE", num: procRemove,
		args:    func() []byte { return argsDirop(dir, "victim") },
		decode:  statOnly(decodeWccOnly),
		control: errNoent,
		verify: func(t *testing.T, rc *rpcConn, _ []byte) {
			if st, _, _ := rc.lookup(dir, "victim"); st != errNoent {
				t.Errorf("REMOVE retransmitted: victim is %v, want NOENT", st)
			}
			if st, _, _ := rc.lookup(dir, "bystander"); st != nfsOK {
				t.Errorf("REMOVE retransmitted: bystander is %v", st)
			}
		},
	}, {
		proc: "RENAME", num: procRename,
		args:    func() []byte { return argsRename(dir, "src", root, "dst") },
		decode:  statOnly(decodeRename),
		control: errNoent,
		verify: func(t *testing.T, rc *rpcConn, _ []byte) {
			if st, _, _ := rc.lookup(dir, "src"); st != errNoent {
				t.Errorf("RENAME retransmitted: src is %v, want NOENT", st)
			}
			if st, _, a := rc.lookup(root, "dst"); st != nfsOK || a.Fileid != srcID {
				t.Errorf("RENAME retransmitted: dst %v %+v, want fileid %d", st, a, srcID)
			}
		},
	}}
	runExactlyOnce(t, srv, setup, steps)
}

// TestExactlyOnceAfterCrashMore covers the other non-idempotent procedures:
// guarded SETATTR, SYMLINK, MKNOD, LINK, RMDIR, and a REMOVE whose name is
// reused before the retransmission.
func TestExactlyOnceAfterCrashMore(t *testing.T) {
	t.Parallel()
	srv := StartServer(t, newImage(t))
	var dir, file []byte
	var guard nfsTime
	setup := func(rc *rpcConn) {
		root := rc.mountRoot()
		dir = rc.mustMkdir(root, "eo")
		file = rc.mustCreate(dir, "file")
		rc.mustMkdir(dir, "emptydir")
		rc.mustCreate(dir, "reused")
		guard = rc.mustGetattr(file).Ctime
	}
	var recreated uint64
	steps := []eoStep{{
		// Guarded by the ctime before the change: a re-execution would get NOT_SYNC.
		proc: "SETATTR", num: procSetattr,
		args:    func() []byte { return argsSetattr(file, sattr{Mode: u32p(0o600)}, &guard) },
		decode:  func(x dec) (nfsStat, []byte) { st, _ := decodeSetattr(x); return st, nil },
		control: errNotSync,
		verify: func(t *testing.T, rc *rpcConn, _ []byte) {
			if a := rc.mustGetattr(file); a.Mode != 0o600 {
				t.Errorf("SETATTR retransmitted: mode %#o", a.Mode)
			}
		},
	}, {
		proc: "SYMLINK", num: procSymlink,
		args:    func() []byte { return argsSymlink(dir, "ln", "file", sattr{}) },
		decode:  createdFH,
		control: errExist,
		verify: func(t *testing.T, rc *rpcConn, fh []byte) {
			if fh == nil || !bytes.Equal(fh, rc.mustLookup(dir, "ln")) {
				t.Errorf("SYMLINK retransmitted: wrong handle")
			}
		},
	}, {
		proc: "MKNOD", num: procMknod,
		args:    func() []byte { return argsMknod(dir, "fifo", nf3Fifo, sattr{}, 0, 0) },
		decode:  createdFH,
		control: errExist,
		verify: func(t *testing.T, rc *rpcConn, fh []byte) {
			if fh == nil || !bytes.Equal(fh, rc.mustLookup(dir, "fifo")) {
				t.Errorf("MKNOD retransmitted: wrong handle")
			}
		},
	}, {
		proc: "LINK", num: procLink,
		args:    func() []byte { return argsLink(file, dir, "file2") },
		decode:  statOnly(decodeLink),
		control: errExist,
		verify: func(t *testing.T, rc *rpcConn, _ []byte) {
			if a := rc.mustGetattr(file); a.Nlink != 2 {
				t.Errorf("LINK retransmitted: nlink %d, want 2 (linked exactly once)", a.Nlink)
			}
		},
	}, {
		// Another client makes a new file under the removed name before the
		// retransmission arrives: the retransmission must not remove it.
		proc: "REMOVE", num: procRemove,
		args:   func() []byte { return argsDirop(dir, "reused") },
		decode: statOnly(decodeWccOnly),
		before: func(t *testing.T, rc *rpcConn) {
			recreated = rc.mustGetattr(rc.mustCreate(dir, "reused")).Fileid
		},
		control: nfsOK, // the new xid removes the new file
		verify: func(t *testing.T, rc *rpcConn, _ []byte) {
			if st, _, a := rc.lookup(dir, "reused"); st != nfsOK || a.Fileid != recreated {
				t.Errorf("REMOVE retransmitted after the name was reused: the new file is %v, want it kept (the REMOVE executed twice)", st)
			}
		},
	}, {
		proc: "RMDIR", num: procRmdir,
		args:    func() []byte { return argsDirop(dir, "emptydir") },
		decode:  statOnly(decodeWccOnly),
		control: errNoent,
		verify: func(t *testing.T, rc *rpcConn, _ []byte) {
			if st, _, _ := rc.lookup(dir, "emptydir"); st != errNoent {
				t.Errorf("RMDIR retransmitted: emptydir is %v", st)
			}
		},
	}}
	runExactlyOnce(t, srv, setup, steps)
}

// TestExactlyOnceSameProcess: the reply is lost (the client closes its
// connection before reading it) and the retransmission on a new connection,
// from another port, reaches the same process.
func TestExactlyOnceSameProcess(t *testing.T) {
	t.Parallel()
	srv := StartServer(t, newImage(t))
	rc := dialRPC(t, srv.Addr)
	root := rc.mountRoot()
	dir := rc.mustMkdir(root, "eo")
	rc.mustCreate(dir, "victim")
	rc.mustCreate(dir, "src")
	cases := []struct {
		name    string
		num     uint32
		args    []byte
		decode  func(dec) (nfsStat, []byte)
		control nfsStat
	}{
		{"CREATE", procCreate, argsCreate(dir, "new", createGuarded, sattr{}, 0), createdFH, errExist},
		{"MKDIR", procMkdir, argsMkdir(dir, "newdir", sattr{}), createdFH, errExist},
		{"REMOVE", procRemove, argsDirop(dir, "victim"), statOnly(decodeWccOnly), errNoent},
		{"RENAME", procRename, argsRename(dir, "src", dir, "dst"), statOnly(decodeRename), errNoent},
	}
	// The duplicate-request cache keys on the client address, the xid and the
	// call: the same xid from another client, or with other arguments, is a
	// new request.
	xid := nextXID()
	rec := rootCredCall(xid, procCreate, argsCreate(dir, "xid-reuse", createGuarded, sattr{}, 0))
	if st, _ := createdFH(dec{t, rpcwireDecoder(replyTo(t, rc, rec).Body)}); st != nfsOK {
		t.Fatalf("CREATE xid-reuse: %v", st)
	}
	other := dialRPCFrom(t, srv.Addr, "127.0.0.2")
	if st, _ := createdFH(dec{t, rpcwireDecoder(replyTo(t, other, rec).Body)}); st != errExist {
		t.Errorf("the same CREATE (same xid and bytes) from another client (127.0.0.2): %v, want EXIST (a new request)", st)
	}
	rec2 := rootCredCall(xid, procCreate, argsCreate(dir, "xid-reuse-2", createGuarded, sattr{}, 0))
	if st, fh := createdFH(dec{t, rpcwireDecoder(replyTo(t, rc, rec2).Body)}); st != nfsOK || !bytes.Equal(fh, rc.mustLookup(dir, "xid-reuse-2")) {
		t.Errorf("a reused xid with other arguments: %v, want a new CREATE of xid-reuse-2", st)
	}

	for _, c := range cases {
		rec := rootCredCall(nextXID(), c.num, c.args)
		lost := dialRPC(t, srv.Addr)
		if err := lost.sendRecord(rec); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		lost.c.Close() // the reply is lost
		again := dialRPC(t, srv.Addr)
		r, err := again.roundTrip(rec)
		if err != nil {
			t.Fatal(err)
		}
		st, fh := c.decode(dec{t, rpcwireDecoder(r.Body)})
		if st != nfsOK {
			t.Errorf("%s retransmitted to the same process: %v, want OK", c.name, st)
		}
		if c.name == "CREATE" && !bytes.Equal(fh, again.mustLookup(dir, "new")) {
			t.Errorf("CREATE retransmitted: wrong handle")
		}
		r, err = again.roundTrip(rootCredCall(nextXID(), c.num, c.args))
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := c.decode(dec{t, rpcwireDecoder(r.Body)}); st != c.control {
			t.Errorf("control: %s with a new xid: %v, want %v", c.name, st, c.control)
		}
	}
}
