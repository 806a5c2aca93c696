package faultdisk

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hanfs/hanfs/shareddisk"
)

const bs = shareddisk.BlockSize

// block returns a block-sized buffer filled with v.
func block(v byte) []byte { return bytes.Repeat([]byte{v}, bs) }

// readInner returns block b of the wrapped disk.
func readInner(t *testing.T, m *shareddisk.Mem, b int64) []byte {
	t.Helper()
	buf := make([]byte, bs)
	if _, err := m.ReadAt(buf, b*bs); err != nil {
		t.Fatal(err)
	}
	return buf
}

// mustWrite writes v over block b.
func mustWrite(t *testing.T, d *Disk, b int64, v byte) {
	t.Helper()
	if _, err := d.WriteAt(block(v), b*bs); err != nil {
		t.Fatal(err)
	}
}

func TestCacheAndFlush(t *testing.T) {
	m := shareddisk.NewMem(64 * bs)
	d := New(m)
	mustWrite(t, d, 1, 1)
	mustWrite(t, d, 1, 2) // later write wins
	mustWrite(t, d, 2, 3)
	if d.Pending() != 3 || d.Writes() != 3 {
		t.Fatalf("pending %d writes %d", d.Pending(), d.Writes())
	}
	if readInner(t, m, 1)[0] != 0 {
		t.Fatal("write reached the inner disk before Flush")
	}
	got := make([]byte, 3*bs)
	if _, err := d.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if got[0] != 0 || got[bs] != 2 || got[2*bs] != 3 {
		t.Fatalf("read sees %d %d %d", got[0], got[bs], got[2*bs])
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	if d.Pending() != 0 || d.Flushes() != 1 || readInner(t, m, 1)[0] != 2 || readInner(t, m, 2)[0] != 3 {
		t.Fatal("flush did not apply the writes in order")
	}
	if _, err := d.WriteAt(block(1)[:100], 0); !errors.Is(err, shareddisk.ErrUnaligned) {
		t.Fatalf("unaligned: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadAt(got, 0); !errors.Is(err, shareddisk.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
}

func TestPowerCutKeepsChosenWrites(t *testing.T) {
	m := shareddisk.NewMem(64 * bs)
	d := New(m)
	mustWrite(t, d, 0, 9)
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		mustWrite(t, d, int64(i+1), byte(i+1))
	}
	err := d.PowerCut(func(i int, off int64, n int) Keep {
		if off != int64(i+1)*bs || n != bs {
			t.Errorf("write %d at %d len %d", i, off, n)
		}
		return [...]Keep{KeepAll, Drop, KeepAll, Drop}[i]
	})
	if err != nil {
		t.Fatal(err)
	}
	for b, want := range []byte{9, 1, 0, 3, 0} {
		if got := readInner(t, m, int64(b))[0]; got != want {
			t.Errorf("block %d = %d, want %d", b, got, want)
		}
	}
	buf := make([]byte, bs)
	if _, err := d.ReadAt(buf, 0); !errors.Is(err, ErrPowerCut) {
		t.Fatalf("read after cut: %v", err)
	}
	if _, err := d.WriteAt(buf, 0); !errors.Is(err, ErrPowerCut) {
		t.Fatalf("write after cut: %v", err)
	}
	if err := d.Flush(); !errors.Is(err, ErrPowerCut) {
		t.Fatalf("flush after cut: %v", err)
	}
	if err := d.Close(); !errors.Is(err, ErrPowerCut) {
		t.Fatalf("close after cut: %v", err)
	}
	if !d.Dead() {
		t.Fatal("not dead")
	}
	// After "reboot" a new wrapper sees what survived.
	d2 := New(d.Inner())
	if _, err := d2.ReadAt(buf, bs); err != nil || buf[0] != 1 {
		t.Fatalf("after reboot: %v %d", err, buf[0])
	}
}

func TestTornWrite(t *testing.T) {
	m := shareddisk.NewMem(64 * bs)
	d := New(m)
	mustWrite(t, d, 4, 0xaa)
	d.Flush()
	if _, err := d.WriteAt(bytes.Repeat([]byte{0xbb}, 2*bs), 4*bs); err != nil {
		t.Fatal(err)
	}
	if err := d.PowerCut(func(int, int64, int) Keep { return TornSectors(3) }); err != nil {
		t.Fatal(err)
	}
	img := m.Bytes()
	for i := 4 * bs; i < 6*bs; i++ {
		want := byte(0)
		switch {
		case i < 4*bs+3*SectorSize:
			want = 0xbb
		case i < 5*bs:
			want = 0xaa
		}
		if img[i] != want {
			t.Fatalf("byte %d = %#x, want %#x", i-4*bs, img[i], want)
		}
	}
}

func TestTornRandomIsAPrefix(t *testing.T) {
	for seed := range uint64(50) {
		m := shareddisk.NewMem(16 * bs)
		d := New(m)
		d.SetRand(rand.New(rand.NewPCG(seed, 0)))
		mustWrite(t, d, 1, 0xcc)
		d.PowerCut(func(int, int64, int) Keep { return Torn })
		blk := readInner(t, m, 1)
		k := bytes.IndexByte(blk, 0)
		if k <= 0 || k%SectorSize != 0 || k == bs || bytes.IndexByte(blk[k:], 0xcc) >= 0 {
			t.Fatalf("seed %d: torn write kept %d bytes, not a proper sector prefix", seed, k)
		}
	}
}

func TestPowerCutRandom(t *testing.T) {
	m := shareddisk.NewMem(256 * bs)
	d := New(m)
	for i := range 200 {
		mustWrite(t, d, int64(i), 0xdd)
	}
	if err := d.PowerCutRandom(rand.New(rand.NewPCG(7, 7))); err != nil {
		t.Fatal(err)
	}
	var whole, none, torn int
	for i := range 200 {
		blk := readInner(t, m, int64(i))
		switch n := bytes.Count(blk, []byte{0xdd}); n {
		case bs:
			whole++
		case 0:
			none++
		default:
			torn++
		}
	}
	if whole < 60 || none < 20 || torn < 20 {
		t.Fatalf("whole %d dropped %d torn %d", whole, none, torn)
	}
}

func TestCutAtFlush(t *testing.T) {
	m := shareddisk.NewMem(64 * bs)
	d := New(m)
	d.CutAtFlush(2, rand.New(rand.NewPCG(1, 2)))
	mustWrite(t, d, 1, 1)
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		mustWrite(t, d, int64(i+2), 2)
	}
	if err := d.Flush(); !errors.Is(err, ErrPowerCut) {
		t.Fatalf("second flush: %v", err)
	}
	if d.Flushes() != 2 || !d.Dead() {
		t.Fatalf("flushes %d dead %v", d.Flushes(), d.Dead())
	}
	if readInner(t, m, 1)[0] != 1 {
		t.Fatal("flushed write lost")
	}
	var kept int
	for i := range 20 {
		if readInner(t, m, int64(i+2))[0] == 2 {
			kept++
		}
	}
	if kept == 0 || kept == 20 {
		t.Fatalf("%d of 20 unflushed writes kept; want a random subset", kept)
	}
}

func TestCutAtWrite(t *testing.T) {
	m := shareddisk.NewMem(64 * bs)
	d := New(m)
	d.CutAtWrite(3, nil)
	mustWrite(t, d, 1, 1)
	mustWrite(t, d, 2, 2)
	if _, err := d.WriteAt(block(3), 3*bs); !errors.Is(err, ErrPowerCut) {
		t.Fatalf("third write: %v", err)
	}
	if d.Writes() != 3 || !d.Dead() {
		t.Fatalf("writes %d dead %v", d.Writes(), d.Dead())
	}
}

func TestFaultInjection(t *testing.T) {
	m := shareddisk.NewMem(64 * bs)
	d := New(m)
	eio := errors.New("EIO")
	d.SetFault(func(op Op, off int64, n int) error {
		if op == Write && off == 5*bs || op == Flush || op == Read && off == 7*bs {
			return eio
		}
		return nil
	})
	if _, err := d.WriteAt(block(5), 5*bs); !errors.Is(err, eio) {
		t.Fatalf("write: %v", err)
	}
	mustWrite(t, d, 6, 6)
	if d.Pending() != 1 {
		t.Fatalf("failed write took effect: %d pending", d.Pending())
	}
	if err := d.Flush(); !errors.Is(err, eio) || d.Pending() != 1 {
		t.Fatalf("flush: %v, pending %d", err, d.Pending())
	}
	buf := make([]byte, bs)
	if _, err := d.ReadAt(buf, 7*bs); !errors.Is(err, eio) {
		t.Fatalf("read: %v", err)
	}
	d.SetFault(nil)
	if err := d.Flush(); err != nil || readInner(t, m, 6)[0] != 6 || readInner(t, m, 5)[0] != 0 {
		t.Fatalf("flush after clearing fault: %v", err)
	}
}

func TestStallAndHook(t *testing.T) {
	d := New(shareddisk.NewMem(64 * bs))
	d.SetStall(func(op Op, off int64, n int) time.Duration {
		if op == Flush {
			return 50 * time.Millisecond
		}
		return 0
	})
	var hooked atomic.Int64
	d.SetWriteHook(func(off int64, p []byte) {
		if len(p) == bs {
			hooked.Add(1)
		}
	})
	mustWrite(t, d, 1, 1)
	start := time.Now()
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Fatalf("flush took %v, want a 50ms stall", el)
	}
	if hooked.Load() != 1 {
		t.Fatalf("hook saw %d writes", hooked.Load())
	}
}

func TestConcurrent(t *testing.T) {
	m := shareddisk.NewMem(64 * bs)
	d := New(m)
	d.CutAtFlush(30, rand.New(rand.NewPCG(3, 3)))
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, bs)
			for i := range 40 {
				switch i % 3 {
				case 0:
					d.WriteAt(block(byte(g)), int64(g)*bs)
				case 1:
					d.ReadAt(buf, int64(g)*bs)
				default:
					d.Flush()
				}
				if g == 0 && i == 5 {
					d.SetStall(func(Op, int64, int) time.Duration { return time.Microsecond })
					d.SetFault(func(Op, int64, int) error { return nil })
				}
			}
		}()
	}
	wg.Wait()
	if !d.Dead() {
		t.Fatal("cut at flush 30 did not happen")
	}
}
