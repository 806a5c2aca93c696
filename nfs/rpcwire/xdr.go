package rpcwire

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Decoder reads XDR (RFC 4506) items from a byte slice.
//
// Every method checks its input: on a short or oversized field it returns an
// error wrapping ErrShort, ErrTooLong or ErrInvalid that names the field's
// offset, and leaves the position unchanged. Byte slices it returns alias
// the input. The zero Decoder reads from an empty slice.
type Decoder struct {
	buf []byte
	pos int
}

// NewDecoder returns a Decoder reading b from its start.
func NewDecoder(b []byte) *Decoder {
	return &Decoder{buf: b}
}

// Reset makes d read b from its start, so that a Decoder value can be reused without allocating.
func (d *Decoder) Reset(b []byte) {
	d.buf = b
	d.pos = 0
}

// Pos returns the offset of the next byte to read.
func (d *Decoder) Pos() int { return d.pos }

// Remaining returns the number of bytes not yet read.
func (d *Decoder) Remaining() int { return len(d.buf) - d.pos }

// Rest returns the bytes not yet read, aliasing the input, and moves to the end.
func (d *Decoder) Rest() []byte {
	b := d.buf[d.pos:len(d.buf):len(d.buf)]
	d.pos = len(d.buf)
	return b
}

// Uint32 reads an unsigned int.
func (d *Decoder) Uint32() (uint32, error) {
	b := d.buf[d.pos:]
	if len(b) < 4 {
		return 0, d.short(kindUint32)
	}
	d.pos += 4
	return binary.BigEndian.Uint32(b), nil
}

// Uint64 reads an unsigned hyper.
func (d *Decoder) Uint64() (uint64, error) {
	b := d.buf[d.pos:]
	if len(b) < 8 {
		return 0, d.short(kindUint64)
	}
	d.pos += 8
	return binary.BigEndian.Uint64(b), nil
}

// Int64 reads a (signed) hyper.
func (d *Decoder) Int64() (int64, error) {
	b := d.buf[d.pos:]
	if len(b) < 8 {
		return 0, d.short(kindInt64)
	}
	d.pos += 8
	return int64(binary.BigEndian.Uint64(b)), nil
}

// Bool reads a bool, rejecting values other than 0 and 1 with ErrInvalid.
func (d *Decoder) Bool() (bool, error) {
	if len(d.buf)-d.pos < 4 {
		return false, d.short(kindBool)
	}
	switch binary.BigEndian.Uint32(d.buf[d.pos:]) {
	case 0:
		d.pos += 4
		return false, nil
	case 1:
		d.pos += 4
		return true, nil
	}
	return false, d.invalid("bool")
}

// Opaque reads variable-length opaque data of at most max bytes (no limit
// but the input if max < 0) and skips its padding; the result aliases the input.
func (d *Decoder) Opaque(max int) ([]byte, error) {
	return d.opaque("opaque", max)
}

// String reads a string of at most max bytes (no limit but the input if max < 0); it allocates.
func (d *Decoder) String(max int) (string, error) {
	b, err := d.opaque("string", max)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// FixedOpaque reads n bytes of fixed-length opaque data and skips their
// padding; the result aliases the input.
func (d *Decoder) FixedOpaque(n int) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("xdr: fixed opaque at offset %d: negative length %d: %w", d.pos, n, ErrInvalid)
	}
	padded := (uint64(n) + 3) &^ 3
	if uint64(len(d.buf)-d.pos) < padded {
		return nil, d.shortN("fixed opaque", padded)
	}
	b := d.buf[d.pos : d.pos+n : d.pos+n]
	d.pos += int(padded)
	return b, nil
}

// opaque reads a length-prefixed item named what.
func (d *Decoder) opaque(what string, max int) ([]byte, error) {
	if len(d.buf)-d.pos < 4 {
		return nil, d.shortN(what+" length", 4)
	}
	n := binary.BigEndian.Uint32(d.buf[d.pos:])
	if max >= 0 && uint64(n) > uint64(max) {
		return nil, d.tooLong(what, n, max)
	}
	padded := (uint64(n) + 3) &^ 3
	if uint64(len(d.buf)-d.pos-4) < padded {
		return nil, d.shortN(what, 4+padded)
	}
	start := d.pos + 4
	end := start + int(n)
	d.pos = start + int(padded)
	return d.buf[start:end:end], nil
}

// kind names a fixed-size XDR item in errors.
type kind uint8

