package shareddisk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"time"
	"unicode/utf8"
)

// The superblock record, stored identically in block 0 (copy A) and block 1
// (copy B). All integers are little endian. The record fills the first
// SuperblockSize bytes of its block; the rest of the block is zero and
// ignored.
//
//	offset size  field
//	     0    8  magic "HANFSSB1"
//	     8    4  format version (1)
//	    12    4  block size (4096)
//	    16   16  UUID, random at format; the NFS fsid
//	    32    8  created, unix nanoseconds
//	    40    4  max nodes (16)
//	    44    4  mailbox blocks per node (4)
//	    48    8  Layout.TotalBlocks
//	    56    8  Layout.SuperblockA
//	    64    8  Layout.SuperblockB
//	    72    8  Layout.LeaseStart
//	    80    8  Layout.LeaseBlocks
//	    88    8  Layout.MailboxStart
//	    96    8  Layout.MailboxBlocks
//	   104    8  Layout.FSInfo
//	   112    8  Layout.JournalStart
//	   120    8  Layout.JournalBlocks
//	   128    8  Layout.BitmapStart
//	   136    8  Layout.BitmapBlocks
//	   144    8  Layout.DataStart
//	   152    8  Layout.DataBlocks
//	   160   32  handle key, random at format; authenticates NFS file handles
//	   192    4  label length in bytes (0..64)
//	   196   64  label, UTF-8, zero padded
//	   260  248  reserved, zero
//	   508    4  crc32c (Castagnoli) of bytes [0:508)
const (
	// SuperblockMagic identifies a hanfs superblock.
	SuperblockMagic = "HANFSSB1"
	// FormatVersion is the on-disk format version this package writes and reads.
	FormatVersion = 1
	// SuperblockSize is the length of the encoded superblock record.
	SuperblockSize = 512
	// MaxLabelLen is the longest label, in bytes.
	MaxLabelLen = 64

	offMagic      = 0
	offVersion    = 8
	offBlockSize  = 12
	offUUID       = 16
	offCreated    = 32
	offMaxNodes   = 40
	offMboxPer    = 44
	offLayout     = 48
	layoutFields  = 14
	offHandleKey  = 160
	offLabelLen   = 192
	offLabel      = 196
	offReserved   = offLabel + MaxLabelLen
	offCRC        = SuperblockSize - 4
	handleKeySize = 32
)

// Superblock is the root record of a hanfs disk.
type Superblock struct {
	Version              uint32
	BlockSize            uint32
	UUID                 [16]byte // random at format; becomes the NFS fsid
	Created              int64    // unix nanoseconds at format
	MaxNodes             uint32
	MailboxBlocksPerNode uint32
	Layout               Layout
	HandleKey            [32]byte // secret that authenticates NFS file handles
	Label                string   // at most MaxLabelLen bytes of UTF-8

	// ReadFrom says which copy ReadSuperblock used; it is not encoded.
	ReadFrom Copy
	// OtherCopyErr, set by ReadSuperblock, says why the other copy is
	// unusable or differs (nil when both copies match); it is not encoded.
	OtherCopyErr error
}

// Copy names one of the two superblock copies.
type Copy int

// The superblock copies.
const (
	CopyA Copy = 0 // block 0
	CopyB Copy = 1 // block 1
)

// String returns "A" or "B".
func (c Copy) String() string {
	if c == CopyB {
		return "B"
	}
	return "A"
}

// CreatedTime returns the format time.
func (sb *Superblock) CreatedTime() time.Time { return time.Unix(0, sb.Created) }

