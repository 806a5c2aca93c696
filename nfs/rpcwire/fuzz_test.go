package rpcwire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
	"unsafe"
)

// sentinels are the errors ParseCall returns, one of which every error wraps.
var callSentinels = []error{ErrGarbage, ErrNotCall, ErrRPCMismatch, ErrBadCred, ErrBadVerf}

// FuzzParseCall checks that ParseCall never panics, that its errors carry
// exactly one sentinel, and that what it accepts survives BuildCall.
func FuzzParseCall(f *testing.F) {
	f.Add(BuildCall(1, progNFS, 3, procWrite, &AuthUnix{Machine: "host", UID: 1, GID: 2, GIDs: []uint32{3, 4}}, []byte{0, 0, 0, 8}))
	f.Add(BuildCall(2, progNFS, 3, 0, nil, nil))
	f.Add(callWithCred(3, 6, []byte("gsscred"), 6, []byte("verf")))
	f.Add([]byte{1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 3})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, rec []byte) {
		c, err := ParseCall(rec)
		if err != nil {
			n := 0
			for _, s := range callSentinels {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("error %v wraps %d sentinels", err, n)
			}
			if (c == nil) != (len(rec) < 4) {
				t.Fatalf("call %v for a %d-byte record", c, len(rec))
			}
			if c != nil && c.Unix != nil {
				t.Fatal("Unix set with an error")
			}
			return
		}
		if c == nil || c.RPCVers != RPCVersion || len(c.Cred) > MaxAuthBytes || len(c.Verf) > MaxAuthBytes {
			t.Fatalf("accepted call %+v", c)
		}
		if len(c.Args) > 0 && unsafe.SliceData(c.Args) != &rec[len(rec)-len(c.Args)] {
			t.Fatal("Args is not the tail of the record")
		}
		if (c.Unix != nil) != (c.CredFlavor == FlavorUnix) {
			t.Fatalf("flavor %d with Unix %v", c.CredFlavor, c.Unix)
		}
		if c.Unix != nil && (len(c.Unix.GIDs) > MaxGIDs || len(c.Unix.Machine) > MaxMachineName) {
			t.Fatalf("credential over limits: %+v", c.Unix)
		}
		if c.CredFlavor > FlavorUnix || c.VerfFlavor != FlavorNone || len(c.Verf) != 0 {
			return
		}
		c2, err := ParseCall(BuildCall(c.XID, c.Prog, c.Vers, c.Proc, c.Unix, c.Args))
		if err != nil {
			t.Fatalf("rebuilt call: %v", err)
		}
		c2.Cred, c.Cred = nil, nil
		c2.Args, c.Args = bytes.Clone(c2.Args), bytes.Clone(c.Args)
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("rebuilt call differs:\n%+v\n%+v", c, c2)
		}
	})
}

// FuzzRecordReader checks that a RecordReader never panics on a stream,
// keeps to its limit, agrees with Append, and that what it reads survives
// WriteRecord.
func FuzzRecordReader(f *testing.F) {
	f.Add(fragment(fragment(nil, []byte("abcdef"), false), []byte("gh"), true))
	f.Add(fragment(fragment(nil, nil, true), []byte("x"), true))
	f.Add([]byte{0x80, 0, 2, 1, 0})
	f.Add(bytes.Repeat([]byte{0, 0, 0, 0}, 20))
	f.Fuzz(func(t *testing.T, stream []byte) {
		const max = 512
		rr := NewRecordReader(bytes.NewReader(stream), max)
		ra := NewRecordReader(bytes.NewReader(stream), max)
		var out bytes.Buffer
		var recs [][]byte
		for {
			rec, err := rr.Next()
			app, aerr := ra.Append([]byte("p"))
			if (err == nil) != (aerr == nil) || (err != nil && err.Error() != aerr.Error()) {
				t.Fatalf("Next %v, Append %v", err, aerr)
			}
			if err != nil {
				if rec != nil || string(app) != "p" {
					t.Fatal("data returned with an error")
				}
				if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrRecordTooLarge) && !errors.Is(err, ErrTooManyFragments) {
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			if len(rec) > max || !bytes.Equal(app[1:], rec) {
				t.Fatalf("record of %d bytes, Append %d", len(rec), len(app)-1)
			}
			recs = append(recs, bytes.Clone(rec))
			if err := WriteRecord(&out, rec); err != nil {
				t.Fatal(err)
			}
		}
		back := NewRecordReader(&out, max)
		for i, want := range recs {
			got, err := back.Next()
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("record %d read back: %v", i, err)
			}
		}
		if _, err := back.Next(); err != io.EOF {
			t.Fatalf("after the rewritten records: %v", err)
		}
	})
}

