package rpcwire

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
)

// words builds a byte slice from big-endian 32-bit words.
func words(ws ...uint32) []byte {
	var e Encoder
	for _, w := range ws {
		e.Uint32(w)
	}
	return e.Bytes()
}

func TestDecoderScalars(t *testing.T) {
	cases := []struct {
		name    string
		in      []byte
		read    func(d *Decoder) (any, error)
		want    any
		wantErr error
		wantPos int
	}{
		{"uint32", words(0xdeadbeef), func(d *Decoder) (any, error) { return d.Uint32() }, uint32(0xdeadbeef), nil, 4},
		{"uint32 short", []byte{1, 2, 3}, func(d *Decoder) (any, error) { return d.Uint32() }, uint32(0), ErrShort, 0},
		{"uint32 empty", nil, func(d *Decoder) (any, error) { return d.Uint32() }, uint32(0), ErrShort, 0},
		{"uint64", words(1, 2), func(d *Decoder) (any, error) { return d.Uint64() }, uint64(1<<32 | 2), nil, 8},
		{"uint64 short", words(1), func(d *Decoder) (any, error) { return d.Uint64() }, uint64(0), ErrShort, 0},
		{"int64 negative", words(0xffffffff, 0xfffffffe), func(d *Decoder) (any, error) { return d.Int64() }, int64(-2), nil, 8},
		{"int64 min", words(0x80000000, 0), func(d *Decoder) (any, error) { return d.Int64() }, int64(math.MinInt64), nil, 8},
		{"int64 short", []byte{0, 0, 0, 0, 0, 0, 0}, func(d *Decoder) (any, error) { return d.Int64() }, int64(0), ErrShort, 0},
		{"bool false", words(0), func(d *Decoder) (any, error) { return d.Bool() }, false, nil, 4},
		{"bool true", words(1), func(d *Decoder) (any, error) { return d.Bool() }, true, nil, 4},
		{"bool 2", words(2), func(d *Decoder) (any, error) { return d.Bool() }, false, ErrInvalid, 0},
		{"bool short", []byte{0, 0}, func(d *Decoder) (any, error) { return d.Bool() }, false, ErrShort, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(tc.in)
			got, err := tc.read(d)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			if d.Pos() != tc.wantPos || d.Remaining() != len(tc.in)-tc.wantPos {
				t.Fatalf("pos %d remaining %d, want pos %d", d.Pos(), d.Remaining(), tc.wantPos)
			}
		})
	}
}

func TestDecoderOpaque(t *testing.T) {
	cases := []struct {
		name    string
		in      []byte
		max     int
		want    string
		wantErr error
		wantPos int
	}{
		{"empty", words(0), 10, "", nil, 4},
		{"one byte padded", append(words(1), 'a', 0, 0, 0), 10, "a", nil, 8},
		{"four bytes", append(words(4), "abcd"...), 4, "abcd", nil, 8},
		{"five bytes", append(words(5), "abcde\x00\x00\x00"...), 5, "abcde", nil, 12},
		{"at limit", append(words(3), "xyz\x00"...), 3, "xyz", nil, 8},
		{"over limit", append(words(4), "abcd"...), 3, "", ErrTooLong, 0},
		{"no limit", append(words(4), "abcd"...), -1, "abcd", nil, 8},
		{"huge length", words(0xffffffff), -1, "", ErrShort, 0},
		{"huge length limited", words(0xffffffff), 400, "", ErrTooLong, 0},
		{"missing padding", append(words(1), 'a'), 10, "", ErrShort, 0},
		{"missing body", words(8), 10, "", ErrShort, 0},
		{"short length", []byte{0, 0}, 10, "", ErrShort, 0},
		{"trailing data kept", append(words(2), "hi\x00\x00tail"...), 10, "hi", nil, 8},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, str := range []bool{false, true} {
				d := NewDecoder(tc.in)
				var got string
				var err error
				if str {
					got, err = d.String(tc.max)
				} else {
					var b []byte
					b, err = d.Opaque(tc.max)
					got = string(b)
					if err == nil && cap(b) != len(b) {
						t.Fatalf("opaque cap %d > len %d: appends would clobber the input", cap(b), len(b))
					}
				}
				if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
					t.Fatalf("string=%v: err = %v, want %v", str, err, tc.wantErr)
				}
				if got != tc.want || d.Pos() != tc.wantPos {
					t.Fatalf("string=%v: got %q pos %d, want %q pos %d", str, got, d.Pos(), tc.want, tc.wantPos)
				}
			}
		})
	}
}

