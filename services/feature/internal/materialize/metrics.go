package materialize

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	lag       *prometheus.GaugeVec
	owned     prometheus.Gauge
	applied   prometheus.Counter
	skipped   *prometheus.CounterVec
	erasures  prometheus.Counter
	conflicts prometheus.Counter
	gaps      prometheus.Counter
	batch     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bullseye_feature_consumer_lag",
			Help: "Records of the events stream not yet applied, per partition this replica owns.",
		}, []string{"partition"}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bullseye_feature_partitions_owned",
			Help: "Partitions of the events stream this replica owns.",
		}),
		applied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bullseye_feature_records_applied_total",
			Help: "Records applied to profiles.",
		}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bullseye_feature_records_skipped_total",
			Help: "Records not applied, by reason: duplicate (applied before), erased (customer on the erasure list), undecodable, retention (oldest events dropped from a profile past --max-profile-bytes, counted in the profile).",
		}, []string{"reason"}),
		erasures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bullseye_feature_erasures_applied_total",
			Help: "Erasure records applied.",
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bullseye_feature_write_conflicts_total",
			Help: "Profile writes that lost a compare-and-set and were redone.",
		}),
		gaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bullseye_feature_delivery_gaps_total",
			Help: "Fetches that found records delivered to this replica but never received (a fetch given up by the client while the server still sent): the partition's consumer restarts from its last acknowledged record, so they come again.",
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bullseye_feature_apply_batch_seconds",
			Help:    "Time to apply and store one batch of records.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.lag, m.owned, m.applied, m.skipped, m.erasures, m.conflicts, m.gaps, m.batch} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) setLag(p int, n uint64) { m.lag.WithLabelValues(strconv.Itoa(p)).Set(float64(n)) }

func (m *metrics) dropLag(p int) { m.lag.DeleteLabelValues(strconv.Itoa(p)) }
