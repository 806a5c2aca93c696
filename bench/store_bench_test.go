// Package bench compares the hanfs store (fsstore) with the raw disk it sits
// on: the same image file written and read directly with O_DIRECT, which is
// the physical limit the store can reach. Pairs of benchmarks line up by name
// (BenchmarkSeqWrite/raw beside BenchmarkSeqWrite/store, ...); bench/run.sh
// runs them all once and prints the store/raw ratios.
//
// All benchmarks share one 4 GiB image file, created sparse under
// $HANFS_BENCH_DIR (default /var/tmp, which must be on a file system that
// supports O_DIRECT) and unlinked as soon as it is open, so it disappears
// however the run ends. Before the first benchmark the whole image is written
// once, so that neither the raw baseline nor the store pays for the host file
// system allocating blocks of a sparse file (a real shared disk is a block
// device, which has no such cost). Every store benchmark formats the
// image afresh; the raw benchmarks write to a region the store benchmarks
// format over.
package bench

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/shareddisk"
)

const (
	imageSize = 4 << 30
	fileSize  = 1 << 30 // the large file of the sequential benchmarks
	chunk     = 1 << 20 // its write and read unit
	chunks    = fileSize / chunk
	smallSize = 4 << 10 // a small file
	// smallFiles is how many small files one iteration creates, so that
	// -benchtime 2x still measures thousands of durable operations.
	smallFiles = 1024
	// rawBase is where the raw benchmarks write, inside the image.
	rawBase = 2 << 30
	// streamWriters is the number of concurrent writers of the streaming
	// store benchmark.
	streamWriters = 4
)

// disk is the image, opened with O_DIRECT; the raw benchmarks use it
// directly and the store benchmarks format it.
var disk *shareddisk.File

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	parent := os.Getenv("HANFS_BENCH_DIR")
	if parent == "" {
		parent = "/var/tmp"
	}
	dir, err := os.MkdirTemp(parent, "hanfs-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	imagePath := filepath.Join(dir, "disk.img")
	if err := shareddisk.CreateImage(imagePath, imageSize); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	disk, err = shareddisk.OpenFile(imagePath, shareddisk.OpenOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer disk.Close()
	// Unlink the image now: the open descriptor keeps it usable, and its
	// 4 GiB go back to the file system however the process ends.
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if isBenchRun() || diagEnabled() {
		if err := prefill(disk); err != nil {
			fmt.Fprintln(os.Stderr, "bench: prefill:", err)
			return 1
		}
	}
	return m.Run()
}

// isBenchRun reports whether -test.bench was given (prefilling 4 GiB is
// pointless for a plain `go test`, which runs no benchmark).
func isBenchRun() bool {
	flag.Parse()
	f := flag.Lookup("test.bench")
	return f != nil && f.Value.String() != ""
}

// prefill writes every block of the image once, so later writes overwrite
// allocated blocks of the host file system.
func prefill(d *shareddisk.File) error {
	buf := shareddisk.AlignedBuf(16 << 20)
	for off := int64(0); off < d.Size(); off += int64(len(buf)) {
		if _, err := d.WriteAt(buf[:min(int64(len(buf)), d.Size()-off)], off); err != nil {
			return err
		}
	}
	return d.Flush()
}

// newStore formats the image and opens the store on it.
func newStore(b *testing.B) *fsstore.Store { return newStoreWith(b, fsstore.Options{}) }

// newStoreWith is newStore with the store options opt.
func newStoreWith(b *testing.B, opt fsstore.Options) *fsstore.Store {
	b.Helper()
	// Zero the journal region first: fsstore.Format only rewrites the journal
	// header, and txids restart at 1, so the journal of the store formatted
	// over would be replayed into the new one (leaking its blocks).
	lay, err := shareddisk.ComputeLayout(disk.Size(), 0)
	if err != nil {
		b.Fatal(err)
	}
	zero := shareddisk.AlignedBuf(16 << 20)
	end := int64(lay.JournalStart+lay.JournalBlocks) * shareddisk.BlockSize
	for off := int64(lay.JournalStart) * shareddisk.BlockSize; off < end; off += int64(len(zero)) {
		if _, err := disk.WriteAt(zero[:min(int64(len(zero)), end-off)], off); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := fsstore.Format(disk, fsstore.FormatOptions{Force: true}); err != nil {
		b.Fatalf("format: %v", err)
	}
	s, err := fsstore.Open(disk, opt)
	if err != nil {
		b.Fatalf("open: %v", err)
	}
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Errorf("close: %v", err)
		}
	})
	return s
}

