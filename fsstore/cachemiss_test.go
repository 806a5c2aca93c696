package fsstore

import (
	"bytes"
	"fmt"
	"math/rand"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hanfs/hanfs/shareddisk"
)

// slowDisk adds a fixed latency to every read, as a real disk would on a
// metadata cache miss.
type slowDisk struct {
	shareddisk.Disk
	delay time.Duration
	reads atomic.Int64
}

func (d *slowDisk) ReadAt(p []byte, off int64) (int, error) {
	d.reads.Add(1)
	if d.delay > 0 {
		time.Sleep(d.delay)
	}
	return d.Disk.ReadAt(p, off)
}

// populatedDisk formats a 256 MiB in-memory disk and populates it (closed
// again, so a store opened on it starts with nothing cached).
func populatedDisk(tb testing.TB, dirs, files int) (*shareddisk.Mem, []Ino) {
	tb.Helper()
	mem := shareddisk.NewMem(256 << 20)
	if _, err := Format(mem, FormatOptions{}); err != nil {
		tb.Fatal(err)
	}
	s, err := Open(mem, Options{Logger: quietLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	inos := populate(tb, s, dirs, files)
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	return mem, inos
}

// populate makes dirs directories of files files each and returns the files.
func populate(tb testing.TB, s *Store, dirs, files int) []Ino {
	tb.Helper()
	var inos []Ino
	for i := 0; i < dirs; i++ {
		d, err := s.Mkdir(nil, RootIno, fmt.Sprintf("d%d", i), 0o755)
		if err != nil {
			tb.Fatal(err)
		}
		for j := 0; j < files; j++ {
			a, err := s.Create(nil, d.Ino, fmt.Sprintf("f%d", j), 0o644, CreateGuarded, 0)
			if err != nil {
				tb.Fatal(err)
			}
			inos = append(inos, a.Ino)
		}
	}
	return inos
}

// BenchmarkMetadataSmallCache runs metadata updates and lookups from 16
// goroutines on a tree much larger than a 64-block cache, with 100µs per
// read from the disk (the sleep's own granularity adds to it) and without
// delay; and with the default cache, where every block stays cached.
func BenchmarkMetadataSmallCache(b *testing.B) {
	for _, c := range []struct {
		cache int
		delay time.Duration
	}{{64, 100 * time.Microsecond}, {64, 0}, {0, 0}} {
		b.Run(fmt.Sprintf("cache=%d/delay=%v", c.cache, c.delay), func(b *testing.B) {
			benchMetadata(b, c.cache, c.delay)
		})
	}
}

func benchMetadata(b *testing.B, cache int, delay time.Duration) {
	mem, inos := populatedDisk(b, 20, 200)
	sd := &slowDisk{Disk: mem, delay: delay}
	s, err := Open(sd, Options{Logger: quietLogger(), CacheBlocks: cache})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const workers = 16
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			r := rand.New(rand.NewSource(seed))
			for next.Add(1) <= int64(b.N) {
				ino := inos[r.Intn(len(inos))]
				if r.Intn(2) == 0 {
					mode := uint32(0o600 + r.Intn(0o77))
					if _, err := s.Setattr(nil, ino, SetAttr{Mode: &mode}); err != nil {
						b.Error(err)
						return
					}
				} else if _, err := s.Getattr(ino); err != nil {
					b.Error(err)
					return
				}
			}
		}(int64(w))
	}
	wg.Wait()
	el := time.Since(start)
	b.ReportMetric(float64(b.N)/el.Seconds(), "ops/s")
	b.ReportMetric(float64(sd.reads.Load())/float64(b.N), "mdreads/op")
}

