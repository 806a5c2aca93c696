// Package journal is the redo log of a hanfs file system: a circular region of
// the shared disk that holds whole-block images of metadata blocks, grouped in
// transactions. A transaction is durable once its blocks are in the log and the
// disk is flushed; replay copies the images of every complete transaction after
// the checkpointed tail to their home addresses.
//
// Region layout (block numbers relative to the region start):
//
//	0        header: a metadata block (block.TypeJournalHdr) holding the tail
//	1..n-1   the log: transactions, one after another, wrapping to position 0
//
// Header body (little endian, after the 32-byte block header):
//
//	[32:40) tail txid: the first transaction not yet checkpointed
//	[40:48) tail position: log position of that transaction's first block
//	[48:56) log length in blocks (n-1), a sanity check
//
// A transaction at log position p with k data blocks has d = ceil(k/HomesPerDesc)
// descriptor blocks followed by the k block images, written contiguously (a
// transaction that would not fit before the end of the log starts at position
// 0 instead). Descriptor body:
//
//	[32:36) k, the number of block images in the transaction
//	[36:38) d, the number of descriptor blocks
//	[38:40) index of this descriptor (0..d-1)
//	[40:44) crc32c of all d descriptors' home lists and all k images, in order
//	[44:48) reserved
//	[48:..) home block numbers (uint64) of images index*HomesPerDesc...
//
// Every descriptor is sealed with its own log address and the txid; every image
// is a sealed metadata block whose header names its home. Replay starts at the
// tail and accepts transaction t only if its descriptors and the checksum are
// intact and its txid is exactly t; the first transaction that fails ends the
// log. Txids grow forever, so a stale transaction from an earlier lap of the log
// can never be mistaken for the next one.
package journal

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/hanfs/hanfs/fsstore/block"
	"github.com/hanfs/hanfs/shareddisk"
)

// HomesPerDesc is the number of home addresses one descriptor block holds.
const HomesPerDesc = (block.Size - 48) / 8

// MinBlocks is the smallest journal region (header included).
const MinBlocks = 64

// ErrFull is returned by Append when the log has no room for the transaction.
var ErrFull = errors.New("journal full")

// ErrCorrupt reports an unreadable journal header.
var ErrCorrupt = errors.New("journal header corrupt")

// Image is one metadata block image in a transaction.
type Image struct {
	Home uint64 // home block number
	Data []byte // block.Size bytes, already sealed
}

type txRec struct {
	txid uint64
	pos  uint64 // log position of the first descriptor
	pad  uint64 // blocks skipped at the end of the log before it
	need uint64 // blocks it occupies from pos
}

// Log is an open journal region. It is not safe for concurrent use: the
// transaction layer serialises Append and Checkpointed.
type Log struct {
	d        shareddisk.Disk
	start    uint64 // absolute block number of the header
	n        uint64 // log length in blocks (region size - 1)
	tailTx   uint64
	tailPos  uint64
	headTx   uint64 // next txid to write
	headPos  uint64 // next free log position
	used     uint64 // blocks between tail and head, padding included
	live     []txRec
	scratch  []byte
	hdrBuf   []byte
	replayed bool
}

func (l *Log) abs(pos uint64) uint64 { return l.start + 1 + pos }

func (l *Log) where() string {
	return fmt.Sprintf("%s: journal (blocks %d..%d)", l.d.Name(), l.start, l.start+l.n)
}

// Format writes an empty journal header to the region [start, start+blocks).
func Format(d shareddisk.Disk, start, blocks uint64) error {
	if blocks < MinBlocks {
		return fmt.Errorf("%s: journal of %d blocks is smaller than the minimum %d", d.Name(), blocks, MinBlocks)
	}
	// Start the txids at a random point: the log may still hold valid
	// transactions of a file system formatted earlier on the same disk, and
	// replay must never take them for this one's.
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return fmt.Errorf("%s: journal: random start: %w", d.Name(), err)
	}
	first := binary.LittleEndian.Uint64(r[:])>>2 | 1<<32
	l := &Log{d: d, start: start, n: blocks - 1, tailTx: first, hdrBuf: shareddisk.AlignedBuf(block.Size)}
	if err := l.writeHeader(); err != nil {
		return err
	}
	return d.Flush()
}

