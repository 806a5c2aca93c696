package nfsbench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/hanfs/hanfs/shareddisk"
)

// BenchmarkDiskLimit measures what the disk under the servers allows for
// durable 4 KiB random writes: an O_DIRECT write followed by fdatasync, with
// 1 and 8 in flight (goroutines), into a file written in full beforehand, in
// the same directory as the servers' files ($HANFS_BENCH_DIR). No NFS server
// whose every reply is durable can answer 4 KiB random writes faster than
// this; a server that replies to UNSTABLE writes from memory can.
func BenchmarkDiskLimit(b *testing.B) {
	dir := os.Getenv("HANFS_BENCH_DIR")
	if dir == "" {
		dir = "/var/tmp"
	}
	tmp, err := os.MkdirTemp(dir, "hanfs-disklimit-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	path := tmp + "/limit.img"
	size := *flagRandFile
	if err := prewrite(path, size); err != nil {
		b.Fatal(err)
	}
	d, err := shareddisk.OpenFile(path, shareddisk.OpenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	for _, qd := range depths(b) {
		b.Run(fmt.Sprintf("randwrite.sync/qd%d", qd), func(b *testing.B) {
			n := *flagRandWrites
			for b.Loop() {
				var wg sync.WaitGroup
				errs := make([]error, qd)
				for g := range qd {
					wg.Go(func() {
						r := rand.New(rand.NewPCG(uint64(g), 11))
						buf := shareddisk.AlignedBuf(4096)
						buf[0] = byte(g)
						for i := g; i < n; i += qd {
							off := r.Int64N(size/4096) * 4096
							if _, err := d.WriteAt(buf, off); err != nil {
								errs[g] = err
								return
							}
							if err := d.Flush(); err != nil {
								errs[g] = err
								return
							}
						}
					})
				}
				wg.Wait()
				for _, err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "IOPS")
		})
	}
}
