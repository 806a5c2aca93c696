package fsstore

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/hanfs/hanfs/fsstore/btree"
)

// Records are small values keyed by 16 bytes, written in the same transaction
// as an operation (the NFS duplicate-request cache). Value layout: the 16-byte
// key, then the caller's bytes.

func recordKey(key [16]byte) btree.Key {
	return btree.Key{Obj: recObj, Type: itemRecord, Off: binary.LittleEndian.Uint64(key[:8]) ^ binary.LittleEndian.Uint64(key[8:])}
}

func (t *stx) putRecord(key [16]byte, val []byte) error {
	if len(val)+16 > btree.MaxValueSize {
		return fmt.Errorf("record of %d bytes: %w", len(val), ErrInvalid)
	}
	return t.put(recordKey(key), append(key[:], val...))
}

// LookupRecord returns the value stored for key, if any.
func (s *Store) LookupRecord(key [16]byte) ([]byte, bool, error) {
	var out []byte
	var ok bool
	err := s.view(func(t *stx) error {
		v, found, err := t.get(recordKey(key))
		if err != nil || !found {
			return err
		}
		if len(v) < 16 || !bytes.Equal(v[:16], key[:]) {
			return nil // another key with the same hash replaced it
		}
		out, ok = append([]byte(nil), v[16:]...), true
		return nil
	})
	return out, ok, err
}

// DeleteRecord removes the record for key (used to expire old records).
func (s *Store) DeleteRecord(key [16]byte) error {
	return s.update(func(t *stx) error {
		_, err := t.del(recordKey(key))
		return err
	})
}
