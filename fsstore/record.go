package fsstore

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/hanfs/hanfs/fsstore/btree"
)

// Records are small values keyed by 16 bytes, written in the same transaction
// as an operation (the NFS duplicate-request cache). Value layout: the 16-byte
// key, the creation time (unix nanoseconds, 8 bytes), then the caller's bytes.

func recordKey(key [16]byte) btree.Key {
	return btree.Key{Obj: recObj, Type: itemRecord, Off: binary.LittleEndian.Uint64(key[:8]) ^ binary.LittleEndian.Uint64(key[8:])}
}

func (t *stx) putRecord(key [16]byte, val []byte) error {
	if len(val)+24 > btree.MaxValueSize {
		return fmt.Errorf("record of %d bytes: %w", len(val), ErrInvalid)
	}
	v := append(key[:], make([]byte, 8)...)
	binary.LittleEndian.PutUint64(v[16:], uint64(t.now))
	return t.put(recordKey(key), append(v, val...))
}

// LookupRecord returns the value stored for key, if any.
func (s *Store) LookupRecord(key [16]byte) ([]byte, bool, error) {
	var out []byte
	var ok bool
	err := s.view(func(t *stx) error {
		out, ok = nil, false
		v, found, err := t.get(recordKey(key))
		if err != nil || !found {
			return err
		}
		if len(v) < 24 || !bytes.Equal(v[:16], key[:]) {
			return nil // another key with the same hash replaced it
		}
		out, ok = append([]byte(nil), v[24:]...), true
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

// ExpireRecords deletes up to max records created before cutoff (unix
// nanoseconds) and returns how many it deleted. Its work is bounded by the
// number of records, not the size of the file system.
func (s *Store) ExpireRecords(cutoff int64, max int) (int, error) {
	var old []btree.Key
	err := s.view(func(t *stx) error {
		old = old[:0] // the view may run more than once
		return btree.Scan(t.tx, t.info.root, btree.Key{Obj: recObj, Type: itemRecord}, func(k btree.Key, v []byte) (bool, error) {
			if k.Obj != recObj || k.Type != itemRecord {
				return false, nil
			}
			if len(v) < 24 || int64(binary.LittleEndian.Uint64(v[16:24])) < cutoff {
				old = append(old, k)
			}
			return len(old) < max, nil
		})
	})
	if err != nil || len(old) == 0 {
		return 0, err
	}
	err = s.update(func(t *stx) error {
		for _, k := range old {
			if _, err := t.del(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return len(old), nil
}
