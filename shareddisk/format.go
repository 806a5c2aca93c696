package shareddisk

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// probeBytes is how much of the start of a disk Format and Probe inspect.
const probeBytes = 1 << 20

// zeroChunk is the size of the writes that Format zeroes regions with.
const zeroChunk = 1 << 20

// FormatOptions tunes Format.
type FormatOptions struct {
	// JournalBlocks is the journal length; 0 picks DefaultJournalBlocks.
	JournalBlocks uint64
	// Label is a free-form name of at most MaxLabelLen bytes of UTF-8.
	Label string
	// Force formats over a hanfs file system or other data.
	Force bool
}

// Format writes a new hanfs region map and superblock to d. It zeroes the
// blocks before the journal, the journal header and the bitmap, but not the
// rest of the journal or the data region, so sparse images stay sparse.
// Unless opt.Force is set it refuses a disk that holds a valid hanfs
// superblock (ErrAlreadyFormatted) or any non-zero byte in its first MiB
// (ErrNotEmpty).
func Format(d Disk, opt FormatOptions) (*Superblock, error) {
	layout, err := ComputeLayout(d.Size(), opt.JournalBlocks)
	if err != nil {
		return nil, fmt.Errorf("format %s (%d bytes): %w", d.Name(), d.Size(), err)
	}
	if len(opt.Label) > MaxLabelLen || !utf8.ValidString(opt.Label) {
		return nil, fmt.Errorf("format %s: label %q must be at most %d bytes of UTF-8", d.Name(), opt.Label, MaxLabelLen)
	}
	if !opt.Force {
		if err := checkFormattable(d); err != nil {
			return nil, err
		}
	}
	sb := &Superblock{
		Version:              FormatVersion,
		BlockSize:            BlockSize,
		Created:              time.Now().UnixNano(),
		MaxNodes:             MaxNodes,
		MailboxBlocksPerNode: MailboxBlocksPerNode,
		Layout:               layout,
		Label:                opt.Label,
	}
	if _, err := rand.Read(sb.UUID[:]); err != nil {
		return nil, fmt.Errorf("format %s: random UUID: %w", d.Name(), err)
	}
	sb.UUID[6] = sb.UUID[6]&0x0f | 0x40 // RFC 4122 version 4
	sb.UUID[8] = sb.UUID[8]&0x3f | 0x80 // RFC 4122 variant
	if _, err := rand.Read(sb.HandleKey[:]); err != nil {
		return nil, fmt.Errorf("format %s: random handle key: %w", d.Name(), err)
	}
	// Invalidate both superblock copies first, so that a crash during format
	// leaves a disk that is not hanfs rather than an old superblock over
	// half-zeroed regions.
	if err := zeroBlocks(d, "superblocks, lease, mailbox and fsinfo", 0, JournalStartBlock); err != nil {
		return nil, err
	}
	if err := d.Flush(); err != nil {
		return nil, fmt.Errorf("format: flush after zeroing blocks 0..%d: %w", JournalStartBlock-1, err)
	}
	if err := zeroBlocks(d, "journal header", layout.JournalStart, 1); err != nil {
		return nil, err
	}
	if err := zeroBlocks(d, "bitmap", layout.BitmapStart, layout.BitmapBlocks); err != nil {
		return nil, err
	}
	if err := WriteSuperblock(d, sb); err != nil {
		return nil, fmt.Errorf("format: %w", err)
	}
	sb.ReadFrom = CopyA
	return sb, nil
}

// checkFormattable refuses a disk that holds a hanfs file system or data.
func checkFormattable(d Disk) error {
	sb, sbErr := ReadSuperblock(d)
	if sbErr == nil {
		return fmt.Errorf("format %s: holds hanfs file system %s (label %q); force to overwrite: %w",
			d.Name(), sb.UUIDString(), sb.Label, ErrAlreadyFormatted)
	}
	if !isSuperblockDefect(sbErr) {
		return fmt.Errorf("format: %w", sbErr)
	}
	empty, err := startIsZero(d)
	if err != nil {
		return fmt.Errorf("format: %w", err)
	}
	if !empty {
		what := "data"
		if !errors.Is(sbErr, ErrNotHanfs) {
			what = "a damaged hanfs superblock"
		}
		return fmt.Errorf("format %s: the first MiB holds %s; force to overwrite: %w", d.Name(), what, ErrNotEmpty)
	}
	return nil
}

// isSuperblockDefect reports whether err from ReadSuperblock describes the
// disk's contents rather than a failed I/O.
func isSuperblockDefect(err error) bool {
	return errors.Is(err, ErrNotHanfs) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrTruncated)
}

// startIsZero reports whether the first MiB of d (or all of a smaller d) is zero.
func startIsZero(d Disk) (bool, error) {
	n := min(int64(probeBytes), d.Size())
	buf := AlignedBuf(int(n))
	if _, err := d.ReadAt(buf, 0); err != nil {
		return false, fmt.Errorf("read first %d bytes: %w", n, err)
	}
	for _, c := range buf {
		if c != 0 {
			return false, nil
		}
	}
	return true, nil
}

// zeroBlocks writes zeroes to count blocks from block start, in large writes.
func zeroBlocks(d Disk, region string, start, count uint64) error {
	zero := AlignedBuf(zeroChunk)
	for done := uint64(0); done < count; {
		n := min(count-done, zeroChunk/BlockSize)
		if _, err := d.WriteAt(zero[:n*BlockSize], Bytes(start+done)); err != nil {
			return fmt.Errorf("format: zero %s (blocks %d..%d): %w", region, start, start+count-1, err)
		}
		done += n
	}
	return nil
}
