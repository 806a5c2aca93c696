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
// A transaction at log position p with k metadata images and c data checksums
// has d = ceil(k/HomesPerDesc) descriptor blocks, then s = ceil(c/SumsPerBlock)
// data-checksum blocks, then the k block images, written contiguously (a
// transaction that would not fit before the end of the log starts at position
// 0 instead). Descriptor body:
//
//	[32:36) k, the number of block images in the transaction
//	[36:38) d, the number of descriptor blocks
//	[38:40) index of this descriptor (0..d-1)
//	[40:44) crc32c of all d descriptors' home lists, all c checksum entries
//	        and all k images, in order
//	[44:48) c, the number of data checksums (0 in journals written before
//	        data checksums existed, where this field was reserved and zero)
//	[48:..) home block numbers (uint64) of images index*HomesPerDesc...;
//	        with bit 63 (RawFlag) set, the image is raw file data journaled
//	        for its home (Image.Raw), not a sealed metadata block
//
// Data-checksum block body (block.TypeJournalSums), entries of 16 bytes:
//
//	[0:8)   first disk block of a data extent the transaction made reachable
//	[8:12)  its length in blocks
//	[12:16) crc32c of its contents
//
// Every descriptor and checksum block is sealed with its own log address and
// the txid; every image is a sealed metadata block whose header names its home,
// or a raw file data block (RawFlag), which only the transaction's checksum
// covers. Replay copies both kinds home. Small writes journal their data that
// way: one contiguous journal write and one flush, where writing the data at
// its home as well would be a second write elsewhere on the disk; the
// transaction layer writes the blocks home at its next checkpoint.
// Replay starts at the tail and accepts transaction t only if its descriptors
// and the checksum are intact and its txid is exactly t; the first transaction
// that fails ends the log. Txids grow forever, so a stale transaction from an
// earlier lap of the log can never be mistaken for the next one.
//
// Data checksums let a commit write file data and the journal together and
// flush once (instead of flushing the data before writing the journal). The
// data of the newest transaction may then be missing after a crash while its
// journal blocks are intact, so replay checks the data checksums of the LAST
// valid transaction in the log and drops it on a mismatch: it was never
// acknowledged, since its flush did not complete. Earlier transactions are not
// checked and need not be: the transaction layer appends a transaction only
// after the previous one's flush has returned, so a later transaction in the
// log proves the earlier one's data was flushed (and its blocks may since have
// been overwritten in place). The transaction layer keeps the matching rule:
// no in-place write to a block whose checksum is in a transaction that could
// still be the last one on the disk.
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

// SumsPerBlock is the number of data checksums one checksum block holds.
const SumsPerBlock = (block.Size - block.HeaderSize) / 16

// maxSums bounds the data checksums of one transaction (a sanity limit for
// replay; the transaction layer never comes near it).
const maxSums = 1 << 20

// MinBlocks is the smallest journal region (header included).
const MinBlocks = 64

// ErrFull is returned by Append when the log has no room for the transaction.
var ErrFull = errors.New("journal full")

// ErrCorrupt reports an unreadable journal header.
var ErrCorrupt = errors.New("journal header corrupt")

// Image is one block image in a transaction.
type Image struct {
	Home uint64 // home block number
	Data []byte // block.Size bytes, sealed unless Raw
	// Raw marks file data journaled for its home: not a sealed block.
	Raw bool
}

// RawFlag marks, in a descriptor's home list, an image that is raw file data.
const RawFlag = 1 << 63

// DataSum is the checksum of one data extent that a transaction makes
// reachable: N blocks from disk block Start.
type DataSum struct {
	Start uint64
	N     uint32
	CRC   uint32
}

// Checksum returns the crc32c a DataSum holds for data.
func Checksum(data []byte) uint32 { return block.Checksum(data) }

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
	dropped  uint64 // txid Replay dropped for missing data, or 0
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

// sumCount returns the number of checksum blocks for c data checksums.
func sumCount(c int) uint64 { return uint64((c + SumsPerBlock - 1) / SumsPerBlock) }

// Blocks returns the log blocks a transaction of k images and c data
// checksums occupies.
func Blocks(k, c int) uint64 { return descCount(k) + sumCount(c) + uint64(k) }

// Capacity returns the log length in blocks.
func (l *Log) Capacity() uint64 { return l.n }

