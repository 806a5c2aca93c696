package txn_test

import (
	"encoding/binary"
	"errors"
	"sync"
	"testing"

	"github.com/hanfs/hanfs/fsstore/block"
	"github.com/hanfs/hanfs/fsstore/txn"
)

// TestRollbackWithReusedUndoCopies runs failing updates, which change every
// block and are rolled back, alongside updates that commit a counter in
// each block, and checks that every block ends with its original payload
// and its last committed counter: an undo copy handed to a second update
// while the first could still roll back would restore the wrong bytes.
func TestRollbackWithReusedUndoCopies(t *testing.T) {
	mem, lay, blks := newStore(t, 8)
	m, err := txn.Open(mem, lay, txn.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	const rounds = 300
	const at = block.HeaderSize + 64 // past the payload
	errFail := errors.New("test: fail the update")
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				_, err := m.Update(func(tx *txn.Tx) error {
					for _, b := range blks {
						p, err := tx.Modify(b)
						if err != nil {
							return err
						}
						for i := block.HeaderSize; i < len(p); i++ {
							p[i] = byte(w + r)
						}
					}
					return errFail
				})
				if !errors.Is(err, errFail) {
					t.Errorf("failing update: %v", err)
					return
				}
			}
		}()
	}
	var last uint64
	for r := 1; r <= rounds; r++ {
		c, err := m.Update(func(tx *txn.Tx) error {
			for _, b := range blks {
				p, err := tx.Modify(b)
				if err != nil {
					return err
				}
				binary.LittleEndian.PutUint64(p[at:], uint64(r))
			}
			return nil
		})
		if err == nil {
			err = c.Wait()
		}
		if err != nil {
			t.Fatal(err)
		}
		last = uint64(r)
	}
	wg.Wait()
	err = m.View(func(tx *txn.Tx) error {
		for i, b := range blks {
			if err := readPayload(tx, b, i); err != nil {
				return err
			}
			p, err := tx.Read(b)
			if err != nil {
				return err
			}
			if got := binary.LittleEndian.Uint64(p[at:]); got != last {
				t.Errorf("block %d: counter %d, want %d", b, got, last)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
