package fsstore

import (
	"bytes"
	"testing"
)

// FuzzDecodeBucket feeds arbitrary bytes to the directory-bucket decoder: it
// must never panic, and what it accepts must encode back to the same bytes.
func FuzzDecodeBucket(f *testing.F) {
	f.Add(encodeBucket([]dent{{ino: 2, typ: 8, name: "a"}, {ino: 99, typ: 4, name: "dir"}}))
	f.Add([]byte{1, 2, 3})
	f.Add(make([]byte, 10))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := decodeBucket(b)
		if err != nil {
			return
		}
		if again := encodeBucket(es); !bytes.Equal(again, b) {
			t.Fatalf("round trip changed the bucket")
		}
	})
}

// FuzzDecodeInode feeds arbitrary bytes to the inode decoder.
func FuzzDecodeInode(f *testing.F) {
	f.Add(encodeInode(&inode{mode: ModeRegular | 0o644, nlink: 1, size: 10, gen: 3}))
	f.Add(make([]byte, inodeSize))
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := decodeInode(7, b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeInode(in), b) {
			t.Fatalf("round trip changed the inode")
		}
		_ = in.attr(7)
	})
}

// FuzzDecodeExtent feeds arbitrary bytes to the extent decoder.
func FuzzDecodeExtent(f *testing.F) {
	f.Add(encodeExtent(extent{disk: 5000, n: 8}))
	f.Add(make([]byte, 16))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeExtent(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeExtent(e), b) {
			t.Fatalf("round trip changed the extent")
		}
	})
}
