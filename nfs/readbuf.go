package nfs

import (
	"sync"

	"github.com/hanfs/hanfs/shareddisk"
)

// readHead is the room kept before the data of a pooled READ reply for the
// RPC and READ3resok headers (about 130 bytes): the data starts one disk
// block into the buffer, so that the store reads block-aligned requests from
// the disk straight into the place the reply is sent from.
const readHead = shareddisk.BlockSize

// readBufSize is the size of a pooled READ reply buffer: the header room,
// MaxIO bytes of data and a spare block, since the store reads whole blocks.
const readBufSize = readHead + MaxIO + shareddisk.BlockSize

// readBufs holds aligned READ reply buffers of readBufSize bytes, so that a
// READ allocates (and the runtime zeroes) no 1 MiB buffer per request.
var readBufs = sync.Pool{New: func() any {
	b := shareddisk.AlignedBuf(readBufSize)
	return &b
}}

// getReadBuf returns a pooled READ reply buffer and the function that gives
// it back, to be called once the reply is written (or dropped).
func getReadBuf() ([]byte, func()) {
	bp := readBufs.Get().(*[]byte)
	return *bp, func() { readBufs.Put(bp) }
}
