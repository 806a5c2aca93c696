package cluster

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

type nodeMetrics struct {
	role        prometheus.Gauge
	epoch       prometheus.Gauge
	peerLink    prometheus.Gauge
	transitions *prometheus.CounterVec
	takeovers   prometheus.Counter
	probes      prometheus.Counter
	ioErrors    *prometheus.CounterVec
}

func newNodeMetrics(reg prometheus.Registerer, node int) (*nodeMetrics, error) {
	l := prometheus.Labels{"node": strconv.Itoa(node)}
	m := &nodeMetrics{
		role: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hanfs_node_role", ConstLabels: l,
			Help: "The node's role: 0 stopped, 1 backup, 2 candidate, 3 primary, 4 fenced."}),
		epoch: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hanfs_node_epoch", ConstLabels: l,
			Help: "The lease epoch this node holds or held last."}),
		peerLink: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hanfs_node_peer_heartbeats_up", ConstLabels: l,
			Help: "1 while heartbeats from the lease owner arrive, 0 when they stopped."}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hanfs_node_transitions_total", ConstLabels: l,
			Help: "Role changes, by from and to role."}, []string{"from", "to"}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "hanfs_node_takeovers_total", ConstLabels: l,
			Help: "Times this node started serving."}),
		probes: prometheus.NewCounter(prometheus.CounterOpts{Name: "hanfs_node_mailbox_probes_total", ConstLabels: l,
			Help: "Mailbox probes sent after heartbeats from the primary stopped."}),
		ioErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hanfs_node_disk_errors_total", ConstLabels: l,
			Help: "Failed or timed-out lease, presence and mailbox I/O, by area."}, []string{"area"}),
	}
	for _, c := range []prometheus.Collector{m.role, m.epoch, m.peerLink, m.transitions, m.takeovers, m.probes, m.ioErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register node metrics: %w", err)
		}
	}
	return m, nil
}
