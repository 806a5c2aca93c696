package shareddisk

import (
	"bytes"
	"errors"
	"fmt"
)

// ReadSuperblock reads both superblock copies and returns copy A if it is
// valid and fits the disk, else copy B. The result's ReadFrom and
// OtherCopyErr fields say which copy was used and what is wrong with the
// other, so that the caller can warn. When neither copy is usable the error
// names the disk and wraps ErrTruncated, ErrNotHanfs or ErrCorrupt.
func ReadSuperblock(d Disk) (*Superblock, error) {
	if d.Size() < 2*BlockSize {
		return nil, fmt.Errorf("%s: superblock at block 0 and block 1: disk is only %d bytes: %w", d.Name(), d.Size(), ErrNotHanfs)
	}
	buf := AlignedBuf(2 * BlockSize)
	if _, err := d.ReadAt(buf, 0); err != nil {
		return nil, fmt.Errorf("read superblock at block 0 and block 1: %w", err)
	}
	recA, recB := buf[:SuperblockSize], buf[BlockSize:BlockSize+SuperblockSize]
	sbA, errA := decodeForDisk(recA, d.Size())
	sbB, errB := decodeForDisk(recB, d.Size())
	switch {
	case errA == nil:
		sbA.ReadFrom = CopyA
		if errB != nil {
			sbA.OtherCopyErr = fmt.Errorf("%s: superblock copy B at block 1: %w", d.Name(), errB)
		} else if !bytes.Equal(recA, recB) {
			sbA.OtherCopyErr = fmt.Errorf("%s: superblock copy B at block 1 differs from copy A", d.Name())
		}
		return sbA, nil
	case errB == nil:
		sbB.ReadFrom = CopyB
		sbB.OtherCopyErr = fmt.Errorf("%s: superblock copy A at block 0: %w", d.Name(), errA)
		return sbB, nil
	}
	var sentinel error
	switch {
	case errors.Is(errA, ErrTruncated) || errors.Is(errB, ErrTruncated):
		sentinel = ErrTruncated
	case errors.Is(errA, ErrNotHanfs) && errors.Is(errB, ErrNotHanfs):
		return nil, fmt.Errorf("%s: superblock at block 0 and block 1: no hanfs magic in either copy: %w", d.Name(), ErrNotHanfs)
	default:
		sentinel = ErrCorrupt
	}
	return nil, fmt.Errorf("%s: superblock at block 0 and block 1: copy A: %v; copy B: %v: %w", d.Name(), errA, errB, sentinel)
}

// decodeForDisk decodes a superblock record and checks it fits a disk of
// sizeBytes.
func decodeForDisk(rec []byte, sizeBytes int64) (*Superblock, error) {
	sb, err := DecodeSuperblock(rec)
	if err != nil {
		return nil, err
	}
	if err := sb.CheckDiskSize(sizeBytes); err != nil {
		return nil, err
	}
	return sb, nil
}

// WriteSuperblock writes sb to copy B, flushes, then to copy A and flushes,
// so that a crash leaves at least one valid copy. It also repairs a bad copy.
func WriteSuperblock(d Disk, sb *Superblock) error {
	rec, err := EncodeSuperblock(sb)
	if err != nil {
		return fmt.Errorf("%s: %w", d.Name(), err)
	}
	buf := AlignedBuf(BlockSize)
	copy(buf, rec)
	for _, c := range []struct {
		name  string
		block uint64
	}{{"B", SuperblockBBlock}, {"A", SuperblockABlock}} {
		if _, err := d.WriteAt(buf, Bytes(c.block)); err != nil {
			return fmt.Errorf("write superblock copy %s at block %d: %w", c.name, c.block, err)
		}
		if err := d.Flush(); err != nil {
			return fmt.Errorf("flush superblock copy %s at block %d: %w", c.name, c.block, err)
		}
	}
	return nil
}