// FuzzDecoder runs the Decoder methods chosen by ops over data, checking
// that it never panics, keeps its position on errors, and reads what an
// Encoder writes back the same.
func FuzzDecoder(f *testing.F) {
	var e Encoder
	e.Uint32(7)
	e.Opaque([]byte("hello"))
	e.Uint64(1 << 40)
	e.Bool(true)
	e.String("x")
	f.Add([]byte{0, 0x18, 1, 3, 0x10}, e.Bytes())
	f.Add([]byte{5, 0x0d, 2}, []byte{0, 0, 0, 2, 1, 2, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{4}, []byte{0, 0, 0, 2})
	f.Fuzz(func(t *testing.T, ops, data []byte) {
		d := NewDecoder(data)
		for _, op := range ops {
			start := d.Pos()
			arg := int(op >> 3)
			var enc Encoder
			var err error
			meaning := -1 // bytes of the item that are not padding, if it has any
			switch op & 7 {
			case 0:
				var v uint32
				if v, err = d.Uint32(); err == nil {
					enc.Uint32(v)
				}
			case 1:
				var v uint64
				if v, err = d.Uint64(); err == nil {
					enc.Uint64(v)
				}
			case 2:
				var v int64
				if v, err = d.Int64(); err == nil {
					enc.Int64(v)
				}
			case 3:
				var v bool
				if v, err = d.Bool(); err == nil {
					enc.Bool(v)
				}
			case 4:
				var v []byte
				if v, err = d.Opaque(arg - 1); err == nil {
					enc.Opaque(v)
					meaning = 4 + len(v)
				}
			case 5:
				var v []byte
				if v, err = d.FixedOpaque(arg - 1); err == nil {
					enc.FixedOpaque(v)
					meaning = len(v)
				}
			case 6:
				var v string
				if v, err = d.String(arg * 8); err == nil {
					enc.String(v)
					meaning = 4 + len(v)
				}
			case 7:
				enc.FixedOpaque(d.Rest())
			}
			if d.Pos()+d.Remaining() != len(data) || d.Pos() < start {
				t.Fatalf("pos %d remaining %d of %d", d.Pos(), d.Remaining(), len(data))
			}
			if err != nil {
				if d.Pos() != start {
					t.Fatalf("error %v moved the position from %d to %d", err, start, d.Pos())
				}
				if !errors.Is(err, ErrShort) && !errors.Is(err, ErrTooLong) && !errors.Is(err, ErrInvalid) {
					t.Fatalf("unexpected error %v", err)
				}
				continue
			}
			read := data[start:d.Pos()]
			if op&7 != 7 && (d.Pos()-start)%4 != 0 {
				t.Fatalf("op %d read %d bytes", op&7, len(read))
			}
			got := enc.Bytes()
			if op&7 == 7 {
				got = got[:len(read)] // Rest is not padded in the input
			}
			if meaning < 0 {
				meaning = len(read)
			}
			if len(got) != len(read) || !bytes.Equal(read[:meaning], got[:meaning]) ||
				!bytes.Equal(got[meaning:], make([]byte, len(got)-meaning)) {
				t.Fatalf("op %d: read %x, re-encoded %x", op&7, read, enc.Bytes())
			}
		}
	})
}
