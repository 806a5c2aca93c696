package nfs

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/nfs/rpcwire"
	"github.com/hanfs/hanfs/shareddisk"
)

// BenchmarkReaddirplus lists a directory of N entries completely through
// READDIRPLUS paging (32 KiB replies, as the Linux client asks), against an
// in-process server. The ns/entry figure should stay flat as N grows: the
// listing is linear.
func BenchmarkReaddirplus(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			d := shareddisk.NewMem(1 << 30)
			if _, err := fsstore.Format(d, fsstore.FormatOptions{}); err != nil {
				b.Fatal(err)
			}
			st, err := fsstore.Open(d, fsstore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			dir, err := st.Mkdir(nil, fsstore.RootIno, "big", 0o755)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < n; i++ {
				if _, err := st.Create(nil, dir.Ino, fmt.Sprintf("file-%07d", i), 0o644, fsstore.CreateGuarded, 0); err != nil {
					b.Fatal(err)
				}
			}
			exp, _ := ParseExport("/ 127.0.0.0/8 rw,no_root_squash")
			srv, err := New(st, Config{Exports: []Export{exp}})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			fh := srv.h.Make(srv.exports[0].id, dir.Ino, dir.Gen)
			c := &conn{s: srv, ip: netip.MustParseAddr("127.0.0.1"), nc: nopConn{}}
			b.ResetTimer()
			for it := 0; it < b.N; it++ {
				seen, cookie := 0, uint64(0)
				for page := 0; ; page++ {
					e := rpcwire.NewEncoder(nil)
					e.Opaque(fh)
					e.Uint64(cookie)
					e.FixedOpaque(make([]byte, 8))
					e.Uint32(8192)
					e.Uint32(32768)
					reply := c.handle(rpcwire.BuildCall(uint32(page), ProgNFS, 3, procReaddirplus, nil, e.Bytes()))
					r, err := rpcwire.ParseReply(reply)
					if err != nil {
						b.Fatal(err)
					}
					dd := rpcwire.NewDecoder(r.Body)
					if st, _ := dd.Uint32(); st != 0 {
						b.Fatalf("status %d", st)
					}
					skipPostOp(b, dd)
					dd.FixedOpaque(8)
					for {
						more, _ := dd.Bool()
						if !more {
							break
						}
						dd.Uint64()
						dd.String(255)
						cookie, _ = dd.Uint64()
						skipPostOp(b, dd)
						if ok, _ := dd.Bool(); ok {
							dd.Opaque(64)
						}
						seen++
					}
					if eof, _ := dd.Bool(); eof {
						break
					}
				}
				if seen != n+2 {
					b.Fatalf("listed %d entries, want %d", seen, n+2)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
		})
	}
}

func skipPostOp(b *testing.B, d *rpcwire.Decoder) {
	if ok, _ := d.Bool(); ok {
		if _, err := d.FixedOpaque(84); err != nil {
			b.Fatal(err)
		}
	}
}
