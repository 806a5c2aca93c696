package cluster

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/fsstore/txn"
)

// storeCounters adds up the counters of the stores the node opened, one per
// term as primary, so that the metrics go on across terms (docs/metrics.md).
type storeCounters struct {
	past txn.Stats      // the stores closed so far
	cur  *fsstore.Store // the store of this term, until its counters are in past
}

// endStore folds the final counters of the closed store st into past.
func (n *Node) endStore(st *fsstore.Store) {
	s := st.Stats()
	n.mu.Lock()
	n.stc.past.Add(s)
	if n.stc.cur == st {
		n.stc.cur = nil
	}
	n.mu.Unlock()
}

// storeStat returns one counter over every store the node opened.
func (n *Node) storeStat(f func(txn.Stats) uint64) float64 {
	n.mu.Lock()
	v, cur := f(n.stc.past), n.stc.cur
	n.mu.Unlock()
	if cur != nil {
		v += f(cur.Stats())
	}
	return float64(v)
}

// registerStoreMetrics registers the store's counters.
func (n *Node) registerStoreMetrics(reg prometheus.Registerer) error {
	counter := func(o prometheus.CounterOpts, f func(txn.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(o, func() float64 { return n.storeStat(f) })
	}
	cs := []prometheus.Collector{
		counter(prometheus.CounterOpts{Name: "hanfs_store_commits_total", Help: "Journal transactions committed (one per group commit)."},
			func(s txn.Stats) uint64 { return s.Commits }),
		counter(prometheus.CounterOpts{Name: "hanfs_store_flushes_total", Help: "Disk flushes (fdatasync) by the store: commits and checkpoints."},
			func(s txn.Stats) uint64 { return s.Flushes }),
		counter(prometheus.CounterOpts{Name: "hanfs_store_checkpoints_total", Help: "Checkpoints (journaled blocks written home, the log emptied)."},
			func(s txn.Stats) uint64 { return s.Checkpoints }),
		counter(prometheus.CounterOpts{Name: "hanfs_store_checkpoint_blocks_total", Help: "Blocks written home by checkpoints."},
			func(s txn.Stats) uint64 { return s.CheckpointBlocks }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hanfs_store_checkpoint_seconds_total", Help: "Time spent in checkpoints (commits wait while one runs)."},
			func() float64 {
				return float64(n.storeStat(func(s txn.Stats) uint64 { return s.CheckpointNanos })) / 1e9
			}),
		counter(prometheus.CounterOpts{Name: "hanfs_store_metadata_cache_misses_total", Help: "Metadata block lookups that missed the cache."},
			func(s txn.Stats) uint64 { return s.CacheMisses }),
		counter(prometheus.CounterOpts{Name: "hanfs_store_metadata_reads_total", Help: "Metadata blocks read from the disk (outside the metadata lock)."},
			func(s txn.Stats) uint64 { return s.MetaReads }),
		counter(prometheus.CounterOpts{Name: "hanfs_store_update_retries_total", Help: "Updates and views run again after a metadata cache miss."},
			func(s txn.Stats) uint64 { return s.Retries }),
		counter(prometheus.CounterOpts{Name: "hanfs_store_data_checksums_total", Help: "Data extent checksums committed in the journal."},
			func(s txn.Stats) uint64 { return s.DataSums }),
		counter(prometheus.CounterOpts{Name: "hanfs_store_settles_total", Help: "In-place data writes that waited for a later commit (their blocks were in the newest transaction)."},
			func(s txn.Stats) uint64 { return s.Settles }),
		counter(prometheus.CounterOpts{Name: "hanfs_store_journaled_data_blocks_total", Help: "File data blocks of small writes committed in the journal (written home at the next checkpoint)."},
			func(s txn.Stats) uint64 { return s.JournaledBlocks }),
		counter(prometheus.CounterOpts{Name: "hanfs_store_unjournal_checkpoints_total", Help: "Checkpoints taken early so that journaled data blocks could be overwritten in place."},
			func(s txn.Stats) uint64 { return s.Unjournals }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register store metrics: %w", err)
		}
	}
	return nil
}
