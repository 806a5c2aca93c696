package shareddisk

import "fmt"

// Fixed region addresses and sizes, in blocks, of format version 1.
const (
	// MinSize is the smallest disk, in bytes, that Format accepts.
	MinSize = 64 << 20
	// SuperblockABlock is the block of superblock copy A.
	SuperblockABlock = 0
	// SuperblockBBlock is the block of superblock copy B.
	SuperblockBBlock = 1
	// LeaseStartBlock is the first block of the lease area.
	LeaseStartBlock = 16
	// LeaseBlocks is the length of the lease area.
	LeaseBlocks = 32
	// MaxNodes is the number of mailbox slots, so the most nodes a disk serves.
	MaxNodes = 16
	// MailboxBlocksPerNode is the length of one node's mailbox slot.
	MailboxBlocksPerNode = 4
	// MailboxStartBlock is the first block of the mailbox area.
	MailboxStartBlock = LeaseStartBlock + LeaseBlocks
	// MailboxBlocks is the length of the mailbox area.
	MailboxBlocks = MaxNodes * MailboxBlocksPerNode
	// FSInfoBlock is the home block of the file-system info (owned by fsstore).
	FSInfoBlock = MailboxStartBlock + MailboxBlocks
	// JournalStartBlock is the first block of the journal (its header).
	JournalStartBlock = 128
	// MinJournalBlocks is the smallest journal Format accepts.
	MinJournalBlocks = 256
	// DefaultMinJournalBlocks is the smallest default journal (4 MiB).
	DefaultMinJournalBlocks = 1024
	// DefaultMaxJournalBlocks is the largest default journal (64 MiB).
	DefaultMaxJournalBlocks = 16384
	// BitmapHeaderSize is the header, owned by fsstore, of each bitmap block.
	BitmapHeaderSize = 32
	// BitsPerBitmapBlock is the number of blocks one bitmap block describes.
	BitsPerBitmapBlock = (BlockSize - BitmapHeaderSize) * 8
)

// Layout is the region map of a hanfs disk. Every field is a block number or
// a count of blocks of BlockSize bytes. Bit i of the bitmap describes block
// DataStart+i.
type Layout struct {
	TotalBlocks   uint64 // blocks on the disk
	SuperblockA   uint64 // superblock copy A
	SuperblockB   uint64 // superblock copy B
	LeaseStart    uint64 // first block of the lease area (fencing)
	LeaseBlocks   uint64 // length of the lease area
	MailboxStart  uint64 // first block of the mailbox area (heartbeat)
	MailboxBlocks uint64 // length of the mailbox area
	FSInfo        uint64 // home block of the file-system info (fsstore)
	JournalStart  uint64 // first block of the journal; it holds the journal header
	JournalBlocks uint64 // length of the journal, header included
	BitmapStart   uint64 // first block of the allocation bitmap
	BitmapBlocks  uint64 // length of the bitmap
	DataStart     uint64 // first data block
	DataBlocks    uint64 // data blocks, up to the end of the disk
}

// DefaultJournalBlocks returns the journal length Format picks for a disk of
// sizeBytes: 1/64 of the disk, clamped to [DefaultMinJournalBlocks,
// DefaultMaxJournalBlocks].
func DefaultJournalBlocks(sizeBytes int64) uint64 {
	if sizeBytes < 0 {
		sizeBytes = 0
	}
	j := uint64(sizeBytes) / 64 / BlockSize
	return min(max(j, DefaultMinJournalBlocks), DefaultMaxJournalBlocks)
}

// ComputeLayout returns the region map for a disk of sizeBytes (rounded down
// to whole blocks) with a journal of journalBlocks, or the default journal
// when journalBlocks is 0.
func ComputeLayout(sizeBytes int64, journalBlocks uint64) (Layout, error) {
	if sizeBytes < MinSize {
		return Layout{}, fmt.Errorf("size %d bytes is below the minimum of %d bytes (64 MiB): %w", sizeBytes, MinSize, ErrTooSmall)
	}
	if journalBlocks == 0 {
		journalBlocks = DefaultJournalBlocks(sizeBytes)
	}
	if journalBlocks < MinJournalBlocks {
		return Layout{}, fmt.Errorf("journal of %d blocks is below the minimum of %d blocks", journalBlocks, MinJournalBlocks)
	}
	total := uint64(sizeBytes) / BlockSize
	// Leave at least one bitmap block and one data block after the journal.
	if journalBlocks > total-JournalStartBlock-2 {
		return Layout{}, fmt.Errorf("journal of %d blocks does not fit a disk of %d blocks", journalBlocks, total)
	}
	l := Layout{
		TotalBlocks:   total,
		SuperblockA:   SuperblockABlock,
		SuperblockB:   SuperblockBBlock,
		LeaseStart:    LeaseStartBlock,
		LeaseBlocks:   LeaseBlocks,
		MailboxStart:  MailboxStartBlock,
		MailboxBlocks: MailboxBlocks,
		FSInfo:        FSInfoBlock,
		JournalStart:  JournalStartBlock,
		JournalBlocks: journalBlocks,
		BitmapStart:   JournalStartBlock + journalBlocks,
	}
	l.BitmapBlocks = bitmapBlocksFor(total - l.BitmapStart)
	l.DataStart = l.BitmapStart + l.BitmapBlocks
	if l.DataStart >= total {
		return Layout{}, fmt.Errorf("journal of %d blocks leaves no data blocks on a disk of %d blocks", journalBlocks, total)
	}
	l.DataBlocks = total - l.DataStart
	return l, nil
}

