package shareddisk

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"strings"
	"testing"
)

// testSuperblock returns a fixed, valid superblock for a disk of size bytes.
func testSuperblock(t testing.TB, size int64) *Superblock {
	t.Helper()
	l, err := ComputeLayout(size, 0)
	if err != nil {
		t.Fatal(err)
	}
	sb := &Superblock{
		Version: FormatVersion, BlockSize: BlockSize, Created: 1_700_000_000_123456789,
		MaxNodes: MaxNodes, MailboxBlocksPerNode: MailboxBlocksPerNode, Layout: l, Label: "test disk ü",
	}
	for i := range sb.UUID {
		sb.UUID[i] = byte(0xa0 + i)
	}
	for i := range sb.HandleKey {
		sb.HandleKey[i] = byte(i)
	}
	return sb
}

// reseal recomputes the checksum of an edited record.
func reseal(b []byte) {
	binary.LittleEndian.PutUint32(b[offCRC:], crc32.Checksum(b[:offCRC], crc32.MakeTable(crc32.Castagnoli)))
}

func TestSuperblockRoundTrip(t *testing.T) {
	sb := testSuperblock(t, 8<<30)
	b, err := EncodeSuperblock(sb)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != SuperblockSize || string(b[:8]) != "HANFSSB1" {
		t.Fatalf("encoded %d bytes, magic %q", len(b), b[:8])
	}
	if got := binary.LittleEndian.Uint64(b[120:]); got != sb.Layout.JournalBlocks {
		t.Fatalf("journal blocks at offset 120 = %d", got)
	}
	got, err := DecodeSuperblock(append(b, make([]byte, BlockSize-SuperblockSize)...))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, sb) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, sb)
	}
	if s := sb.UUIDString(); s != "a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf" {
		t.Fatalf("UUIDString %s", s)
	}
	if sb.CreatedTime().UnixNano() != sb.Created {
		t.Fatal("CreatedTime")
	}
}

func TestEncodeRefusesBadLabel(t *testing.T) {
	sb := testSuperblock(t, MinSize)
	sb.Label = strings.Repeat("x", MaxLabelLen+1)
	if _, err := EncodeSuperblock(sb); err == nil {
		t.Error("long label accepted")
	}
	sb.Label = "\xff"
	if _, err := EncodeSuperblock(sb); err == nil {
		t.Error("invalid UTF-8 label accepted")
	}
}

func TestDecodeSuperblockRejects(t *testing.T) {
	good, err := EncodeSuperblock(testSuperblock(t, 1<<30))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		mut  func(b []byte) []byte
		want error
	}{
		{"short", func(b []byte) []byte { return b[:100] }, ErrCorrupt},
		{"zero", func(b []byte) []byte { return make([]byte, SuperblockSize) }, ErrNotHanfs},
		{"magic", func(b []byte) []byte { b[0] = 'X'; reseal(b); return b }, ErrNotHanfs},
		{"bit flip", func(b []byte) []byte { b[130] ^= 1; return b }, ErrCorrupt},
		{"crc", func(b []byte) []byte { b[offCRC] ^= 0xff; return b }, ErrCorrupt},
		{"version", func(b []byte) []byte { b[offVersion] = 2; reseal(b); return b }, ErrCorrupt},
		{"block size", func(b []byte) []byte { b[offBlockSize+1] = 0x20; reseal(b); return b }, ErrCorrupt},
		{"max nodes", func(b []byte) []byte { b[offMaxNodes] = 17; reseal(b); return b }, ErrCorrupt},
		{"label len", func(b []byte) []byte { b[offLabelLen] = 65; reseal(b); return b }, ErrCorrupt},
		{"label utf8", func(b []byte) []byte { b[offLabel] = 0xff; reseal(b); return b }, ErrCorrupt},
		{"layout", func(b []byte) []byte { b[offLayout+8*11] ^= 1; reseal(b); return b }, ErrCorrupt},
	}
	for _, c := range cases {
		b := c.mut(append([]byte(nil), good...))
		sb, err := DecodeSuperblock(b)
		if !errors.Is(err, c.want) || sb != nil {
			t.Errorf("%s: got %v, %v; want %v", c.name, sb, err, c.want)
		}
	}
}

func TestCheckDiskSize(t *testing.T) {
	sb := testSuperblock(t, 1<<30)
	if err := sb.CheckDiskSize(1 << 30); err != nil {
		t.Fatal(err)
	}
	if err := sb.CheckDiskSize(1<<30 - BlockSize); !errors.Is(err, ErrTruncated) {
		t.Fatalf("smaller disk: %v", err)
	}
	sb.Layout.TotalBlocks = 1 << 62
	if err := sb.CheckDiskSize(1 << 62); !errors.Is(err, ErrTruncated) {
		t.Fatalf("huge: %v", err)
	}
}