func TestDecoderFixedOpaque(t *testing.T) {
	cases := []struct {
		name    string
		in      []byte
		n       int
		want    string
		wantErr error
		wantPos int
	}{
		{"zero", nil, 0, "", nil, 0},
		{"aligned", []byte("abcdefgh"), 8, "abcdefgh", nil, 8},
		{"padded", []byte("abc\x00z"), 3, "abc", nil, 4},
		{"missing padding", []byte("abc"), 3, "", ErrShort, 0},
		{"short", []byte("abcd"), 8, "", ErrShort, 0},
		{"negative", []byte("abcd"), -1, "", ErrInvalid, 0},
		{"huge", []byte("abcd"), math.MaxInt, "", ErrShort, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(tc.in)
			b, err := d.FixedOpaque(tc.n)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if string(b) != tc.want || d.Pos() != tc.wantPos {
				t.Fatalf("got %q pos %d, want %q pos %d", b, d.Pos(), tc.want, tc.wantPos)
			}
		})
	}
}

func TestDecoderErrorNamesOffset(t *testing.T) {
	d := NewDecoder(words(7, 8))
	if _, err := d.Uint64(); err != nil {
		t.Fatal(err)
	}
	_, err := d.Uint32()
	if err == nil || !strings.Contains(err.Error(), "offset 8") {
		t.Fatalf("err = %v, want one naming offset 8", err)
	}
	d.Reset(append(words(1, 500), make([]byte, 500)...))
	if _, err := d.Uint32(); err != nil {
		t.Fatal(err)
	}
	_, err = d.Opaque(400)
	if !errors.Is(err, ErrTooLong) || !strings.Contains(err.Error(), "offset 4") {
		t.Fatalf("err = %v, want ErrTooLong naming offset 4", err)
	}
}

func TestDecoderZeroValueAndRest(t *testing.T) {
	var d Decoder
	if d.Remaining() != 0 || d.Pos() != 0 || len(d.Rest()) != 0 {
		t.Fatal("zero Decoder not empty")
	}
	if _, err := d.Opaque(1); !errors.Is(err, ErrShort) {
		t.Fatalf("err = %v", err)
	}
	d.Reset(words(1, 2, 3))
	if _, err := d.Uint32(); err != nil {
		t.Fatal(err)
	}
	rest := d.Rest()
	if !bytes.Equal(rest, words(2, 3)) || d.Remaining() != 0 || d.Pos() != 12 {
		t.Fatalf("rest %x pos %d", rest, d.Pos())
	}
}

func TestEncoder(t *testing.T) {
	var e Encoder
	e.Uint32(0x01020304)
	e.Uint64(0x05060708090a0b0c)
	e.Int64(-1)
	e.Bool(true)
	e.Bool(false)
	e.Opaque([]byte("abcde"))
	e.Opaque(nil)
	e.FixedOpaque([]byte("xy"))
	e.String("hello")
	e.String("")
	want := []byte{
		1, 2, 3, 4,
		5, 6, 7, 8, 9, 10, 11, 12,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0, 0, 0, 1,
		0, 0, 0, 0,
		0, 0, 0, 5, 'a', 'b', 'c', 'd', 'e', 0, 0, 0,
		0, 0, 0, 0,
		'x', 'y', 0, 0,
		0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o', 0, 0, 0,
		0, 0, 0, 0,
	}
	if !bytes.Equal(e.Bytes(), want) || e.Len() != len(want) || e.Err() != nil {
		t.Fatalf("encoded %x\nwant    %x (err %v)", e.Bytes(), want, e.Err())
	}

	d := NewDecoder(e.Bytes())
	u32, _ := d.Uint32()
	u64, _ := d.Uint64()
	i64, _ := d.Int64()
	b1, _ := d.Bool()
	b2, _ := d.Bool()
	o1, _ := d.Opaque(5)
	o2, _ := d.Opaque(0)
	f, _ := d.FixedOpaque(2)
	s1, _ := d.String(5)
	s2, err := d.String(0)
	if err != nil || u32 != 0x01020304 || u64 != 0x05060708090a0b0c || i64 != -1 || !b1 || b2 ||
		string(o1) != "abcde" || len(o2) != 0 || string(f) != "xy" || s1 != "hello" || s2 != "" || d.Remaining() != 0 {
		t.Fatalf("round trip mismatch (err %v)", err)
	}

	prefix := []byte{9, 9}
	e2 := NewEncoder(prefix)
	e2.Uint32(1)
	if !bytes.Equal(e2.Bytes(), []byte{9, 9, 0, 0, 0, 1}) {
		t.Fatalf("NewEncoder does not append: %x", e2.Bytes())
	}
	buf := e.Bytes()
	e.Reset(buf[:0])
	if e.Len() != 0 || cap(e.Bytes()) != cap(buf) {
		t.Fatal("Reset does not reuse the buffer")
	}
	e.Uint32(7)
	if !bytes.Equal(e.Bytes(), words(7)) {
		t.Fatalf("after Reset: %x", e.Bytes())
	}
}
