package nfs

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the NFS server's Prometheus metrics. Create them once per
// process with NewMetrics and pass them to every server the process runs.
type Metrics = metrics

// NewMetrics registers the NFS metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) { return newMetrics(reg) }

type metrics struct {
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	conns    prometheus.Gauge
	drcHits  *prometheus.CounterVec
	rejects  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hanfs_nfs_requests_total",
			Help: "NFSv3 requests handled, by procedure."}, []string{"proc"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hanfs_nfs_errors_total",
			Help: "NFSv3 requests answered with an error status, by procedure and status."}, []string{"proc", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hanfs_nfs_request_duration_seconds",
			Help:    "Time from decoding an NFSv3 request to its reply being ready (durable for mutations).",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2.5, 14)}, []string{"proc"}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hanfs_nfs_connections",
			Help: "Client connections open."}),
		drcHits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hanfs_nfs_drc_hits_total",
			Help: "Retransmitted non-idempotent requests answered from the duplicate-request cache, by source (memory or disk)."}, []string{"source"}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hanfs_nfs_rpc_rejects_total",
			Help: "RPC calls rejected before reaching a procedure, by reason."}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.errors, m.latency, m.conns, m.drcHits, m.rejects} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register NFS metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) observe(proc uint32, st nfsstat, d time.Duration) {
	name := procNames[proc]
	m.requests.WithLabelValues(name).Inc()
	if st != nfsOK {
		m.errors.WithLabelValues(name, st.String()).Inc()
	}
	m.latency.WithLabelValues(name).Observe(d.Seconds())
}
