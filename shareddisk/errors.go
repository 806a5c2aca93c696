package shareddisk

import "errors"

// Sentinel errors; match them with errors.Is.
var (
	// ErrUnaligned reports an offset or length that is not a multiple of BlockSize.
	ErrUnaligned = errors.New("offset or length not a multiple of 4096")
	// ErrOutOfRange reports an I/O past the end of the disk.
	ErrOutOfRange = errors.New("range beyond end of disk")
	// ErrClosed reports use of a closed disk.
	ErrClosed = errors.New("disk is closed")
	// ErrReadOnly reports a write to a disk opened read-only.
	ErrReadOnly = errors.New("disk is opened read-only")
	// ErrDirectIOUnsupported reports a file system that refuses O_DIRECT.
	ErrDirectIOUnsupported = errors.New("file system does not support O_DIRECT")
	// ErrNotHanfs reports a disk whose superblock copies both lack the hanfs magic.
	ErrNotHanfs = errors.New("not a hanfs disk")
	// ErrCorrupt reports a superblock with a bad checksum or an invalid field.
	ErrCorrupt = errors.New("corrupt superblock")
	// ErrTruncated reports a disk smaller than its superblock says.
	ErrTruncated = errors.New("disk smaller than the superblock says")
	// ErrTooSmall reports a disk below MinSize.
	ErrTooSmall = errors.New("disk too small")
	// ErrAlreadyFormatted reports a Format over a valid hanfs disk without Force.
	ErrAlreadyFormatted = errors.New("disk already holds a hanfs file system")
	// ErrNotEmpty reports a Format over a disk that holds other data, without Force.
	ErrNotEmpty = errors.New("disk is not empty")
)
