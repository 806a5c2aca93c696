package soak

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// mono reads CLOCK_MONOTONIC, the clock of the nodes' write logs.
func mono() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// pwriteNR is the number of pwrite64 on this machine (0: unknown).
var pwriteNR = map[string]int64{"amd64": 18, "arm64": 68}[runtime.GOARCH]

// StoppedWrites waits until every thread of the stopped process pid is
// stopped, and returns the pwrite64 calls its threads are stopped in, as
// (file offset, length): writes that were inside the kernel when SIGSTOP
// came. The kernel completes such an O_DIRECT write before the thread stops;
// only its return to user space (and so its write-log line) waits for
// SIGCONT.
func StoppedWrites(pid int) (map[[2]int64]int, error) {
	task := fmt.Sprintf("/proc/%d/task", pid)
	deadline := time.Now().Add(2 * time.Second)
	for {
		ents, err := os.ReadDir(task)
		if err != nil {
			return nil, fmt.Errorf("inspect stopped process %d: %w", pid, err)
		}
		stopped := true
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(task, e.Name(), "stat"))
			if err != nil {
				continue // the thread exited
			}
			if i := bytes.LastIndexByte(b, ')'); i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
				stopped = false
			}
		}
		if stopped {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("process %d did not stop within 2s of SIGSTOP", pid)
		}
		time.Sleep(time.Millisecond)
	}
	out := map[[2]int64]int{}
	ents, _ := os.ReadDir(task)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(task, e.Name(), "syscall"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 7 {
			continue
		}
		nr, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || nr != pwriteNR || pwriteNR == 0 {
			continue
		}
		count, err1 := strconv.ParseInt(strings.TrimPrefix(f[3], "0x"), 16, 64)
		pos, err2 := strconv.ParseInt(strings.TrimPrefix(f[4], "0x"), 16, 64)
		if err1 == nil && err2 == nil {
			out[[2]int64{pos, count}]++
		}
	}
	return out, nil
}