// UUIDString returns the UUID in the usual 8-4-4-4-12 hex form.
func (sb *Superblock) UUIDString() string {
	u := sb.UUID
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// ptrs returns pointers to the layout fields in their encoded order.
func (l *Layout) ptrs() [layoutFields]*uint64 {
	return [layoutFields]*uint64{
		&l.TotalBlocks, &l.SuperblockA, &l.SuperblockB, &l.LeaseStart, &l.LeaseBlocks,
		&l.MailboxStart, &l.MailboxBlocks, &l.FSInfo, &l.JournalStart, &l.JournalBlocks,
		&l.BitmapStart, &l.BitmapBlocks, &l.DataStart, &l.DataBlocks,
	}
}

// EncodeSuperblock returns the SuperblockSize-byte record for sb. It fails if
// the label is too long; it does not validate the layout.
func EncodeSuperblock(sb *Superblock) ([]byte, error) {
	if len(sb.Label) > MaxLabelLen {
		return nil, fmt.Errorf("encode superblock: label is %d bytes, at most %d allowed", len(sb.Label), MaxLabelLen)
	}
	if !utf8.ValidString(sb.Label) {
		return nil, fmt.Errorf("encode superblock: label %q is not valid UTF-8", sb.Label)
	}
	b := make([]byte, SuperblockSize)
	le := binary.LittleEndian
	copy(b[offMagic:], SuperblockMagic)
	le.PutUint32(b[offVersion:], sb.Version)
	le.PutUint32(b[offBlockSize:], sb.BlockSize)
	copy(b[offUUID:], sb.UUID[:])
	le.PutUint64(b[offCreated:], uint64(sb.Created))
	le.PutUint32(b[offMaxNodes:], sb.MaxNodes)
	le.PutUint32(b[offMboxPer:], sb.MailboxBlocksPerNode)
	for i, p := range sb.Layout.ptrs() {
		le.PutUint64(b[offLayout+8*i:], *p)
	}
	copy(b[offHandleKey:], sb.HandleKey[:])
	le.PutUint32(b[offLabelLen:], uint32(len(sb.Label)))
	copy(b[offLabel:], sb.Label)
	le.PutUint32(b[offCRC:], crc32.Checksum(b[:offCRC], crc32.MakeTable(crc32.Castagnoli)))
	return b, nil
}

// DecodeSuperblock parses and validates a superblock record (at least
// SuperblockSize bytes). Errors wrap ErrNotHanfs when the magic is wrong and
// ErrCorrupt for any other defect. It does not know the disk's size; see
// CheckDiskSize.
func DecodeSuperblock(b []byte) (*Superblock, error) {
	if len(b) < SuperblockSize {
		return nil, fmt.Errorf("superblock record is %d bytes, want %d: %w", len(b), SuperblockSize, ErrCorrupt)
	}
	b = b[:SuperblockSize]
	if !bytes.Equal(b[offMagic:offMagic+len(SuperblockMagic)], []byte(SuperblockMagic)) {
		return nil, fmt.Errorf("magic is %q, want %q: %w", b[offMagic:offMagic+len(SuperblockMagic)], SuperblockMagic, ErrNotHanfs)
	}
	le := binary.LittleEndian
	if got, want := le.Uint32(b[offCRC:]), crc32.Checksum(b[:offCRC], crc32.MakeTable(crc32.Castagnoli)); got != want {
		return nil, fmt.Errorf("checksum is %#08x, computed %#08x: %w", got, want, ErrCorrupt)
	}
	sb := &Superblock{
		Version:              le.Uint32(b[offVersion:]),
		BlockSize:            le.Uint32(b[offBlockSize:]),
		Created:              int64(le.Uint64(b[offCreated:])),
		MaxNodes:             le.Uint32(b[offMaxNodes:]),
		MailboxBlocksPerNode: le.Uint32(b[offMboxPer:]),
	}
	copy(sb.UUID[:], b[offUUID:])
	copy(sb.HandleKey[:], b[offHandleKey:])
	for i, p := range sb.Layout.ptrs() {
		*p = le.Uint64(b[offLayout+8*i:])
	}
	if sb.Version != FormatVersion {
		return nil, fmt.Errorf("format version is %d, this build reads only %d: %w", sb.Version, FormatVersion, ErrCorrupt)
	}
	if sb.BlockSize != BlockSize {
		return nil, fmt.Errorf("block size is %d, want %d: %w", sb.BlockSize, BlockSize, ErrCorrupt)
	}
	if sb.MaxNodes != MaxNodes || sb.MailboxBlocksPerNode != MailboxBlocksPerNode {
		return nil, fmt.Errorf("mailbox geometry is %d nodes x %d blocks, want %d x %d: %w",
			sb.MaxNodes, sb.MailboxBlocksPerNode, MaxNodes, MailboxBlocksPerNode, ErrCorrupt)
	}
	n := le.Uint32(b[offLabelLen:])
	if n > MaxLabelLen {
		return nil, fmt.Errorf("label length is %d, at most %d allowed: %w", n, MaxLabelLen, ErrCorrupt)
	}
	label := b[offLabel : offLabel+int(n)]
	if !utf8.Valid(label) {
		return nil, fmt.Errorf("label is not valid UTF-8: %w", ErrCorrupt)
	}
	sb.Label = string(label)
	if err := sb.Layout.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrCorrupt)
	}
	return sb, nil
}

// CheckDiskSize returns an error wrapping ErrTruncated if a disk of
// sizeBytes is smaller than the superblock's layout.
func (sb *Superblock) CheckDiskSize(sizeBytes int64) error {
	if sb.Layout.TotalBlocks > math.MaxInt64/BlockSize {
		return fmt.Errorf("superblock says %d blocks, more than any disk: %w", sb.Layout.TotalBlocks, ErrTruncated)
	}
	if need := Bytes(sb.Layout.TotalBlocks); sizeBytes < need {
		return fmt.Errorf("disk is %d bytes but the superblock says %d blocks (%d bytes): %w",
			sizeBytes, sb.Layout.TotalBlocks, need, ErrTruncated)
	}
	return nil
}