// TestTinyCacheConcurrent runs a long concurrent workload (creates, writes,
// renames, removes, truncates, directory listings) on a 64-block metadata
// cache, where most calls miss and run again, and checks every worker's
// files and directory listings, then fsck and the files after reopening.
func TestTinyCacheConcurrent(t *testing.T) {
	const workers = 8
	ops := 250
	if testing.Short() {
		ops = 60
	}
	// A tree of some hundred blocks, and no cached block at the start.
	mem, old := populatedDisk(t, 8, 250)
	s, err := Open(mem, Options{Logger: quietLogger(), CacheBlocks: 64})
	if err != nil {
		t.Fatal(err)
	}
	shared, err := s.Mkdir(nil, RootIno, "shared", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	type file struct {
		ino  Ino
		data []byte
	}
	models := make([]map[string]*file, workers)
	dirs := make([]Ino, workers)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		d, err := s.Mkdir(nil, RootIno, fmt.Sprintf("w%d", w), 0o755)
		if err != nil {
			t.Fatal(err)
		}
		dirs[w] = d.Ino
		models[w] = make(map[string]*file)
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			errs <- func() error {
				r := rand.New(rand.NewSource(int64(w) + 1))
				dir, model := dirs[w], models[w]
				names := func() []string {
					var ns []string
					for n := range model {
						ns = append(ns, n)
					}
					sort.Strings(ns)
					return ns
				}
				for i := 0; i < ops; i++ {
					if _, err := s.Getattr(old[r.Intn(len(old))]); err != nil {
						return fmt.Errorf("getattr: %w", err)
					}
					ns := names()
					switch op := r.Intn(10); {
					case op < 3 || len(ns) == 0:
						name := fmt.Sprintf("f%d-%d", i, r.Intn(1000))
						a, err := s.Create(nil, dir, name, 0o644, CreateGuarded, 0)
						if err != nil {
							return fmt.Errorf("create %s: %w", name, err)
						}
						model[name] = &file{ino: a.Ino}
						// A name in the shared directory too: a hard link.
						if _, err := s.Link(nil, a.Ino, shared.Ino, fmt.Sprintf("w%d-%s", w, name)); err != nil {
							return fmt.Errorf("link %s: %w", name, err)
						}
					case op < 6:
						f := model[ns[r.Intn(len(ns))]]
						off := r.Intn(3 * bs)
						p := make([]byte, 1+r.Intn(2*bs))
						r.Read(p)
						if _, err := s.Write(nil, f.ino, p, int64(off)); err != nil {
							return fmt.Errorf("write: %w", err)
						}
						if end := off + len(p); end > len(f.data) {
							f.data = append(f.data, make([]byte, end-len(f.data))...)
						}
						copy(f.data[off:], p)
					case op < 7:
						f := model[ns[r.Intn(len(ns))]]
						size := uint64(r.Intn(len(f.data) + 1))
						if _, err := s.Setattr(nil, f.ino, SetAttr{Size: &size}); err != nil {
							return fmt.Errorf("truncate: %w", err)
						}
						f.data = f.data[:size]
					case op < 8:
						old := ns[r.Intn(len(ns))]
						nn := fmt.Sprintf("r%d-%s", i, old)
						if err := s.Rename(nil, dir, old, dir, nn); err != nil {
							return fmt.Errorf("rename %s: %w", old, err)
						}
						model[nn] = model[old]
						delete(model, old)
					case op < 9:
						name := ns[r.Intn(len(ns))]
						if err := s.Unlink(nil, dir, name); err != nil {
							return fmt.Errorf("unlink %s: %w", name, err)
						}
						delete(model, name)
					default:
						if err := checkDir(s, dir, ns); err != nil {
							return err
						}
					}
				}
				return nil
			}()
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	t.Logf("stats: %d metadata reads, %d retries, %d cache hits, %d misses", st.MetaReads, st.Retries, st.CacheHits, st.CacheMisses)
	if st.Retries == 0 {
		t.Error("no call missed the cache: the test does not exercise retries")
	}
	check := func(s *Store) {
		t.Helper()
		for w := 0; w < workers; w++ {
			var ns []string
			for n, f := range models[w] {
				ns = append(ns, n)
				got := make([]byte, len(f.data)+1)
				n, _, err := s.Read(nil, f.ino, got, 0)
				if err != nil || !bytes.Equal(got[:n], f.data) {
					t.Fatalf("worker %d file %d: %d bytes read (err %v), want %d bytes, equal %v", w, f.ino, n, err, len(f.data), bytes.Equal(got[:n], f.data))
				}
			}
			sort.Strings(ns)
			if err := checkDir(s, dirs[w], ns); err != nil {
				t.Fatal(err)
			}
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fsckOK(t, mem)
	s, err = Open(mem, Options{Logger: quietLogger(), CacheBlocks: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check(s)
}

// checkDir lists dir in small pages and compares the names with want (sorted).
func checkDir(s *Store, dir Ino, want []string) error {
	var got []string
	cookie := uint64(0)
	for {
		n := 0
		err := s.ReadDir(nil, dir, cookie, func(e DirEntry) bool {
			got = append(got, e.Name)
			cookie = e.Cookie
			n++
			return n < 7
		})
		if err != nil {
			return fmt.Errorf("readdir %d: %w", dir, err)
		}
		if n < 7 {
			break
		}
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		return fmt.Errorf("readdir %d: %d names %v, want %d %v", dir, len(got), got, len(want), want)
	}
	return nil
}

// TestColdScanReadsAhead lists a large directory in one call on a cold
// 64-block cache: the scan's read-ahead hints let each retry read the next
// leaves together, instead of one retry per leaf.
func TestColdScanReadsAhead(t *testing.T) {
	mem, _ := populatedDisk(t, 1, 3000)
	s, err := Open(mem, Options{Logger: quietLogger(), CacheBlocks: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d, err := s.Lookup(nil, RootIno, "d0")
	if err != nil {
		t.Fatal(err)
	}
	st0 := s.Stats()
	seen := make(map[string]bool)
	if err := s.ReadDir(nil, d.Ino, 0, func(e DirEntry) bool {
		if seen[e.Name] {
			t.Errorf("%q listed twice", e.Name)
		}
		seen[e.Name] = true
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 3000 {
		t.Fatalf("%d names listed, want 3000", len(seen))
	}
	st := s.Stats()
	reads, retries := st.MetaReads-st0.MetaReads, st.Retries-st0.Retries
	t.Logf("cold listing: %d metadata reads, %d retries", reads, retries)
	if reads < 20 || retries > reads/4 {
		t.Errorf("cold listing: %d metadata reads in %d retries: no read-ahead", reads, retries)
	}
}
