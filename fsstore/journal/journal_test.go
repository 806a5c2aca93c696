package journal

import (
	"bytes"
	"errors"
	"math/rand"
	"testing"

	"github.com/hanfs/hanfs/fsstore/block"
	"github.com/hanfs/hanfs/shareddisk"
)

const testStart = 10

func img(home, txid uint64, fill byte) Image {
	b := shareddisk.AlignedBuf(block.Size)
	block.Init(b, block.TypeBTree)
	for i := block.HeaderSize; i < block.Size; i++ {
		b[i] = fill
	}
	block.Seal(b, home, txid)
	return Image{Home: home, Data: b}
}

func openReplayed(t *testing.T, d shareddisk.Disk, blocks uint64) (*Log, map[uint64][]byte, int) {
	t.Helper()
	l, err := Open(d, testStart, blocks)
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint64][]byte{}
	n, err := l.Replay(func(home uint64, b []byte, raw bool) error {
		got[home] = append([]byte(nil), b...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l, got, n
}

// TestWrapAndReplay appends transactions of random sizes through many laps of
// the log, checkpointing now and then, and checks after every "crash" that
// replay yields exactly the images written since the last checkpoint.
func TestWrapAndReplay(t *testing.T) {
	const blocks = 64
	d := shareddisk.NewMem(1 << 20)
	if err := Format(d, testStart, blocks); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewSource(7))
	l, _, _ := openReplayed(t, d, blocks)
	want := map[uint64][]byte{} // images since the last checkpoint, latest per home
	for i := 0; i < 2000; i++ {
		k := 1 + r.Intn(12)
		txid := l.NextTxID()
		var imgs []Image
		seen := map[uint64]bool{}
		for j := 0; j < k; j++ {
			home := uint64(100 + r.Intn(40))
			if seen[home] {
				continue
			}
			seen[home] = true
			imgs = append(imgs, img(home, txid, byte(r.Intn(256))))
		}
		if !l.Fits(len(imgs), 0) {
			if err := l.Checkpointed(l.NextTxID()); err != nil {
				t.Fatal(err)
			}
			want = map[uint64][]byte{}
		}
		if _, err := l.Append(imgs, nil); err != nil {
			t.Fatal(err)
		}
		if err := d.Flush(); err != nil {
			t.Fatal(err)
		}
		for _, im := range imgs {
			want[im.Home] = im.Data
		}
		if r.Intn(10) == 0 {
			var got map[uint64][]byte
			l, got, _ = openReplayed(t, d, blocks)
			if len(got) != len(want) {
				t.Fatalf("step %d: replay gave %d blocks, want %d", i, len(got), len(want))
			}
			for h, b := range want {
				if !bytes.Equal(got[h], b) {
					t.Fatalf("step %d: block %d differs after replay", i, h)
				}
			}
		}
	}
}

func TestTornTransactionIgnored(t *testing.T) {
	const blocks = 128
	d := shareddisk.NewMem(1 << 20)
	if err := Format(d, testStart, blocks); err != nil {
		t.Fatal(err)
	}
	l, _, _ := openReplayed(t, d, blocks)
	if _, err := l.Append([]Image{img(200, 1, 1), img(201, 1, 1)}, nil); err != nil {
		t.Fatal(err)
	}
	pos := l.headPos
	if _, err := l.Append([]Image{img(200, 2, 2), img(202, 2, 2), img(203, 2, 2)}, nil); err != nil {
		t.Fatal(err)
	}
	// Tear the second transaction: corrupt its last image.
	off := int64(l.abs(pos+1+2))*block.Size + 100
	b := shareddisk.AlignedBuf(block.Size)
	d.ReadAt(b, off-100)
	b[100] ^= 0xff
	d.WriteAt(b, off-100)
	_, got, n := openReplayed(t, d, blocks)
	if n != 1 || len(got) != 2 || got[200][block.HeaderSize] != 1 {
		t.Fatalf("replayed %d transactions, %d blocks; want only the first", n, len(got))
	}
}

func TestCorruptHeader(t *testing.T) {
	d := shareddisk.NewMem(1 << 20)
	if err := Format(d, testStart, 64); err != nil {
		t.Fatal(err)
	}
	b := shareddisk.AlignedBuf(block.Size)
	d.ReadAt(b, testStart*block.Size)
	b[40] ^= 1
	d.WriteAt(b, testStart*block.Size)
	if _, err := Open(d, testStart, 64); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open with corrupt header: %v", err)
	}
	if _, err := Open(d, testStart, 8); err == nil {
		t.Fatal("tiny journal accepted")
	}
}

