package rpcwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// fragment appends one fragment of body to dst, marked last if last.
func fragment(dst, body []byte, last bool) []byte {
	mark := uint32(len(body))
	if last {
		mark |= lastFragment
	}
	return append(binary.BigEndian.AppendUint32(dst, mark), body...)
}

// fragmented appends rec split into fragments of random sizes (some empty) to dst.
func fragmented(dst, rec []byte, rng *rand.Rand) []byte {
	for {
		n := 0
		if len(rec) > 0 {
			n = rng.IntN(len(rec) + 1)
		}
		if rng.IntN(8) == 0 {
			n = 0
		}
		last := n == len(rec) && rng.IntN(3) != 0
		dst = fragment(dst, rec[:n], last)
		rec = rec[n:]
		if last {
			return dst
		}
	}
}

// patterned returns n bytes that differ from one record to the next.
func patterned(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

func TestRecordReaderFragments(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 200 {
		var recs [][]byte
		var stream []byte
		for i := range 1 + rng.IntN(5) {
			rec := patterned(rng.IntN(3000), byte(iter+i))
			recs = append(recs, rec)
			stream = fragmented(stream, rec, rng)
		}
		var r io.Reader = bytes.NewReader(stream)
		if iter%2 == 1 {
			r = iotest.OneByteReader(r)
		}
		rr := NewRecordReader(r, 4096)
		for i, want := range recs {
			got, err := rr.Next()
			if err != nil {
				t.Fatalf("iter %d record %d: %v", iter, i, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("iter %d record %d: got %d bytes, want %d", iter, i, len(got), len(want))
			}
		}
		if _, err := rr.Next(); err != io.EOF {
			t.Fatalf("iter %d: at end: %v, want io.EOF", iter, err)
		}
	}
}

func TestRecordReaderErrors(t *testing.T) {
	body := patterned(100, 0)
	cases := []struct {
		name    string
		stream  []byte
		max     int
		wantErr error
	}{
		{"empty stream", nil, 100, io.EOF},
		{"partial mark", []byte{0x80, 0}, 100, io.ErrUnexpectedEOF},
		{"partial body", fragment(nil, body, true)[:50], 100, io.ErrUnexpectedEOF},
		{"missing last fragment", fragment(nil, body, false), 200, io.ErrUnexpectedEOF},
		{"at limit", fragment(nil, body, true), 100, nil},
		{"over limit", fragment(nil, body, true), 99, ErrRecordTooLarge},
		{"over limit across fragments", fragment(fragment(nil, body[:60], false), body[60:], true), 99, ErrRecordTooLarge},
		{"mark max length", []byte{0xff, 0xff, 0xff, 0xff}, 100, ErrRecordTooLarge},
		{"empty last fragment", fragment(nil, nil, true), 100, nil},
		{"endless empty fragments", bytes.Repeat([]byte{0, 0, 0, 0}, MaxFragments+10), 100, ErrTooManyFragments},
		{"many empty fragments under bound", fragment(bytes.Repeat([]byte{0, 0, 0, 0}, MaxFragments-1), body, true), 100, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rr := NewRecordReader(bytes.NewReader(tc.stream), tc.max)
			rec, err := rr.Next()
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil && rec != nil {
				t.Fatal("record returned with an error")
			}
		})
	}
}

func TestRecordReaderOversizedNotRead(t *testing.T) {
	// The reader must refuse an oversized fragment from its mark alone,
	// without waiting for a body that may never come.
	r := iotest.DataErrReader(bytes.NewReader([]byte{0x80, 0x10, 0, 0}))
	_, err := NewRecordReader(r, 1<<16).Next()
	if !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("err = %v", err)
	}
}

func TestRecordReaderReaderError(t *testing.T) {
	errBoom := errors.New("boom")
	r := io.MultiReader(bytes.NewReader(fragment(nil, []byte("ab"), false)), iotest.ErrReader(errBoom))
	if _, err := NewRecordReader(r, 100).Next(); !errors.Is(err, errBoom) {
		t.Fatalf("err = %v, want boom", err)
	}
}

func TestRecordReaderDefaultMax(t *testing.T) {
	for _, max := range []int{0, -1} {
		rr := NewRecordReader(bytes.NewReader(nil), max)
		if rr.max != DefaultMaxRecord {
			t.Fatalf("max %d -> %d", max, rr.max)
		}
	}
}

func TestRecordReaderReuseAndAppend(t *testing.T) {
	a, b := patterned(64, 1), patterned(32, 2)
	stream := fragment(fragment(fragment(nil, a, true), b, true), a, true)
	rr := NewRecordReader(bytes.NewReader(stream), 100)
	r1, err := rr.Next()
	if err != nil || !bytes.Equal(r1, a) {
		t.Fatalf("first: %v", err)
	}
	r2, err := rr.Next()
	if err != nil || !bytes.Equal(r2, b) {
		t.Fatalf("second: %v", err)
	}
	if &r1[0] != &r2[0] {
		t.Error("Next does not reuse its buffer")
	}
	own := []byte("prefix")
	got, err := rr.Append(own)
	if err != nil || string(got[:6]) != "prefix" || !bytes.Equal(got[6:], a) {
		t.Fatalf("Append: %q, %v", got, err)
	}
	if !bytes.Equal(r2, b) {
		t.Error("Append clobbered the buffer of Next")
	}
	got, err = rr.Append(own)
	if err != io.EOF || string(got) != "prefix" {
		t.Fatalf("Append at end: %q, %v", got, err)
	}
}

// countingWriter records each Write call.
type countingWriter struct {
	writes [][]byte
	err    error
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.writes = append(w.writes, append([]byte(nil), p...))
	return len(p), nil
}

func TestWriteRecord(t *testing.T) {
	for _, n := range []int{0, 1, 5, 4096} {
		rec := patterned(n, 3)
		var w countingWriter
		if err := WriteRecord(&w, rec); err != nil {
			t.Fatal(err)
		}
		if len(w.writes) != 1 || !bytes.Equal(w.writes[0], fragment(nil, rec, true)) {
			t.Fatalf("n=%d: writes %x", n, w.writes)
		}
		got, err := NewRecordReader(bytes.NewReader(w.writes[0]), 4096).Next()
		if err != nil || !bytes.Equal(got, rec) {
			t.Fatalf("n=%d: read back %v", n, err)
		}
	}
	errBoom := errors.New("boom")
	if err := WriteRecord(&countingWriter{err: errBoom}, []byte("x")); !errors.Is(err, errBoom) {
		t.Fatalf("err = %v", err)
	}
}

func TestWriteFrame(t *testing.T) {
	frame := AppendAcceptedHeader(make([]byte, MarkSize, 64), 42)
	frame = append(frame, 1, 2, 3, 4)
	var w countingWriter
	if err := WriteFrame(&w, frame); err != nil {
		t.Fatal(err)
	}
	want := fragment(nil, append(AcceptedReply(42, Success, nil), 1, 2, 3, 4), true)
	if len(w.writes) != 1 || !bytes.Equal(w.writes[0], want) {
		t.Fatalf("writes %x\nwant %x", w.writes, want)
	}
	if err := WriteFrame(&w, []byte{1, 2, 3}); !errors.Is(err, ErrShort) {
		t.Fatalf("short frame: %v", err)
	}
	if err := WriteFrame(&w, make([]byte, MarkSize)); err != nil || !bytes.Equal(w.writes[1], []byte{0x80, 0, 0, 0}) {
		t.Fatalf("empty frame: %v %x", err, w.writes)
	}
}
