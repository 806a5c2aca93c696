// Package block defines the header that every metadata block of a hanfs file
// system carries: a checksum, a magic number, a type, the block's own address
// and the transaction that last wrote it.
//
// Layout of the first HeaderSize bytes of a metadata block (little endian):
//
//	[0:4)   crc32c (Castagnoli) of bytes [4:Size)
//	[4:8)   magic "HNMB"
//	[8:10)  block type (TypeBTree, TypeBitmap, ...)
//	[10:16) reserved, zero
//	[16:24) block number: the block's home address on the disk
//	[24:32) transaction id of the last transaction that wrote the block
//
// The owner of a block type uses bytes [HeaderSize:Size). The transaction layer
// seals a block (fills number, txid and checksum) when it commits it, and
// verifies it when it reads it from the disk, so that a block that is torn,
// misplaced or from another file system is detected.
package block

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Size is the size in bytes of every block.
const Size = 4096

// HeaderSize is the size of the common metadata block header.
const HeaderSize = 32

// Magic identifies a hanfs metadata block.
const Magic uint32 = 0x424d4e48 // "HNMB" little endian

// Type says what a metadata block holds.
type Type uint16

// Metadata block types.
const (
	TypeFree        Type = 0 // never written, or zeroed
	TypeBTree       Type = 1 // a B+tree node (fsstore/btree)
	TypeBitmap      Type = 2 // a block allocation bitmap
	TypeFSInfo      Type = 3 // the file-system info block (tree root, counters)
	TypeJournalHdr  Type = 4 // the journal header
	TypeJournalTx   Type = 5 // a journal transaction descriptor
	TypeLease       Type = 6 // a lease record
	TypeMailbox     Type = 7 // a mailbox slot
	TypeJournalSums Type = 8 // a journal transaction's data checksums
)

func (t Type) String() string {
	switch t {
	case TypeFree:
		return "free"
	case TypeBTree:
		return "btree"
	case TypeBitmap:
		return "bitmap"
	case TypeFSInfo:
		return "fsinfo"
	case TypeJournalHdr:
		return "journal-header"
	case TypeJournalTx:
		return "journal-tx"
	case TypeLease:
		return "lease"
	case TypeMailbox:
		return "mailbox"
	case TypeJournalSums:
		return "journal-sums"
	}
	return fmt.Sprintf("type(%d)", uint16(t))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the crc32c of b.
func Checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// ErrChecksum reports a metadata block whose checksum does not match.
var ErrChecksum = errors.New("metadata block checksum mismatch")

// ErrMagic reports a block that is not a hanfs metadata block.
var ErrMagic = errors.New("not a hanfs metadata block (bad magic)")

// ErrMisplaced reports a block whose recorded address is not where it was read.
var ErrMisplaced = errors.New("metadata block found at the wrong address")

// ErrType reports a block of an unexpected type.
var ErrType = errors.New("metadata block has an unexpected type")

// Init zeroes b and writes a header of type t, ready for the owner to fill.
func Init(b []byte, t Type) {
	clear(b[:Size])
	binary.LittleEndian.PutUint32(b[4:8], Magic)
	binary.LittleEndian.PutUint16(b[8:10], uint16(t))
}

// TypeOf returns the type recorded in b's header.
func TypeOf(b []byte) Type { return Type(binary.LittleEndian.Uint16(b[8:10])) }

// Number returns the block number recorded in b's header.
func Number(b []byte) uint64 { return binary.LittleEndian.Uint64(b[16:24]) }

// TxID returns the transaction id recorded in b's header.
func TxID(b []byte) uint64 { return binary.LittleEndian.Uint64(b[24:32]) }

// Seal records the block number and transaction id in b's header and sets
// its checksum. Call it on the copy that goes to the disk.
func Seal(b []byte, num, txid uint64) {
	binary.LittleEndian.PutUint32(b[4:8], Magic)
	binary.LittleEndian.PutUint64(b[16:24], num)
	binary.LittleEndian.PutUint64(b[24:32], txid)
	binary.LittleEndian.PutUint32(b[0:4], Checksum(b[4:Size]))
}

// Verify checks that b is an intact metadata block of type want (any type if
// want is TypeFree) that belongs at block number num.
func Verify(b []byte, num uint64, want Type) error {
	if len(b) < Size {
		return fmt.Errorf("block %d: short buffer (%d bytes)", num, len(b))
	}
	if binary.LittleEndian.Uint32(b[4:8]) != Magic {
		return fmt.Errorf("block %d: %w", num, ErrMagic)
	}
	if got, sum := binary.LittleEndian.Uint32(b[0:4]), Checksum(b[4:Size]); got != sum {
		return fmt.Errorf("block %d: %w (stored %08x, computed %08x)", num, ErrChecksum, got, sum)
	}
	if n := Number(b); n != num {
		return fmt.Errorf("block %d: %w (header says %d)", num, ErrMisplaced, n)
	}
	if want != TypeFree && TypeOf(b) != want {
		return fmt.Errorf("block %d: %w (%v, want %v)", num, ErrType, TypeOf(b), want)
	}
	return nil
}
