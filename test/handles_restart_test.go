package test

// Handles survive a restart (invariant 5): handles collected from one
// process name the same objects in a new process on the same disk after
// kill -9; only objects removed before the kill are STALE, and never become
// another object. The write verifier changes with the new epoch (invariant 6).

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"testing"
)

type knownObj struct {
	path    string
	fh      []byte
	fileid  uint64
	typ     uint32
	content []byte   // regular files
	target  string   // symlinks
	names   []string // directories
}

func TestHandlesSurviveRestart(t *testing.T) {
	t.Parallel()
	srv := StartServer(t, newImage(t))
	rc := dialRPC(t, srv.Addr)
	root := rc.mountRoot()

	objs := map[string]*knownObj{}
	add := func(path string, fh []byte) *knownObj {
		a := rc.mustGetattr(fh)
		o := &knownObj{path: path, fh: fh, fileid: a.Fileid, typ: a.Type}
		objs[path] = o
		return o
	}
	add("/", root)
	for d := 0; d < 8; d++ {
		dn := fmt.Sprintf("d%d", d)
		dfh := rc.mustMkdir(root, dn)
		add("/"+dn, dfh)
		sub := rc.mustMkdir(dfh, "sub")
		add("/"+dn+"/sub", sub)
		for f := 0; f < 12; f++ {
			fn := fmt.Sprintf("f%02d", f)
			ffh := rc.mustCreate(dfh, fn)
			content := bytes.Repeat([]byte(fmt.Sprintf("%s/%s;", dn, fn)), 50*(f+1))
			if w := rc.write(ffh, 0, content, fileSync); w.st != nfsOK {
				t.Fatalf("WRITE %s/%s: %v", dn, fn, w.st)
			}
			add("/"+dn+"/"+fn, ffh).content = content
		}
		for s := 0; s < 3; s++ {
			sn := fmt.Sprintf("s%d", s)
			target := fmt.Sprintf("../d%d/f%02d", (d+1)%8, s)
			st, sfh, _ := rc.symlink(dfh, sn, target)
			if st != nfsOK {
				t.Fatalf("SYMLINK: %v", st)
			}
			add("/"+dn+"/"+sn, sfh).target = target
		}
		st, nfh, _ := rc.mknod(dfh, "fifo", nf3Fifo, sattr{Mode: u32p(0o644)}, 0, 0)
		if st != nfsOK {
			t.Fatalf("MKNOD: %v", st)
		}
		add("/"+dn+"/fifo", nfh)
	}
	// A second name for a file: its handle is the same whichever name found it.
	if st := rc.link(objs["/d1/f00"].fh, objs["/d0"].fh, "hard"); st != nfsOK {
		t.Fatalf("LINK: %v", st)
	}
	if h := rc.mustLookup(objs["/d0"].fh, "hard"); !bytes.Equal(h, objs["/d1/f00"].fh) {
		t.Fatal("the handle found through a hard link differs from the original's")
	}
	// READDIRPLUS hands out the same handles as LOOKUP and CREATE.
	ents, _ := rc.listDir(objs["/d2"].fh, true, 4096)
	for _, e := range ents {
		if o := objs["/d2/"+e.Name]; o != nil && !bytes.Equal(e.FH, o.fh) {
			t.Errorf("READDIRPLUS handle of /d2/%s differs from the one CREATE returned", e.Name)
		}
	}

	// Remove some objects before the kill: files, a symlink, a fifo, a whole
	// directory, and one name of a hard-linked file (whose other name stays).
	removed := map[string]bool{}
	rmFile := func(dir, name string) {
		if st := rc.remove(objs[dir].fh, name); st != nfsOK {
			t.Fatalf("REMOVE %s/%s: %v", dir, name, st)
		}
		removed[dir+"/"+name] = true
	}
	for f := 0; f < 4; f++ {
		rmFile("/d3", fmt.Sprintf("f%02d", f))
	}
	rmFile("/d4", "s0")
	rmFile("/d4", "fifo")
	if st := rc.remove(objs["/d0"].fh, "hard"); st != nfsOK {
		t.Fatal(st)
	}
	for _, n := range []string{"f00", "f01", "f02", "f03", "f04", "f05", "f06", "f07", "f08", "f09", "f10", "f11", "s0", "s1", "s2", "fifo"} {
		rmFile("/d7", n)
	}
	if st := rc.rmdir(objs["/d7"].fh, "sub"); st != nfsOK {
		t.Fatal(st)
	}
	removed["/d7/sub"] = true
	if st := rc.rmdir(root, "d7"); st != nfsOK {
		t.Fatal(st)
	}
	removed["/d7"] = true
	// Changes right before the kill are durable once acknowledged.
	last := rc.mustCreate(objs["/d5"].fh, "last")
	add("/d5/last", last).content = []byte("acknowledged just before the kill")
	if w := rc.write(last, 0, objs["/d5/last"].content, fileSync); w.st != nfsOK {
		t.Fatal(w.st)
	}
	for _, o := range objs {
		if o.typ == nf3Dir && !removed[o.path] {
			ents, _ := rc.listDir(o.fh, false, 8192)
			for _, e := range ents {
				o.names = append(o.names, e.Name)
			}
			sort.Strings(o.names)
		}
	}
	w1 := rc.write(objs["/d0/f00"].fh, 0, objs["/d0/f00"].content, fileSync)
	_, cv1 := rc.commit(objs["/d0/f00"].fh, 0, 0)
	if w1.verf != cv1 {
		t.Errorf("WRITE verifier %x differs from COMMIT verifier %x in one process", w1.verf, cv1)
	}

	srv.Kill()
	srv.Start()
	rc = dialRPC(t, srv.Addr)

	if got := rc.mountRoot(); !bytes.Equal(got, root) {
		t.Errorf("MNT / after the restart: handle %x, before %x", got, root)
	}
	check := func(when string) {
		t.Helper()
		for _, o := range objs {
			st, a := rc.getattr(o.fh)
			if removed[o.path] {
				if st != errStale {
					t.Errorf("%s: GETATTR of removed %s: %v (attr %+v), want STALE", when, o.path, st, a)
				}
				continue
			}
			if st != nfsOK {
				t.Errorf("%s: GETATTR of %s: %v", when, o.path, st)
				continue
			}
			if a.Fileid != o.fileid || a.Type != o.typ {
				t.Errorf("%s: %s is now fileid %d type %d, was %d type %d", when, o.path, a.Fileid, a.Type, o.fileid, o.typ)
				continue
			}
			switch o.typ {
			case nf3Reg:
				if got := rc.readAll(o.fh); !bytes.Equal(got, o.content) {
					t.Errorf("%s: contents of %s differ (%d bytes, want %d)", when, o.path, len(got), len(o.content))
				}
			case nf3Lnk:
				if st, tg := rc.readlink(o.fh); st != nfsOK || tg != o.target {
					t.Errorf("%s: READLINK %s: %v %q, want %q", when, o.path, st, tg, o.target)
				}
			case nf3Dir:
				ents, _ := rc.listDir(o.fh, false, 8192)
				var names []string
				for _, e := range ents {
					names = append(names, e.Name)
				}
				sort.Strings(names)
				if !slices.Equal(names, o.names) {
					t.Errorf("%s: directory %s lists %v, want %v", when, o.path, names, o.names)
				}
			}
		}
	}
	check("after kill -9 and restart")

	// LOOKUP by name gives the same handle bytes as before.
	if h := rc.mustLookup(objs["/d1"].fh, "f05"); !bytes.Equal(h, objs["/d1/f05"].fh) {
		t.Error("LOOKUP after the restart returns another handle for the same file")
	}
	// The write verifier changed with the epoch; it is stable within the new process.
	w2 := rc.write(objs["/d0/f00"].fh, 0, objs["/d0/f00"].content, fileSync)
	_, cv2 := rc.commit(objs["/d0/f00"].fh, 0, 0)
	if w2.verf == w1.verf {
		t.Errorf("write verifier %x unchanged across a restart: clients would not resend unstable data", w2.verf)
	}
	if cv2 != w2.verf {
		t.Errorf("COMMIT verifier %x differs from WRITE verifier %x", cv2, w2.verf)
	}

	// New objects (which may reuse freed inode numbers) never answer to the
	// handles of removed ones.
	newDir := rc.mustMkdir(root, "new")
	for i := 0; i < 40; i++ {
		fh := rc.mustCreate(newDir, fmt.Sprintf("n%02d", i))
		for p := range removed {
			if bytes.Equal(fh, objs[p].fh) {
				t.Fatalf("a new file got the handle of removed %s", p)
			}
		}
	}
	rc.mustMkdir(root, "d7") // the same name as a removed directory
	objs["/"].names = append(objs["/"].names, "d7", "new")
	sort.Strings(objs["/"].names)
	check("after creating new objects")

	// And once more, after a clean stop.
	srv.Stop()
	srv.Start()
	rc = dialRPC(t, srv.Addr)
	check("after a clean restart")
}
