package shareddisk

import (
	"errors"
	"fmt"
	"time"
)

// ErrIOTimeout reports an I/O that did not complete within its time bound.
var ErrIOTimeout = errors.New("disk I/O exceeded io-timeout")

// TimedIO reads (or writes and flushes) buf at block blk of d, and gives up
// waiting after timeout with an error wrapping ErrIOTimeout. The I/O itself
// may still complete later: callers that bound I/O this way (the lease and
// the mailbox) account for that in their timing.
func TimedIO(d Disk, write bool, blk uint64, buf []byte, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() {
		var err error
		if write {
			if _, err = d.WriteAt(buf, int64(blk)*BlockSize); err == nil {
				err = d.Flush()
			}
		} else {
			_, err = d.ReadAt(buf, int64(blk)*BlockSize)
		}
		done <- err
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	op := "read"
	if write {
		op = "write"
	}
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s: %s block %d: %w", d.Name(), op, blk, err)
		}
		return nil
	case <-t.C:
		return fmt.Errorf("%s: %s block %d: %w (%v)", d.Name(), op, blk, ErrIOTimeout, timeout)
	}
}