// Open reads the journal header of the region [start, start+blocks). Call
// Replay before appending.
func Open(d shareddisk.Disk, start, blocks uint64) (*Log, error) {
	if blocks < MinBlocks {
		return nil, fmt.Errorf("%s: journal of %d blocks is smaller than the minimum %d", d.Name(), blocks, MinBlocks)
	}
	l := &Log{d: d, start: start, n: blocks - 1, hdrBuf: shareddisk.AlignedBuf(block.Size)}
	buf := l.hdrBuf
	if _, err := d.ReadAt(buf, int64(start)*block.Size); err != nil {
		return nil, fmt.Errorf("%s: read header: %w", l.where(), err)
	}
	if err := block.Verify(buf, start, block.TypeJournalHdr); err != nil {
		return nil, fmt.Errorf("%s: header: %w: %w", l.where(), ErrCorrupt, err)
	}
	l.tailTx = binary.LittleEndian.Uint64(buf[32:40])
	l.tailPos = binary.LittleEndian.Uint64(buf[40:48])
	if n := binary.LittleEndian.Uint64(buf[48:56]); n != l.n {
		return nil, fmt.Errorf("%s: header: %w: log length %d, region says %d", l.where(), ErrCorrupt, n, l.n)
	}
	if l.tailPos >= l.n || l.tailTx == 0 {
		return nil, fmt.Errorf("%s: header: %w: tail %d at position %d", l.where(), ErrCorrupt, l.tailTx, l.tailPos)
	}
	l.headTx, l.headPos = l.tailTx, l.tailPos
	return l, nil
}

func (l *Log) writeHeader() error {
	buf := l.hdrBuf
	block.Init(buf, block.TypeJournalHdr)
	binary.LittleEndian.PutUint64(buf[32:40], l.tailTx)
	binary.LittleEndian.PutUint64(buf[40:48], l.tailPos)
	binary.LittleEndian.PutUint64(buf[48:56], l.n)
	block.Seal(buf, l.start, l.tailTx)
	if _, err := l.d.WriteAt(buf, int64(l.start)*block.Size); err != nil {
		return fmt.Errorf("%s: write header: %w", l.where(), err)
	}
	return nil
}

// descCount returns the number of descriptor blocks for k images.
func descCount(k int) uint64 { return uint64((k + HomesPerDesc - 1) / HomesPerDesc) }

// Blocks returns the log blocks a transaction of k images occupies.
func Blocks(k int) uint64 { return descCount(k) + uint64(k) }

// Capacity returns the log length in blocks.
func (l *Log) Capacity() uint64 { return l.n }

// Used returns the log blocks holding transactions not yet checkpointed.
func (l *Log) Used() uint64 { return l.used }

// Fits reports whether a transaction of k images can be appended now.
func (l *Log) Fits(k int) bool {
	need := Blocks(k)
	if need > l.n {
		return false
	}
	pad := uint64(0)
	if l.headPos+need > l.n {
		pad = l.n - l.headPos
	}
	return l.used+pad+need <= l.n
}

// NextTxID returns the id the next appended transaction gets.
func (l *Log) NextTxID() uint64 { return l.headTx }

// TailTxID returns the oldest transaction that replay would apply.
func (l *Log) TailTxID() uint64 { return l.tailTx }

func (l *Log) buffer(nb uint64) []byte {
	if uint64(len(l.scratch)) < nb*block.Size {
		l.scratch = shareddisk.AlignedBuf(int(nb * block.Size))
	}
	return l.scratch[:nb*block.Size]
}