// storeCounters reports the store's journal commits and disk flushes per
// unit of work (a file or a chunk), measured over the timed loop.
type storeCounters struct {
	s      *fsstore.Store
	c0, f0 uint64
}

func startCounters(s *fsstore.Store) *storeCounters {
	st := s.Stats()
	return &storeCounters{s: s, c0: st.Commits, f0: st.Flushes}
}

func (sc *storeCounters) report(b *testing.B, units int, unit string) {
	st := sc.s.Stats()
	b.ReportMetric(float64(st.Commits-sc.c0)/float64(units), "commits/"+unit)
	b.ReportMetric(float64(st.Flushes-sc.f0)/float64(units), "flushes/"+unit)
}

// parallel runs fn(g) for g in [0, n) and returns the first error.
func parallel(n int, fn func(g int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for g := range n {
		wg.Go(func() { errs[g] = fn(g) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkSmallFiles: small files made durable per second. For the store a
// file is Create + Write of 4 KiB (each durable when it returns); for the raw
// disk it is one 4 KiB O_DIRECT write followed by fdatasync.
func BenchmarkSmallFiles(b *testing.B) {
	for _, g := range []int{1, 8} {
		b.Run(fmt.Sprintf("g%d/raw", g), func(b *testing.B) { smallRaw(b, g) })
		b.Run(fmt.Sprintf("g%d/store", g), func(b *testing.B) { smallStore(b, g) })
	}
}

func smallRaw(b *testing.B, goroutines int) {
	files := 0
	for b.Loop() {
		base := files
		rawWriteSync(b, goroutines, func(g int) []int64 {
			var offs []int64
			for i := g; i < smallFiles; i += goroutines {
				offs = append(offs, int64(base+i)*smallSize)
			}
			return offs
		})
		files += smallFiles
	}
	b.ReportMetric(float64(files)/b.Elapsed().Seconds(), "files/s")
	b.ReportMetric(1, "flushes/file")
}

// rawWriteSync writes 4 KiB with O_DIRECT at rawBase plus each offset that
// offsets(g) returns, from goroutine g, with an fdatasync after every write.
func rawWriteSync(b *testing.B, goroutines int, offsets func(g int) []int64) {
	err := parallel(goroutines, func(g int) error {
		buf := shareddisk.AlignedBuf(smallSize)
		buf[0] = byte(g + 1)
		for _, off := range offsets(g) {
			if _, err := disk.WriteAt(buf, rawBase+off); err != nil {
				return err
			}
			if err := disk.Flush(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

func smallStore(b *testing.B, goroutines int) {
	s := newStore(b)
	data := make([]byte, smallSize)
	for i := range data {
		data[i] = byte(i)
	}
	iter := 0
	files := 0
	var sc *storeCounters
	for b.Loop() {
		b.StopTimer()
		dir, err := s.Mkdir(nil, fsstore.RootIno, fmt.Sprintf("d%d", iter), 0o755)
		if err != nil {
			b.Fatal(err)
		}
		if sc == nil {
			sc = startCounters(s)
		}
		b.StartTimer()
		err = parallel(goroutines, func(g int) error {
			for i := g; i < smallFiles; i += goroutines {
				a, err := s.Create(nil, dir.Ino, fmt.Sprintf("f%d", i), 0o644, fsstore.CreateGuarded, 0)
				if err != nil {
					return err
				}
				if _, err := s.Write(nil, a.Ino, data, 0); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		iter++
		files += smallFiles
	}
	b.ReportMetric(float64(files)/b.Elapsed().Seconds(), "files/s")
	sc.report(b, files, "file") // includes the untimed Mkdir of later iterations
}

// BenchmarkSeqWrite: a 1 GiB file written in 1 MiB chunks, each durable
// before the next one starts. Raw: O_DIRECT write + fdatasync per chunk.
func BenchmarkSeqWrite(b *testing.B) {
	b.Run("raw", func(b *testing.B) { seqWriteRaw(b, true) })
	b.Run("store", func(b *testing.B) {
		s := newStore(b)
		buf := shareddisk.AlignedBuf(chunk)
		buf[0] = 1
		b.SetBytes(fileSize)
		iter := 0
		var sc *storeCounters
		for b.Loop() {
			ino := newFileUntimed(b, s, iter)
			if sc == nil {
				sc = startCounters(s)
			}
			for i := range chunks {
				if _, err := s.Write(nil, ino, buf, int64(i)*chunk); err != nil {
					b.Fatal(err)
				}
			}
			iter++
		}
		sc.report(b, iter*chunks, "chunk")
	})
}

// BenchmarkSeqWriteStream: the same 1 GiB, streamed. Raw: 1 MiB O_DIRECT
// writes and one fdatasync at the end. Store: 4 goroutines write interleaved
// 1 MiB chunks of one file (chunk i by writer i%4), each Write durable when it
// returns, so concurrent writes can share a journal flush (group commit).
func BenchmarkSeqWriteStream(b *testing.B) {
	b.Run("raw", func(b *testing.B) { seqWriteRaw(b, false) })
	b.Run("store", func(b *testing.B) {
		s := newStore(b)
		bufs := make([][]byte, streamWriters)
		for g := range bufs {
			bufs[g] = shareddisk.AlignedBuf(chunk)
			bufs[g][0] = byte(g + 1)
		}
		b.SetBytes(fileSize)
		iter := 0
		var sc *storeCounters
		for b.Loop() {
			ino := newFileUntimed(b, s, iter)
			if sc == nil {
				sc = startCounters(s)
			}
			err := parallel(streamWriters, func(g int) error {
				for i := g; i < chunks; i += streamWriters {
					if _, err := s.Write(nil, ino, bufs[g], int64(i)*chunk); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			iter++
		}
		sc.report(b, iter*chunks, "chunk")
	})
}

// newFileUntimed removes the previous iteration's file (so the disk does not
// fill up) and creates an empty one, outside the timer.
func newFileUntimed(b *testing.B, s *fsstore.Store, iter int) fsstore.Ino {
	b.StopTimer()
	defer b.StartTimer()
	if iter > 0 {
		if err := s.Unlink(nil, fsstore.RootIno, fmt.Sprintf("big%d", iter-1)); err != nil {
			b.Fatal(err)
		}
	}
	a, err := s.Create(nil, fsstore.RootIno, fmt.Sprintf("big%d", iter), 0o644, fsstore.CreateGuarded, 0)
	if err != nil {
		b.Fatal(err)
	}
	return a.Ino
}

func seqWriteRaw(b *testing.B, syncEach bool) {
	buf := shareddisk.AlignedBuf(chunk)
	buf[0] = 1
	b.SetBytes(fileSize)
	for b.Loop() {
		for i := range chunks {
			if _, err := disk.WriteAt(buf, rawBase+int64(i)*chunk); err != nil {
				b.Fatal(err)
			}
			if syncEach {
				if err := disk.Flush(); err != nil {
					b.Fatal(err)
				}
			}
		}
		if !syncEach {
			if err := disk.Flush(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if syncEach {
		b.ReportMetric(1, "flushes/chunk")
	} else {
		b.ReportMetric(1.0/chunks, "flushes/chunk")
	}
}

// BenchmarkSeqRead: the 1 GiB file read in 1 MiB chunks. Raw: O_DIRECT
// reads of the region the raw write benchmarks wrote.
func BenchmarkSeqRead(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		buf := shareddisk.AlignedBuf(chunk)
		b.SetBytes(fileSize)
		for b.Loop() {
			for i := range chunks {
				if _, err := disk.ReadAt(buf, rawBase+int64(i)*chunk); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("store", func(b *testing.B) {
		s := newStore(b)
		a, err := s.Create(nil, fsstore.RootIno, "big", 0o644, fsstore.CreateGuarded, 0)
		if err != nil {
			b.Fatal(err)
		}
		const setupChunk = 32 << 20
		wbuf := shareddisk.AlignedBuf(setupChunk)
		for off := int64(0); off < fileSize; off += setupChunk {
			wbuf[0] = byte(off / setupChunk)
			if _, err := s.Write(nil, a.Ino, wbuf, off); err != nil {
				b.Fatal(err)
			}
		}
		buf := shareddisk.AlignedBuf(chunk)
		b.SetBytes(fileSize)
		for b.Loop() {
			for i := range chunks {
				n, _, err := s.Read(nil, a.Ino, buf, int64(i)*chunk)
				if err != nil {
					b.Fatal(err)
				}
				if n != chunk {
					b.Fatalf("read of chunk %d: %d bytes", i, n)
				}
			}
		}
	})
}

// randFileBlocks is the size, in 4 KiB blocks, of the file the random write
// benchmarks overwrite (64 MiB).
const randFileBlocks = 16384

// randWrites is the number of 4 KiB writes per iteration.
const randWrites = 4000

// BenchmarkRandWrite: 4 KiB writes at random aligned offsets of a 64 MiB file
// written beforehand, each durable when it returns, from 1 or 8 goroutines.
// Raw: O_DIRECT write + fdatasync per write. store-inplace: the store with
// journaled writes off (each write's data goes to its home, beside the
// journal write), for comparison with the default.
func BenchmarkRandWrite(b *testing.B) {
	for _, g := range []int{1, 8} {
		b.Run(fmt.Sprintf("g%d/raw", g), func(b *testing.B) { randRaw(b, g) })
		b.Run(fmt.Sprintf("g%d/store", g), func(b *testing.B) { randStore(b, g, fsstore.Options{}) })
		b.Run(fmt.Sprintf("g%d/store-inplace", g), func(b *testing.B) {
			randStore(b, g, fsstore.Options{JournaledWriteBlocks: -1})
		})
	}
}

func randOffsets(g, goroutines int) []int64 {
	r := rand.New(rand.NewPCG(uint64(g), 7))
	offs := make([]int64, 0, randWrites/goroutines+1)
	for i := g; i < randWrites; i += goroutines {
		offs = append(offs, int64(r.IntN(randFileBlocks))*smallSize)
	}
	return offs
}

func randRaw(b *testing.B, goroutines int) {
	writes := 0
	for b.Loop() {
		rawWriteSync(b, goroutines, func(g int) []int64 { return randOffsets(g, goroutines) })
		writes += randWrites
	}
	b.ReportMetric(float64(writes)/b.Elapsed().Seconds(), "IOPS")
	b.ReportMetric(1, "flushes/write")
}

func randStore(b *testing.B, goroutines int, opt fsstore.Options) {
	s := newStoreWith(b, opt)
	b.StopTimer()
	a, err := s.Create(nil, fsstore.RootIno, "rand", 0o644, fsstore.CreateGuarded, 0)
	if err != nil {
		b.Fatal(err)
	}
	chunk := shareddisk.AlignedBuf(1 << 20)
	for off := int64(0); off < randFileBlocks*smallSize; off += int64(len(chunk)) {
		if _, err := s.Write(nil, a.Ino, chunk, off); err != nil {
			b.Fatal(err)
		}
	}
	sc := startCounters(s)
	b.StartTimer()
	writes := 0
	for b.Loop() {
		err := parallel(goroutines, func(g int) error {
			buf := shareddisk.AlignedBuf(smallSize)
			buf[0] = byte(g + 1)
			for _, off := range randOffsets(g, goroutines) {
				if _, err := s.Write(nil, a.Ino, buf, off); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		writes += randWrites
	}
	b.ReportMetric(float64(writes)/b.Elapsed().Seconds(), "IOPS")
	sc.report(b, writes, "write")
}