// The fixed-size items.
const (
	kindUint32 kind = iota
	kindUint64
	kindInt64
	kindBool
)

// short returns the error for a fixed-size item k at the current position;
// it keeps the callers small enough to be inlined.
func (d *Decoder) short(k kind) error {
	switch k {
	case kindUint64:
		return d.shortN("uint64", 8)
	case kindInt64:
		return d.shortN("int64", 8)
	case kindBool:
		return d.shortN("bool", 4)
	}
	return d.shortN("uint32", 4)
}

// shortN returns the error for a field named what needing need bytes at the current position.
func (d *Decoder) shortN(what string, need uint64) error {
	return fmt.Errorf("xdr: %s at offset %d: need %d bytes, have %d: %w", what, d.pos, need, len(d.buf)-d.pos, ErrShort)
}

// tooLong returns the error for a length n above max at the current position.
func (d *Decoder) tooLong(what string, n uint32, max int) error {
	return fmt.Errorf("xdr: %s at offset %d: length %d above limit %d: %w", what, d.pos, n, max, ErrTooLong)
}

// invalid returns the error for a bad value at the current position.
func (d *Decoder) invalid(what string) error {
	return fmt.Errorf("xdr: %s at offset %d: value %d: %w", what, d.pos, binary.BigEndian.Uint32(d.buf[d.pos:]), ErrInvalid)
}

// Encoder appends XDR (RFC 4506) items to a byte slice. The zero Encoder
// appends to a nil slice.
//
// Methods do not return errors: the only failure, opaque data or a string
// longer than 2^32-1 bytes, is not encoded and is reported by Err.
type Encoder struct {
	buf []byte
	err error
}

// NewEncoder returns an Encoder appending to dst.
func NewEncoder(dst []byte) *Encoder {
	return &Encoder{buf: dst}
}

// Reset makes e append to dst and clears its error; e.Reset(e.Bytes()[:0]) reuses the buffer.
func (e *Encoder) Reset(dst []byte) {
	e.buf = dst
	e.err = nil
}

// Bytes returns the encoded bytes, including whatever dst held at the start.
func (e *Encoder) Bytes() []byte { return e.buf }

// Len returns len(e.Bytes()).
func (e *Encoder) Len() int { return len(e.buf) }

// Err returns the first error met since the last Reset, or nil.
func (e *Encoder) Err() error { return e.err }

// Uint32 appends an unsigned int.
func (e *Encoder) Uint32(v uint32) {
	e.buf = binary.BigEndian.AppendUint32(e.buf, v)
}

// Uint64 appends an unsigned hyper.
func (e *Encoder) Uint64(v uint64) {
	e.buf = binary.BigEndian.AppendUint64(e.buf, v)
}

// Int64 appends a (signed) hyper.
func (e *Encoder) Int64(v int64) {
	e.buf = binary.BigEndian.AppendUint64(e.buf, uint64(v))
}

// Bool appends a bool as 0 or 1.
func (e *Encoder) Bool(v bool) {
	var u uint32
	if v {
		u = 1
	}
	e.Uint32(u)
}

// Opaque appends variable-length opaque data: its length, the bytes and zero padding to 4.
func (e *Encoder) Opaque(b []byte) {
	if uint64(len(b)) > math.MaxUint32 {
		e.fail("opaque", len(b))
		return
	}
	e.Uint32(uint32(len(b)))
	e.FixedOpaque(b)
}

// String appends a string like opaque data.
func (e *Encoder) String(s string) {
	if uint64(len(s)) > math.MaxUint32 {
		e.fail("string", len(s))
		return
	}
	e.Uint32(uint32(len(s)))
	e.buf = append(e.buf, s...)
	e.pad(len(s))
}

// FixedOpaque appends fixed-length opaque data: the bytes and zero padding to 4.
func (e *Encoder) FixedOpaque(b []byte) {
	e.buf = append(e.buf, b...)
	e.pad(len(b))
}

// pad appends the zero bytes that round n up to a multiple of 4.
func (e *Encoder) pad(n int) {
	if p := -n & 3; p != 0 {
		e.buf = append(e.buf, make([]byte, p)...)
	}
}

// fail records that an item of n bytes could not be encoded.
func (e *Encoder) fail(what string, n int) {
	if e.err == nil {
		e.err = fmt.Errorf("xdr: %s of %d bytes at offset %d: %w", what, n, len(e.buf), ErrTooLong)
	}
}
