package shareddisk

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

// FuzzDecodeSuperblock checks that DecodeSuperblock never panics and that
// whatever it accepts survives an encode/decode round trip. Each input is
// also decoded with its checksum fixed, so that the fuzzer reaches the field
// checks behind the checksum.
func FuzzDecodeSuperblock(f *testing.F) {
	good, err := EncodeSuperblock(testSuperblock(f, 8<<30))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecode(t, b)
		if len(b) >= SuperblockSize {
			sealed := append([]byte(nil), b...)
			reseal(sealed)
			checkDecode(t, sealed)
		}
	})
}

// checkDecode decodes b and, if it is accepted, checks the round trip.
func checkDecode(t *testing.T, b []byte) {
	sb, err := DecodeSuperblock(b)
	if err != nil {
		if sb != nil {
			t.Fatal("superblock returned with an error")
		}
		return
	}
	enc, err := EncodeSuperblock(sb)
	if err != nil {
		t.Fatalf("decoded superblock does not encode: %v", err)
	}
	again, err := DecodeSuperblock(enc)
	if err != nil || !reflect.DeepEqual(again, sb) {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, again, sb)
	}
}

// TestWriteFuzzCorpus regenerates testdata/fuzz/FuzzDecodeSuperblock when
// HANFS_WRITE_CORPUS=1.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("HANFS_WRITE_CORPUS") != "1" {
		t.Skip("set HANFS_WRITE_CORPUS=1 to regenerate the seed corpus")
	}
	good, err := EncodeSuperblock(testSuperblock(t, 8<<30))
	if err != nil {
		t.Fatal(err)
	}
	mutant := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	seeds := map[string][]byte{
		"valid":           good,
		"valid-block":     append(append([]byte(nil), good...), make([]byte, BlockSize-SuperblockSize)...),
		"bad-crc":         mutant(func(b []byte) { b[offCRC] ^= 1 }),
		"bad-magic":       mutant(func(b []byte) { b[3] = 'x'; reseal(b) }),
		"version-2":       mutant(func(b []byte) { b[offVersion] = 2; reseal(b) }),
		"label-too-long":  mutant(func(b []byte) { b[offLabelLen] = 200; reseal(b) }),
		"journal-huge":    mutant(func(b []byte) { b[offLayout+8*9+7] = 0x80; reseal(b) }),
		"total-blocks-0":  mutant(func(b []byte) { copy(b[offLayout:offLayout+8], make([]byte, 8)); reseal(b) }),
		"truncated":       good[:SuperblockSize-1],
		"zero":            make([]byte, SuperblockSize),
		"bitmap-off-by-1": mutant(func(b []byte) { b[offLayout+8*11]++; reseal(b) }),
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeSuperblock")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seeds {
		data := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
