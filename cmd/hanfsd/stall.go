package main

import (
	"os"
	"time"

	"github.com/hanfs/hanfs/shareddisk"
)

// stallDisk stalls every I/O while a marker file exists: tests use it to
// simulate a disk that stops answering (hidden flag --test-stall-file).
type stallDisk struct {
	shareddisk.Disk
	marker string
}

func (d *stallDisk) wait() {
	for {
		if _, err := os.Stat(d.marker); err != nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (d *stallDisk) ReadAt(p []byte, off int64) (int, error) {
	d.wait()
	return d.Disk.ReadAt(p, off)
}

func (d *stallDisk) WriteAt(p []byte, off int64) (int, error) {
	d.wait()
	return d.Disk.WriteAt(p, off)
}

func (d *stallDisk) Flush() error {
	d.wait()
	return d.Disk.Flush()
}
