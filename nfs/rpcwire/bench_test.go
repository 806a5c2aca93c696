package rpcwire

import (
	"bytes"
	"io"
	"testing"
)

// writeCred is a typical Linux client credential.
var writeCred = AuthUnix{Stamp: 0x5f3e2a1b, Machine: "client1.example.com", UID: 1000, GID: 1000, GIDs: []uint32{1000, 4, 27, 100}}

// writeHandle is a file handle of typical size.
var writeHandle = bytes.Repeat([]byte{0xab}, 32)

// appendWriteCall appends an NFSv3 WRITE call (RFC 1813 WRITE3args) with
// data to e, as a client would, using scratch for the credential.
func appendWriteCall(e *Encoder, scratch []byte, xid uint32, data []byte) []byte {
	e.Uint32(xid)
	e.Uint32(msgCall)
	e.Uint32(RPCVersion)
	e.Uint32(progNFS)
	e.Uint32(3)
	e.Uint32(procWrite)
	e.Uint32(FlavorUnix)
	scratch = AppendAuthUnix(scratch[:0], &writeCred)
	e.Opaque(scratch)
	e.Uint32(FlavorNone)
	e.Uint32(0)
	e.Opaque(writeHandle)
	e.Uint64(1 << 30)
	e.Uint32(uint32(len(data)))
	e.Uint32(2) // FILE_SYNC
	e.Opaque(data)
	return scratch
}

// writeCall returns a WRITE call record with data bytes of payload.
func writeCall(tb testing.TB, data int) []byte {
	var e Encoder
	appendWriteCall(&e, nil, 42, make([]byte, data))
	if e.Err() != nil {
		tb.Fatal(e.Err())
	}
	return e.Bytes()
}

// decodeWriteArgs decodes WRITE3args as the server would.
func decodeWriteArgs(d *Decoder) (fh []byte, off uint64, count, stable uint32, data []byte, err error) {
	if fh, err = d.Opaque(64); err != nil {
		return
	}
	if off, err = d.Uint64(); err != nil {
		return
	}
	if count, err = d.Uint32(); err != nil {
		return
	}
	if stable, err = d.Uint32(); err != nil {
		return
	}
	data, err = d.Opaque(-1)
	return
}

// appendWriteReply appends an NFSv3 WRITE reply (WRITE3resok with wcc_data) to dst.
func appendWriteReply(dst []byte, xid uint32) []byte {
	dst = AppendAcceptedHeader(dst, xid)
	e := Encoder{buf: dst}
	e.Uint32(0) // NFS3_OK
	e.Bool(true)
	e.Uint64(4096)    // pre size
	e.Uint64(1 << 40) // pre mtime
	e.Uint64(1 << 40) // pre ctime
	e.Bool(true)      // post attributes
	for range 5 {     // type, mode, nlink, uid, gid
		e.Uint32(1)
	}
	for range 4 { // size, used, rdev, fsid
		e.Uint64(8192)
	}
	e.Uint64(12345) // fileid
	for range 3 {   // atime, mtime, ctime
		e.Uint64(1 << 40)
	}
	e.Uint32(4096)                 // count
	e.Uint32(2)                    // committed
	e.FixedOpaque(writeHandle[:8]) // verifier
	return e.Bytes()
}

func TestHotPathAllocs(t *testing.T) {
	if raceEnabled || testing.CoverMode() != "" {
		t.Skip("allocation counts differ under the race detector or coverage")
	}
	rec := writeCall(t, 4096)
	unixCall := testing.AllocsPerRun(100, func() {
		if _, err := ParseCall(rec); err != nil {
			t.Fatal(err)
		}
	})
	noneRec := BuildCall(1, progNFS, 3, procWrite, nil, []byte{1, 2, 3, 4})
	noneCall := testing.AllocsPerRun(100, func() {
		if _, err := ParseCall(noneRec); err != nil {
			t.Fatal(err)
		}
	})
	c, err := ParseCall(rec)
	if err != nil {
		t.Fatal(err)
	}
	var d Decoder
	decode := testing.AllocsPerRun(100, func() {
		d.Reset(c.Args)
		if _, _, _, _, _, err := decodeWriteArgs(&d); err != nil {
			t.Fatal(err)
		}
	})
	var e Encoder
	buf := make([]byte, 0, 8192)
	scratch := make([]byte, 0, 128)
	data := make([]byte, 4096)
	encode := testing.AllocsPerRun(100, func() {
		e.Reset(buf[:0])
		scratch = appendWriteCall(&e, scratch, 1, data)
	})
	reply := testing.AllocsPerRun(100, func() {
		buf = appendWriteReply(buf[:0], 1)
	})
	if unixCall > 1 || noneCall > 1 || decode != 0 || encode != 0 || reply != 0 {
		t.Fatalf("allocations: ParseCall AUTH_UNIX %v, AUTH_NONE %v, decode %v, encode %v, reply %v; want 1, 1, 0, 0, 0",
			unixCall, noneCall, decode, encode, reply)
	}
}

func BenchmarkParseCallWriteUnix(b *testing.B) {
	rec := writeCall(b, 4096)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCall(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseCallNone(b *testing.B) {
	rec := BuildCall(1, progNFS, 3, procWrite, nil, make([]byte, 64))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCall(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeWriteArgs(b *testing.B) {
	c, err := ParseCall(writeCall(b, 4096))
	if err != nil {
		b.Fatal(err)
	}
	var d Decoder
	b.ReportAllocs()
	for b.Loop() {
		d.Reset(c.Args)
		if _, _, _, _, _, err := decodeWriteArgs(&d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeWriteCallHeader(b *testing.B) {
	var e Encoder
	buf := make([]byte, 0, 512)
	scratch := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		e.Reset(buf[:0])
		scratch = appendWriteCall(&e, scratch, 1, nil)
	}
}

func BenchmarkEncodeWriteReply(b *testing.B) {
	buf := make([]byte, MarkSize, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendWriteReply(buf[:MarkSize], 1)
	}
}

func BenchmarkRecordReaderWrite4K(b *testing.B) {
	rec := writeCall(b, 4096)
	var stream []byte
	for range 64 {
		stream = fragment(stream, rec, true)
	}
	r := bytes.NewReader(stream)
	rr := NewRecordReader(r, DefaultMaxRecord)
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rr.Next(); err == io.EOF {
			r.Reset(stream)
			if _, err := rr.Next(); err != nil {
				b.Fatal(err)
			}
		} else if err != nil {
			b.Fatal(err)
		}
	}
}