// Append writes one transaction holding imgs to the log and returns its txid.
// It does not flush: the transaction is durable after the caller's next
// successful disk Flush. It returns ErrFull when Fits would say no.
func (l *Log) Append(imgs []Image) (uint64, error) {
	if !l.replayed {
		return 0, fmt.Errorf("%s: append before replay", l.where())
	}
	k := len(imgs)
	if k == 0 {
		return 0, fmt.Errorf("%s: empty transaction", l.where())
	}
	if !l.Fits(k) {
		return 0, fmt.Errorf("%s: transaction of %d blocks: %w (%d of %d blocks in use)", l.where(), k, ErrFull, l.used, l.n)
	}
	d := descCount(k)
	need := d + uint64(k)
	pos, pad := l.headPos, uint64(0)
	if pos+need > l.n {
		pad = l.n - pos
		pos = 0
	}
	txid := l.headTx
	buf := l.buffer(need)
	for i := range imgs {
		copy(buf[(d+uint64(i))*block.Size:], imgs[i].Data[:block.Size])
	}
	for di := uint64(0); di < d; di++ {
		b := buf[di*block.Size : (di+1)*block.Size]
		block.Init(b, block.TypeJournalTx)
		binary.LittleEndian.PutUint32(b[32:36], uint32(k))
		binary.LittleEndian.PutUint16(b[36:38], uint16(d))
		binary.LittleEndian.PutUint16(b[38:40], uint16(di))
		for j := 0; j < HomesPerDesc; j++ {
			idx := int(di)*HomesPerDesc + j
			if idx >= k {
				break
			}
			binary.LittleEndian.PutUint64(b[48+8*j:], imgs[idx].Home)
		}
	}
	sum := txChecksum(buf, d, k)
	for di := uint64(0); di < d; di++ {
		b := buf[di*block.Size : (di+1)*block.Size]
		binary.LittleEndian.PutUint32(b[40:44], sum)
		block.Seal(b, l.abs(pos+di), txid)
	}
	if _, err := l.d.WriteAt(buf, int64(l.abs(pos))*block.Size); err != nil {
		return 0, fmt.Errorf("%s: write transaction %d at position %d: %w", l.where(), txid, pos, err)
	}
	l.live = append(l.live, txRec{txid: txid, pos: pos, pad: pad, need: need})
	l.used += pad + need
	l.headTx++
	l.headPos = pos + need
	if l.headPos == l.n {
		l.headPos = 0
	}
	return txid, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// txChecksum covers the home lists of all descriptors and all images.
func txChecksum(buf []byte, d uint64, k int) uint32 {
	var sum uint32
	for di := uint64(0); di < d; di++ {
		b := buf[di*block.Size:]
		cnt := k - int(di)*HomesPerDesc
		if cnt > HomesPerDesc {
			cnt = HomesPerDesc
		}
		sum = crc32.Update(sum, castagnoli, b[48:48+8*cnt])
	}
	return crc32.Update(sum, castagnoli, buf[d*block.Size:(d+uint64(k))*block.Size])
}

// Replay applies every complete transaction after the tail, in order, by
// calling apply for each image, and positions the log after the last one. It
// returns the number of transactions replayed. apply must copy img if it keeps
// it. Replay does not write the header: call Checkpointed once the images are
// durable at home.
func (l *Log) Replay(apply func(home uint64, img []byte) error) (int, error) {
	count := 0
	pos := l.tailPos
	one := shareddisk.AlignedBuf(block.Size)
	for {
		k, d, at, ok, err := l.probe(one, pos, l.headTx)
		if err != nil {
			return count, err
		}
		if !ok {
			break
		}
		need := d + uint64(k)
		if l.used+need+padding(pos, at, l.n) > l.n {
			break // cannot be ours: it would overlap the tail
		}
		buf := l.buffer(need)
		if _, err := l.d.ReadAt(buf, int64(l.abs(at))*block.Size); err != nil {
			return count, fmt.Errorf("%s: read transaction %d: %w", l.where(), l.headTx, err)
		}
		if !l.validTx(buf, at, l.headTx, k, d) {
			break
		}
		for i := 0; i < k; i++ {
			di := uint64(i / HomesPerDesc)
			home := binary.LittleEndian.Uint64(buf[di*block.Size+48+8*uint64(i%HomesPerDesc):])
			img := buf[(d+uint64(i))*block.Size : (d+uint64(i)+1)*block.Size]
			if err := block.Verify(img, home, block.TypeFree); err != nil {
				return count, fmt.Errorf("%s: transaction %d image %d: %w", l.where(), l.headTx, i, err)
			}
			if err := apply(home, img); err != nil {
				return count, fmt.Errorf("%s: replay transaction %d: %w", l.where(), l.headTx, err)
			}
		}
		pad := padding(pos, at, l.n)
		l.live = append(l.live, txRec{txid: l.headTx, pos: at, pad: pad, need: need})
		l.used += pad + need
		l.headTx++
		pos = at + need
		if pos == l.n {
			pos = 0
		}
		count++
	}
	l.headPos = pos
	l.replayed = true
	return count, nil
}

func padding(pos, at, n uint64) uint64 {
	if at == pos {
		return 0
	}
	return n - pos
}

// probe looks for the first descriptor of transaction txid at pos, or at
// position 0 when the transaction would have wrapped.
func (l *Log) probe(one []byte, pos, txid uint64) (k int, d uint64, at uint64, ok bool, err error) {
	cands := []uint64{pos}
	if pos != 0 {
		cands = append(cands, 0)
	}
	for _, cand := range cands {
		if _, err := l.d.ReadAt(one, int64(l.abs(cand))*block.Size); err != nil {
			return 0, 0, 0, false, fmt.Errorf("%s: read position %d: %w", l.where(), cand, err)
		}
		k, d, ok := parseDesc(one, l.abs(cand), txid, 0)
		if !ok {
			continue
		}
		need := d + uint64(k)
		// At pos it must fit before the end; at 0 it must be one that did not.
		if cand+need <= l.n && (cand == pos || pos+need > l.n) {
			return k, d, cand, true, nil
		}
	}
	return 0, 0, 0, false, nil
}

func parseDesc(b []byte, abs, txid uint64, index uint64) (int, uint64, bool) {
	if block.Verify(b, abs, block.TypeJournalTx) != nil || block.TxID(b) != txid {
		return 0, 0, false
	}
	k := int(binary.LittleEndian.Uint32(b[32:36]))
	d := uint64(binary.LittleEndian.Uint16(b[36:38]))
	if k <= 0 || d != descCount(k) || uint64(binary.LittleEndian.Uint16(b[38:40])) != index {
		return 0, 0, false
	}
	return k, d, true
}

func (l *Log) validTx(buf []byte, at, txid uint64, k int, d uint64) bool {
	var sum uint32
	for di := uint64(0); di < d; di++ {
		b := buf[di*block.Size : (di+1)*block.Size]
		k2, d2, ok := parseDesc(b, l.abs(at+di), txid, di)
		if !ok || k2 != k || d2 != d {
			return false
		}
		if di == 0 {
			sum = binary.LittleEndian.Uint32(b[40:44])
		} else if binary.LittleEndian.Uint32(b[40:44]) != sum {
			return false
		}
	}
	return txChecksum(buf, d, k) == sum
}

// Checkpointed records that every transaction before txid is durable at its
// home, so the log space they use can be reused. It writes the header and
// flushes. txid may be at most NextTxID().
func (l *Log) Checkpointed(txid uint64) error {
	if txid > l.headTx || txid < l.tailTx {
		return fmt.Errorf("%s: checkpoint to %d outside [%d, %d]", l.where(), txid, l.tailTx, l.headTx)
	}
	drop := 0
	for drop < len(l.live) && l.live[drop].txid < txid {
		l.used -= l.live[drop].pad + l.live[drop].need
		drop++
	}
	l.live = append(l.live[:0], l.live[drop:]...)
	l.tailTx = txid
	if len(l.live) > 0 {
		// The tail starts where the first live transaction's padding starts.
		first := l.live[0]
		l.tailPos = first.pos
		if first.pad > 0 {
			l.tailPos = l.n - first.pad
		}
	} else {
		l.tailPos = l.headPos
		l.used = 0
	}
	if err := l.writeHeader(); err != nil {
		return err
	}
	if err := l.d.Flush(); err != nil {
		return fmt.Errorf("%s: flush header: %w", l.where(), err)
	}
	return nil
}