func TestAppendBeforeReplayAndFull(t *testing.T) {
	d := shareddisk.NewMem(1 << 20)
	Format(d, testStart, 64)
	l, _ := Open(d, testStart, 64)
	if _, err := l.Append([]Image{img(100, 1, 1)}, nil); err == nil {
		t.Fatal("append before replay accepted")
	}
	l.Replay(func(uint64, []byte, bool) error { return nil })
	big := make([]Image, 70)
	for i := range big {
		big[i] = img(uint64(100+i), 1, 1)
	}
	if _, err := l.Append(big, nil); !errors.Is(err, ErrFull) {
		t.Fatalf("oversized append: %v", err)
	}
}

// FuzzReplay writes arbitrary bytes over the log and checks that replay never
// panics and applies only verified images.
// FuzzReplay replays arbitrary log contents. Each input is the tail txid the
// header should hold (so that seeds written by a real Append are replayed,
// not rejected at their first descriptor) and the bytes of the log.
func FuzzReplay(f *testing.F) {
	d := shareddisk.NewMem(1 << 20)
	Format(d, testStart, 64)
	l, _ := Open(d, testStart, 64)
	l.Replay(func(uint64, []byte, bool) error { return nil })
	tail := l.NextTxID()
	l.Append([]Image{img(100, 1, 1), img(101, 1, 2)}, nil)
	l.Append([]Image{img(102, 2, 3)}, []DataSum{{Start: 200, N: 2, CRC: 1}, {Start: 210, N: 1, CRC: 2}})
	raw := shareddisk.AlignedBuf(block.Size)
	raw[5] = 9
	l.Append([]Image{img(103, 3, 4), {Home: 300, Data: raw, Raw: true}}, nil)
	seed := make([]byte, 9*block.Size)
	d.ReadAt(seed, int64(testStart+1)*block.Size)
	f.Add(tail, seed)
	f.Add(uint64(1), make([]byte, 100))
	f.Fuzz(func(t *testing.T, tail uint64, data []byte) {
		d := shareddisk.NewMem(1 << 20)
		if err := Format(d, testStart, 64); err != nil {
			t.Fatal(err)
		}
		if tail == 0 {
			tail = 1
		}
		h := &Log{d: d, start: testStart, n: 63, tailTx: tail, hdrBuf: shareddisk.AlignedBuf(block.Size)}
		if err := h.writeHeader(); err != nil {
			t.Fatal(err)
		}
		n := (len(data) + block.Size - 1) / block.Size
		if n > 63 {
			n = 63
		}
		buf := shareddisk.AlignedBuf(n * block.Size)
		copy(buf, data)
		d.WriteAt(buf, int64(testStart+1)*block.Size)
		l, err := Open(d, testStart, 64)
		if err != nil {
			t.Fatal(err)
		}
		l.Replay(func(home uint64, b []byte, raw bool) error {
			if raw {
				return nil // raw file data: only the transaction checksum covers it
			}
			if err := block.Verify(b, home, block.TypeFree); err != nil {
				t.Fatalf("replayed an unverified image: %v", err)
			}
			return nil
		})
	})
}

