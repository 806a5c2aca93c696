package cluster

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hanfs/hanfs/shareddisk"
)

// registerReadCacheMetrics registers the metrics of the read-ahead cache of
// the store the node serves (docs/metrics.md). Like the NFS metrics they
// belong to the process: the counters go on across terms as primary.
func (n *Node) registerReadCacheMetrics(reg prometheus.Registerer) error {
	const bs = shareddisk.BlockSize
	cs := []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hanfs_read_cache_hits_total",
			Help: "File data reads served from the read-ahead cache."},
			func() float64 { return float64(n.rcc.Hits.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hanfs_read_cache_misses_total",
			Help: "File data reads, with the read-ahead cache on, that read the disk."},
			func() float64 { return float64(n.rcc.Misses.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hanfs_read_cache_prefetched_bytes_total",
			Help: "Bytes read ahead of sequential readers into the cache."},
			func() float64 { return float64(n.rcc.PrefetchedBlocks.Load() * bs) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hanfs_read_cache_invalidated_bytes_total",
			Help: "Cached bytes dropped because they were written."},
			func() float64 { return float64(n.rcc.InvalidatedBlocks.Load() * bs) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hanfs_read_cache_bytes",
			Help: "Memory the read-ahead cache holds or is reading into (0 on a backup)."},
			func() float64 {
				n.mu.Lock()
				st := n.store
				n.mu.Unlock()
				if st == nil {
					return 0
				}
				return float64(st.ReadCacheBytes())
			}),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register read cache metrics: %w", err)
		}
	}
	return nil
}