// Used returns the log blocks holding transactions not yet checkpointed.
func (l *Log) Used() uint64 { return l.used }

// Fits reports whether a transaction of k images and c data checksums can be
// appended now.
func (l *Log) Fits(k, c int) bool {
	need := Blocks(k, c)
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

// Append writes one transaction holding imgs and the checksums of the data
// extents it makes reachable, and returns its txid. It does not flush: the
// transaction is durable after the caller's next successful disk Flush. It
// returns ErrFull when Fits would say no.
func (l *Log) Append(imgs []Image, sums []DataSum) (uint64, error) {
	if !l.replayed {
		return 0, fmt.Errorf("%s: append before replay", l.where())
	}
	k, c := len(imgs), len(sums)
	if k == 0 {
		return 0, fmt.Errorf("%s: empty transaction", l.where())
	}
	if c > maxSums {
		return 0, fmt.Errorf("%s: transaction with %d data checksums (at most %d)", l.where(), c, maxSums)
	}
	for _, im := range imgs {
		if im.Home&RawFlag != 0 {
			return 0, fmt.Errorf("%s: image home %#x out of range", l.where(), im.Home)
		}
	}
	if !l.Fits(k, c) {
		return 0, fmt.Errorf("%s: transaction of %d blocks: %w (%d of %d blocks in use)", l.where(), k, ErrFull, l.used, l.n)
	}
	d, s := descCount(k), sumCount(c)
	need := d + s + uint64(k)
	pos, pad := l.headPos, uint64(0)
	if pos+need > l.n {
		pad = l.n - pos
		pos = 0
	}
	txid := l.headTx
	buf := l.buffer(need)
	for i := range imgs {
		copy(buf[(d+s+uint64(i))*block.Size:], imgs[i].Data[:block.Size])
	}
	for di := uint64(0); di < d; di++ {
		b := buf[di*block.Size : (di+1)*block.Size]
		block.Init(b, block.TypeJournalTx)
		binary.LittleEndian.PutUint32(b[32:36], uint32(k))
		binary.LittleEndian.PutUint16(b[36:38], uint16(d))
		binary.LittleEndian.PutUint16(b[38:40], uint16(di))
		binary.LittleEndian.PutUint32(b[44:48], uint32(c))
		for j := 0; j < HomesPerDesc; j++ {
			idx := int(di)*HomesPerDesc + j
			if idx >= k {
				break
			}
			home := imgs[idx].Home
			if imgs[idx].Raw {
				home |= RawFlag
			}
			binary.LittleEndian.PutUint64(b[48+8*j:], home)
		}
	}
	for si := uint64(0); si < s; si++ {
		b := buf[(d+si)*block.Size : (d+si+1)*block.Size]
		block.Init(b, block.TypeJournalSums)
		for j := 0; j < SumsPerBlock; j++ {
			idx := int(si)*SumsPerBlock + j
			if idx >= c {
				break
			}
			e := b[block.HeaderSize+16*j:]
			binary.LittleEndian.PutUint64(e[0:8], sums[idx].Start)
			binary.LittleEndian.PutUint32(e[8:12], sums[idx].N)
			binary.LittleEndian.PutUint32(e[12:16], sums[idx].CRC)
		}
	}
	sum := txChecksum(buf, d, s, k, c)
	for di := uint64(0); di < d; di++ {
		b := buf[di*block.Size : (di+1)*block.Size]
		binary.LittleEndian.PutUint32(b[40:44], sum)
		block.Seal(b, l.abs(pos+di), txid)
	}
	for si := uint64(0); si < s; si++ {
		block.Seal(buf[(d+si)*block.Size:(d+si+1)*block.Size], l.abs(pos+d+si), txid)
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

// txChecksum covers the home lists of all descriptors, all data checksum
// entries and all images.
func txChecksum(buf []byte, d, s uint64, k, c int) uint32 {
	var sum uint32
	for di := uint64(0); di < d; di++ {
		b := buf[di*block.Size:]
		cnt := min(k-int(di)*HomesPerDesc, HomesPerDesc)
		sum = crc32.Update(sum, castagnoli, b[48:48+8*cnt])
	}
	for si := uint64(0); si < s; si++ {
		b := buf[(d+si)*block.Size:]
		cnt := min(c-int(si)*SumsPerBlock, SumsPerBlock)
		sum = crc32.Update(sum, castagnoli, b[block.HeaderSize:block.HeaderSize+16*cnt])
	}
	return crc32.Update(sum, castagnoli, buf[(d+s)*block.Size:(d+s+uint64(k))*block.Size])
}

// txView is a transaction read back from the log.
type txView struct {
	txid    uint64
	k, c    int
	d, s    uint64
	at, pad uint64
	buf     []byte
}

func (t *txView) need() uint64 { return t.d + t.s + uint64(t.k) }

// home returns image i's home block and whether it is raw file data.
func (t *txView) home(i int) (uint64, bool) {
	di := uint64(i / HomesPerDesc)
	h := binary.LittleEndian.Uint64(t.buf[di*block.Size+48+8*uint64(i%HomesPerDesc):])
	return h &^ RawFlag, h&RawFlag != 0
}

func (t *txView) image(i int) []byte {
	at := (t.d + t.s + uint64(i)) * block.Size
	return t.buf[at : at+block.Size]
}

func (t *txView) sum(i int) DataSum {
	si := uint64(i / SumsPerBlock)
	e := t.buf[(t.d+si)*block.Size+block.HeaderSize+16*uint64(i%SumsPerBlock):]
	return DataSum{
		Start: binary.LittleEndian.Uint64(e[0:8]),
		N:     binary.LittleEndian.Uint32(e[8:12]),
		CRC:   binary.LittleEndian.Uint32(e[12:16]),
	}
}

// Replay applies every complete transaction after the tail, in order, by
// calling apply for each image (raw says it is file data, not a sealed
// metadata block), and positions the log after the last one. It
// returns the number of transactions replayed. apply must copy img if it keeps
// it. The last transaction is applied only if the data its checksums cover is
// on the disk (see the package comment); otherwise it is dropped and Dropped
// says so. Replay does not write the header: call Checkpointed once the
// images are durable at home.
func (l *Log) Replay(apply func(home uint64, img []byte, raw bool) error) (int, error) {
	count := 0
	pos := l.tailPos
	one := shareddisk.AlignedBuf(block.Size)
	var bufs [2][]byte
	cur, err := l.readTx(one, &bufs[0], pos, l.headTx, l.used)
	for err == nil && cur != nil {
		next := cur.at + cur.need()
		if next == l.n {
			next = 0
		}
		var nx *txView
		nx, err = l.readTx(one, &bufs[(count+1)%2], next, cur.txid+1, l.used+cur.pad+cur.need())
		if err != nil {
			break
		}
		if nx == nil && cur.c > 0 {
			ok, verr := l.dataIntact(cur)
			if verr != nil {
				err = verr
				break
			}
			if !ok {
				l.dropped = cur.txid
				break
			}
		}
		for i := 0; i < cur.k; i++ {
			img := cur.image(i)
			home, raw := cur.home(i)
			if !raw {
				if verr := block.Verify(img, home, block.TypeFree); verr != nil {
					return count, fmt.Errorf("%s: transaction %d image %d: %w", l.where(), cur.txid, i, verr)
				}
			}
			if aerr := apply(home, img, raw); aerr != nil {
				return count, fmt.Errorf("%s: replay transaction %d: %w", l.where(), cur.txid, aerr)
			}
		}
		l.live = append(l.live, txRec{txid: cur.txid, pos: cur.at, pad: cur.pad, need: cur.need()})
		l.used += cur.pad + cur.need()
		l.headTx++
		pos = next
		count++
		cur = nx
	}
	if err != nil {
		return count, err
	}
	l.headPos = pos
	l.replayed = true
	return count, nil
}

// Dropped returns the txid of the last transaction that Replay found intact
// in the log but dropped because its data was not on the disk, or 0.
func (l *Log) Dropped() uint64 { return l.dropped }

// readTx reads and checks transaction txid at pos (or at 0 if it would have
// wrapped), given used blocks of the log ahead of it. It returns nil when
// there is no valid transaction there.
func (l *Log) readTx(one []byte, bufp *[]byte, pos, txid, used uint64) (*txView, error) {
	t, ok, err := l.probe(one, pos, txid)
	if err != nil || !ok {
		return nil, err
	}
	t.txid = txid
	t.pad = padding(pos, t.at, l.n)
	if used+t.need()+t.pad > l.n {
		return nil, nil // cannot be ours: it would overlap the tail
	}
	nb := t.need() * block.Size
	if uint64(len(*bufp)) < nb {
		*bufp = shareddisk.AlignedBuf(int(nb))
	}
	t.buf = (*bufp)[:nb]
	if _, err := l.d.ReadAt(t.buf, int64(l.abs(t.at))*block.Size); err != nil {
		return nil, fmt.Errorf("%s: read transaction %d: %w", l.where(), txid, err)
	}
	if !l.validTx(t) {
		return nil, nil
	}
	return t, nil
}

// dataIntact reads the data extents t's checksums cover and compares them.
func (l *Log) dataIntact(t *txView) (bool, error) {
	size := uint64(l.d.Size()) / block.Size
	var buf []byte
	for i := 0; i < t.c; i++ {
		ds := t.sum(i)
		if ds.N == 0 || ds.Start >= size || uint64(ds.N) > size-ds.Start {
			return false, fmt.Errorf("%s: transaction %d: data checksum %d covers blocks %d+%d, outside the disk", l.where(), t.txid, i, ds.Start, ds.N)
		}
		var crc uint32
		for b, left := ds.Start, uint64(ds.N); left > 0; {
			n := min(left, 256)
			if uint64(len(buf)) < n*block.Size {
				buf = shareddisk.AlignedBuf(256 * block.Size)
			}
			if _, err := l.d.ReadAt(buf[:n*block.Size], int64(b)*block.Size); err != nil {
				return false, fmt.Errorf("%s: transaction %d: read data blocks %d+%d: %w", l.where(), t.txid, b, n, err)
			}
			crc = crc32.Update(crc, castagnoli, buf[:n*block.Size])
			b, left = b+n, left-n
		}
		if crc != ds.CRC {
			return false, nil
		}
	}
	return true, nil
}

func padding(pos, at, n uint64) uint64 {
	if at == pos {
		return 0
	}
	return n - pos
}

// probe looks for the first descriptor of transaction txid at pos, or at
// position 0 when the transaction would have wrapped.
func (l *Log) probe(one []byte, pos, txid uint64) (*txView, bool, error) {
	cands := []uint64{pos}
	if pos != 0 {
		cands = append(cands, 0)
	}
	for _, cand := range cands {
		if _, err := l.d.ReadAt(one, int64(l.abs(cand))*block.Size); err != nil {
			return nil, false, fmt.Errorf("%s: read position %d: %w", l.where(), cand, err)
		}
		t, ok := parseDesc(one, l.abs(cand), txid, 0)
		if !ok {
			continue
		}
		need := t.need()
		// At pos it must fit before the end; at 0 it must be one that did not.
		if cand+need <= l.n && (cand == pos || pos+need > l.n) {
			t.at = cand
			return t, true, nil
		}
	}
	return nil, false, nil
}

func parseDesc(b []byte, abs, txid uint64, index uint64) (*txView, bool) {
	if block.Verify(b, abs, block.TypeJournalTx) != nil || block.TxID(b) != txid {
		return nil, false
	}
	k := int(binary.LittleEndian.Uint32(b[32:36]))
	d := uint64(binary.LittleEndian.Uint16(b[36:38]))
	c := int(binary.LittleEndian.Uint32(b[44:48]))
	if k <= 0 || d != descCount(k) || uint64(binary.LittleEndian.Uint16(b[38:40])) != index || c < 0 || c > maxSums {
		return nil, false
	}
	return &txView{k: k, c: c, d: d, s: sumCount(c)}, true
}

func (l *Log) validTx(t *txView) bool {
	var sum uint32
	for di := uint64(0); di < t.d; di++ {
		b := t.buf[di*block.Size : (di+1)*block.Size]
		t2, ok := parseDesc(b, l.abs(t.at+di), t.txid, di)
		if !ok || t2.k != t.k || t2.d != t.d || t2.c != t.c {
			return false
		}
		if di == 0 {
			sum = binary.LittleEndian.Uint32(b[40:44])
		} else if binary.LittleEndian.Uint32(b[40:44]) != sum {
			return false
		}
	}
	for si := uint64(0); si < t.s; si++ {
		b := t.buf[(t.d+si)*block.Size : (t.d+si+1)*block.Size]
		if block.Verify(b, l.abs(t.at+t.d+si), block.TypeJournalSums) != nil || block.TxID(b) != t.txid {
			return false
		}
	}
	return txChecksum(t.buf, t.d, t.s, t.k, t.c) == sum
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
