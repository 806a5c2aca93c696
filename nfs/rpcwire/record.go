package rpcwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Record marking constants (RFC 5531 section 11).
const (
	// MarkSize is the size in bytes of a record mark, the header of each fragment.
	MarkSize = 4
	// MaxFragmentLen is the largest fragment length a record mark can carry.
	MaxFragmentLen = 1<<31 - 1
	// MaxFragments bounds the fragments of one record, so that a stream of empty fragments ends.
	MaxFragments = 4096
	// DefaultMaxRecord is the record limit used when NewRecordReader is given a limit <= 0: a 1 MiB WRITE and its headers.
	DefaultMaxRecord = 1<<20 + 4096
	// lastFragment is the bit of a record mark that ends a record.
	lastFragment = 1 << 31
)

// RecordReader reads RPC records, reassembled from their fragments, from a
// byte stream. Any error from Next or Append means the stream's framing is
// lost and the connection must be closed; only io.EOF at a record boundary
// is a clean end. A RecordReader is not safe for concurrent use.
type RecordReader struct {
	r   io.Reader
	max int
	hdr [MarkSize]byte
	buf []byte
}

// NewRecordReader returns a reader of records of at most maxRecord bytes
// (DefaultMaxRecord if maxRecord <= 0) from r. It reads a mark and then a
// fragment with separate calls: give it a bufio.Reader to save system calls.
func NewRecordReader(r io.Reader, maxRecord int) *RecordReader {
	if maxRecord <= 0 {
		maxRecord = DefaultMaxRecord
	}
	return &RecordReader{r: r, max: maxRecord}
}

// Next returns the next complete record. The slice is in a buffer that the
// reader reuses: it stays valid only until the next call to Next. Callers
// that keep a record longer, such as to handle it on another goroutine, copy
// it or use Append.
func (rr *RecordReader) Next() ([]byte, error) {
	rec, err := rr.Append(rr.buf[:0])
	rr.buf = rec[:0]
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// Append reads the next complete record and appends it to dst, which the
// reader does not keep. On error it returns dst with its original length. It returns io.EOF
// itself when the stream ends cleanly before a record, ErrRecordTooLarge
// (before reading the oversized fragment) or ErrTooManyFragments for records
// over the limits, and other errors wrapped.
func (rr *RecordReader) Append(dst []byte) ([]byte, error) {
	start := len(dst)
	for frag := 0; ; frag++ {
		if frag == MaxFragments {
			return dst[:start], fmt.Errorf("rpcwire: record of %d bytes so far: %w", len(dst)-start, ErrTooManyFragments)
		}
		if _, err := io.ReadFull(rr.r, rr.hdr[:]); err != nil {
			if err == io.EOF && frag == 0 {
				return dst[:start], io.EOF
			}
			return dst[:start], fmt.Errorf("rpcwire: reading record mark of fragment %d: %w", frag, unexpected(err))
		}
		mark := binary.BigEndian.Uint32(rr.hdr[:])
		n := int(mark &^ lastFragment)
		have := len(dst) - start
		if n > rr.max-have {
			return dst[:start], fmt.Errorf("rpcwire: fragment of %d bytes after %d: limit %d: %w", n, have, rr.max, ErrRecordTooLarge)
		}
		dst = slices.Grow(dst, n)
		body := dst[len(dst) : len(dst)+n]
		if _, err := io.ReadFull(rr.r, body); err != nil {
			return dst[:start], fmt.Errorf("rpcwire: reading fragment %d of %d bytes: %w", frag, n, unexpected(err))
		}
		dst = dst[:len(dst)+n]
		if mark&lastFragment != 0 {
			return dst, nil
		}
	}
}

// unexpected turns io.EOF, which means a truncated record here, into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// WriteRecord writes rec as one record of a single last fragment, with one
// Write call of the mark and the body copied into one buffer, so that
// writers serialised by the caller never interleave within a record.
func WriteRecord(w io.Writer, rec []byte) error {
	if len(rec) > MaxFragmentLen {
		return fmt.Errorf("rpcwire: writing record of %d bytes: %w", len(rec), ErrRecordTooLarge)
	}
	frame := make([]byte, MarkSize+len(rec))
	copy(frame[MarkSize:], rec)
	return WriteFrame(w, frame)
}

// WriteFrame writes frame[MarkSize:] as one record, in one Write call, after
// filling frame[:MarkSize] with its record mark. It spares WriteRecord's
// copy to callers that build a reply after MarkSize reserved bytes, such as
// AppendAcceptedHeader(make([]byte, MarkSize, n), xid).
func WriteFrame(w io.Writer, frame []byte) error {
	if len(frame) < MarkSize {
		return fmt.Errorf("rpcwire: writing frame of %d bytes, no room for the record mark: %w", len(frame), ErrShort)
	}
	n := len(frame) - MarkSize
	if n > MaxFragmentLen {
		return fmt.Errorf("rpcwire: writing record of %d bytes: %w", n, ErrRecordTooLarge)
	}
	binary.BigEndian.PutUint32(frame, lastFragment|uint32(n))
	if _, err := w.Write(frame); err != nil {
		return fmt.Errorf("rpcwire: writing record of %d bytes: %w", n, err)
	}
	return nil
}