// TestDataSums checks the replay rule for data checksums: only the last
// valid transaction is checked; if its data does not match, it is dropped and
// the next append takes its place; earlier transactions are applied whatever
// their data holds now (it may have been overwritten in place since).
func TestDataSums(t *testing.T) {
	const blocks = 64
	d := shareddisk.NewMem(1 << 20)
	if err := Format(d, testStart, blocks); err != nil {
		t.Fatal(err)
	}
	l, _, _ := openReplayed(t, d, blocks)
	data := func(blk uint64, fill byte) DataSum {
		b := shareddisk.AlignedBuf(2 * block.Size)
		for i := range b {
			b[i] = fill
		}
		if _, err := d.WriteAt(b, int64(blk)*block.Size); err != nil {
			t.Fatal(err)
		}
		return DataSum{Start: blk, N: 2, CRC: Checksum(b)}
	}
	// tx1's data is overwritten later; tx2 follows it, so tx1 still counts.
	s1 := data(200, 1)
	tx1, err := l.Append([]Image{img(100, 0, 1)}, []DataSum{s1})
	if err != nil {
		t.Fatal(err)
	}
	s2 := data(210, 2)
	many := make([]DataSum, SumsPerBlock+3) // more than one checksum block
	for i := range many {
		many[i] = s2
	}
	if _, err := l.Append([]Image{img(101, 0, 2)}, many); err != nil {
		t.Fatal(err)
	}
	data(200, 9) // in-place overwrite of tx1's data
	_, got, n := openReplayed(t, d, blocks)
	if n != 2 || got[100] == nil || got[101] == nil {
		t.Fatalf("replayed %d transactions (%d images); want tx %d and the next", n, len(got), tx1)
	}
	// Now the last transaction's data changes: it is dropped.
	data(210, 7)
	l2, got, n := openReplayed(t, d, blocks)
	if n != 1 || got[101] != nil || l2.Dropped() != tx1+1 {
		t.Fatalf("replayed %d transactions, image 101 present %v, dropped %d; want 1, false, %d", n, got[101] != nil, l2.Dropped(), tx1+1)
	}
	// The dropped transaction's place is taken by the next append.
	if next := l2.NextTxID(); next != tx1+1 {
		t.Fatalf("next txid %d, want %d", next, tx1+1)
	}
	s3 := data(220, 3)
	if _, err := l2.Append([]Image{img(102, 0, 3)}, []DataSum{s3}); err != nil {
		t.Fatal(err)
	}
	_, got, n = openReplayed(t, d, blocks)
	if n != 2 || got[102] == nil || got[101] != nil {
		t.Fatalf("after re-append: replayed %d, images %v", n, len(got))
	}
	// A checksum that points outside the disk is an error, not a drop.
	if _, err := l2.Append([]Image{img(103, 0, 4)}, []DataSum{{Start: 1 << 40, N: 1}}); err != nil {
		t.Fatal(err)
	}
	l3, err := Open(d, testStart, blocks)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l3.Replay(func(uint64, []byte, bool) error { return nil }); err == nil {
		t.Fatal("replay accepted a data checksum outside the disk")
	}
}

// TestRawImages: raw file data images (unsealed bytes) replay home like
// metadata images; a corrupted raw image fails the transaction checksum, so
// the transaction is not applied; a home with the raw flag is refused.
func TestRawImages(t *testing.T) {
	const blocks = 64
	d := shareddisk.NewMem(1 << 20)
	if err := Format(d, testStart, blocks); err != nil {
		t.Fatal(err)
	}
	l, _, _ := openReplayed(t, d, blocks)
	raw := shareddisk.AlignedBuf(block.Size)
	for i := range raw {
		raw[i] = byte(i*7 + 3) // not a sealed block
	}
	if _, err := l.Append([]Image{img(100, 0, 1), {Home: 200, Data: raw, Raw: true}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append([]Image{{Home: 1 | RawFlag, Data: raw}}, nil); err == nil {
		t.Fatal("append accepted a home with the raw flag set")
	}
	_, got, n := openReplayed(t, d, blocks)
	if n != 1 || !bytes.Equal(got[200], raw) || got[100] == nil {
		t.Fatalf("replayed %d transactions, raw image %v; want 1 with the raw bytes at block 200", n, got[200] != nil)
	}
	// Flip a byte of the raw image in the log: the transaction is invalid.
	buf := shareddisk.AlignedBuf(block.Size)
	for pos := uint64(0); pos < blocks-1; pos++ {
		at := int64(testStart+1+pos) * block.Size
		d.ReadAt(buf, at)
		if bytes.Equal(buf, raw) {
			buf[17] ^= 0xff
			d.WriteAt(buf, at)
			break
		}
	}
	_, got, n = openReplayed(t, d, blocks)
	if n != 0 || got[200] != nil {
		t.Fatalf("replayed %d transactions after corrupting the raw image; want none", n)
	}
}
