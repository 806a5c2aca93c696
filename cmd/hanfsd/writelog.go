package main

import (
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/hanfs/hanfs/shareddisk"
)

// writeLog records every file-system write a node makes (tests check from it
// that two nodes never wrote at the same time). Each line: node, epoch,
// CLOCK_MONOTONIC nanoseconds at the start and at the end of the write, the
// byte offset and length. CLOCK_MONOTONIC is shared by every process of one
// machine, so logs of several nodes can be merged.
type writeLog struct {
	mu   sync.Mutex
	f    *os.File
	node int
}

func openWriteLog(path string, node int) (*writeLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("write log: %w", err)
	}
	return &writeLog{f: f, node: node}, nil
}

func (w *writeLog) Close() error { return w.f.Close() }

func monoNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

func (w *writeLog) wrap(d shareddisk.Disk, epoch func() uint64) shareddisk.Disk {
	return &loggedDisk{Disk: d, w: w, epoch: epoch}
}

type loggedDisk struct {
	shareddisk.Disk
	w     *writeLog
	epoch func() uint64
}

func (d *loggedDisk) WriteAt(p []byte, off int64) (int, error) {
	start := monoNow()
	n, err := d.Disk.WriteAt(p, off)
	end := monoNow()
	if err == nil {
		d.w.mu.Lock()
		fmt.Fprintf(d.w.f, "%d %d %d %d %d %d\n", d.w.node, d.epoch(), start, end, off, len(p))
		d.w.mu.Unlock()
	}
	return n, err
}
