package fsstore

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/hanfs/hanfs/shareddisk"
)

func newTestStore(t *testing.T, size int64) (*Store, shareddisk.Disk) {
	t.Helper()
	d := shareddisk.NewMem(size)
	if _, err := Format(d, FormatOptions{}); err != nil {
		t.Fatalf("format: %v", err)
	}
	s, err := Open(d, Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s, d
}

func TestBasicFileOps(t *testing.T) {
	s, d := newTestStore(t, 128<<20)
	dir, err := s.Mkdir(nil, RootIno, "dir", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.Create(nil, dir.Ino, "f", 0o644, CreateGuarded, 0)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 100000)
	rand.New(rand.NewSource(1)).Read(data)
	if _, err := s.Write(nil, f.Ino, data, 12345); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(nil, dir.Ino, "f", 0o644, CreateGuarded, 0); !errors.Is(err, ErrExist) {
		t.Fatalf("guarded create of existing: %v", err)
	}
	check := func(s *Store) {
		t.Helper()
		a, err := s.Lookup(nil, dir.Ino, "f")
		if err != nil {
			t.Fatal(err)
		}
		if a.Size != 12345+100000 {
			t.Fatalf("size %d", a.Size)
		}
		got := make([]byte, a.Size+10)
		n, eof, err := s.Read(nil, f.Ino, got, 0)
		if err != nil || n != int(a.Size) || !eof {
			t.Fatalf("read n=%d eof=%v err=%v", n, eof, err)
		}
		if !bytes.Equal(got[12345:n], data) || !bytes.Equal(got[:12345], make([]byte, 12345)) {
			t.Fatal("data mismatch")
		}
		p, err := s.Path(f.Ino)
		if err != nil || len(p) != 2 || p[0] != "dir" || p[1] != "f" {
			t.Fatalf("path %v %v", p, err)
		}
	}
	check(s)
	if err := s.Rename(nil, dir.Ino, "f", RootIno, "g"); err != nil {
		t.Fatal(err)
	}
	if err := s.Rename(nil, RootIno, "g", dir.Ino, "f"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	check(s2)
	if err := s2.Rmdir(nil, RootIno, "dir"); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("rmdir non-empty: %v", err)
	}
	if err := s2.Unlink(nil, dir.Ino, "f"); err != nil {
		t.Fatal(err)
	}
	if err := s2.Rmdir(nil, RootIno, "dir"); err != nil {
		t.Fatal(err)
	}
	st := s2.StatFS()
	if st.Files != 1 {
		t.Fatalf("files %d", st.Files)
	}
	s2.Close()
}

func fsckOK(t *testing.T, d shareddisk.Disk) {
	t.Helper()
	r, err := Fsck(d)
	if err != nil {
		t.Fatalf("fsck: %v", err)
	}
	if !r.OK() {
		t.Fatalf("fsck: %s", r)
	}
}

func TestFsckClean(t *testing.T) {
	s, d := newTestStore(t, 128<<20)
	fsckOK(t, d)
	dir, _ := s.Mkdir(nil, RootIno, "a", 0o755)
	f, _ := s.Create(nil, dir.Ino, "f", 0o644, CreateGuarded, 0)
	s.Write(nil, f.Ino, make([]byte, 1<<20), 0)
	s.Link(nil, f.Ino, RootIno, "hard")
	s.Symlink(nil, RootIno, "sym", "a/f")
	fsckOK(t, d) // with journal pending
	s.Close()
	fsckOK(t, d)
}

// TestConcurrentGroupCommit runs creators and writers in parallel and checks
// that they share flushes (group commit) and that fsck is clean after.
func TestConcurrentGroupCommit(t *testing.T) {
	s, d := newTestStore(t, 256<<20)
	const workers, files = 8, 40
	errs := make(chan error, workers)
	before := s.Stats().Commits
	for w := 0; w < workers; w++ {
		go func(w int) {
			dir, err := s.Mkdir(nil, RootIno, fmt.Sprintf("w%d", w), 0o755)
			if err != nil {
				errs <- err
				return
			}
			for i := 0; i < files; i++ {
				f, err := s.Create(nil, dir.Ino, fmt.Sprintf("f%d", i), 0o644, CreateGuarded, 0)
				if err != nil {
					errs <- err
					return
				}
				if _, err := s.Write(nil, f.Ino, bytes.Repeat([]byte{byte(i)}, 5000+i), int64(i)); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}(w)
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	commits := s.Stats().Commits - before
	ops := uint64(workers * (1 + 2*files))
	t.Logf("%d durable operations in %d commits", ops, commits)
	if commits >= ops {
		t.Errorf("no group commit: %d commits for %d operations", commits, ops)
	}
	fsckOK(t, d)
	s.Close()
	fsckOK(t, d)
}

func TestSyncIdle(t *testing.T) {
	s, _ := newTestStore(t, 64<<20)
	done := make(chan error, 1)
	go func() { done <- s.Sync() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Sync on an idle store hangs")
	}
	s.Close()
}

// TestReformatIgnoresOldJournal formats a disk again over a file system whose
// journal still holds transactions: none of them may be replayed into the
// new one.
func TestReformatIgnoresOldJournal(t *testing.T) {
	d := shareddisk.NewMem(128 << 20)
	var free []uint64
	for i := 0; i < 3; i++ {
		if _, err := Format(d, FormatOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		s, err := Open(d, Options{})
		if err != nil {
			t.Fatal(err)
		}
		free = append(free, s.StatFS().FreeBlocks)
		f, err := s.Create(nil, RootIno, "big", 0o644, CreateGuarded, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(nil, f.Ino, make([]byte, 8<<20), 0); err != nil {
			t.Fatal(err)
		}
		s.Kill(errors.New("crash with the journal full of transactions"))
	}
	if free[0] != free[1] || free[1] != free[2] {
		t.Fatalf("free blocks after each format: %v (an old journal was replayed)", free)
	}
	fsckOK(t, d)
}