// bitmapBlocksFor returns how many bitmap blocks describe n blocks.
func bitmapBlocksFor(n uint64) uint64 {
	return n/BitsPerBitmapBlock + min(n%BitsPerBitmapBlock, 1)
}

// Validate checks that the regions are those of format version 1: in order,
// non-overlapping, inside the disk, with the bitmap sized for the rest of it.
func (l Layout) Validate() error {
	fixed := []struct {
		name      string
		got, want uint64
	}{
		{"superblock A block", l.SuperblockA, SuperblockABlock},
		{"superblock B block", l.SuperblockB, SuperblockBBlock},
		{"lease start", l.LeaseStart, LeaseStartBlock},
		{"lease blocks", l.LeaseBlocks, LeaseBlocks},
		{"mailbox start", l.MailboxStart, MailboxStartBlock},
		{"mailbox blocks", l.MailboxBlocks, MailboxBlocks},
		{"fsinfo block", l.FSInfo, FSInfoBlock},
		{"journal start", l.JournalStart, JournalStartBlock},
	}
	for _, f := range fixed {
		if f.got != f.want {
			return fmt.Errorf("layout: %s is %d, want %d", f.name, f.got, f.want)
		}
	}
	if l.TotalBlocks < MinSize/BlockSize {
		return fmt.Errorf("layout: %d blocks is below the minimum of %d", l.TotalBlocks, MinSize/BlockSize)
	}
	if l.TotalBlocks > 1<<50 {
		return fmt.Errorf("layout: %d blocks is implausibly large", l.TotalBlocks)
	}
	if l.JournalBlocks < MinJournalBlocks || l.JournalBlocks > l.TotalBlocks {
		return fmt.Errorf("layout: journal of %d blocks is outside [%d, %d]", l.JournalBlocks, MinJournalBlocks, l.TotalBlocks)
	}
	if l.BitmapStart != l.JournalStart+l.JournalBlocks {
		return fmt.Errorf("layout: bitmap starts at block %d, not right after the journal (block %d)", l.BitmapStart, l.JournalStart+l.JournalBlocks)
	}
	if l.BitmapStart >= l.TotalBlocks {
		return fmt.Errorf("layout: bitmap start %d is past the end of the disk (%d blocks)", l.BitmapStart, l.TotalBlocks)
	}
	if want := bitmapBlocksFor(l.TotalBlocks - l.BitmapStart); l.BitmapBlocks != want {
		return fmt.Errorf("layout: bitmap is %d blocks, want %d", l.BitmapBlocks, want)
	}
	if l.DataStart != l.BitmapStart+l.BitmapBlocks {
		return fmt.Errorf("layout: data starts at block %d, not right after the bitmap (block %d)", l.DataStart, l.BitmapStart+l.BitmapBlocks)
	}
	if l.DataStart >= l.TotalBlocks || l.DataBlocks != l.TotalBlocks-l.DataStart {
		return fmt.Errorf("layout: data region %d+%d does not end at the end of the disk (%d blocks)", l.DataStart, l.DataBlocks, l.TotalBlocks)
	}
	return nil
}

// MailboxSlot returns the first block of node's mailbox slot; the slot is
// MailboxBlocksPerNode blocks long.
func (l Layout) MailboxSlot(node int) (uint64, error) {
	if node < 0 || node >= MaxNodes {
		return 0, fmt.Errorf("mailbox slot: node %d is outside [0, %d)", node, MaxNodes)
	}
	return l.MailboxStart + uint64(node)*MailboxBlocksPerNode, nil
}

// Bytes returns block number b as a byte offset.
func Bytes(b uint64) int64 { return int64(b) * BlockSize }
