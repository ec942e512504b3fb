package batch

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the core's Prometheus metrics, labelled by model and version.
type Metrics struct {
	queueTime   *prometheus.HistogramVec
	computeTime *prometheus.HistogramVec
	batchSize   *prometheus.HistogramVec
	rejected    *prometheus.CounterVec
	expired     *prometheus.CounterVec
	queued      *prometheus.GaugeVec
}

// NewMetrics registers the core's metrics in reg:
//
//	bullseye_serving_queue_seconds          time from enqueue to batch (histogram)
//	bullseye_serving_compute_seconds        time a batch computes (histogram)
//	bullseye_serving_batch_size             rows per computed batch (histogram)
//	bullseye_serving_rejected_total         tasks refused by a full queue
//	bullseye_serving_expired_total          tasks dropped before compute, by reason
//	                                        (deadline passed; caller cancelled)
//	bullseye_serving_queued_tasks           tasks waiting now
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	labels := []string{"model", "version"}
	m := &Metrics{
		queueTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bullseye_serving_queue_seconds",
			Help:    "Time a task waited in its model version's queue before its batch was formed.",
			Buckets: prometheus.ExponentialBuckets(25e-6, 2, 16),
		}, labels),
		computeTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bullseye_serving_compute_seconds",
			Help:    "Time a batch held a compute slot: preprocessing and the matrix operation.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 2, 16),
		}, labels),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bullseye_serving_batch_size",
			Help:    "Rows per computed batch.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096},
		}, labels),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bullseye_serving_rejected_total",
			Help: "Tasks refused at once because their queue was full (RESOURCE_EXHAUSTED).",
		}, labels),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bullseye_serving_expired_total",
			Help: "Tasks dropped before compute, never computed: reason deadline (it passed while queued) or cancelled (by the caller).",
		}, append(labels, "reason")),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bullseye_serving_queued_tasks",
			Help: "Tasks waiting in the queue.",
		}, labels),
	}
	for _, c := range []prometheus.Collector{m.queueTime, m.computeTime, m.batchSize, m.rejected, m.expired, m.queued} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	return m, nil
}

// Forget removes the series of a queue that is gone.
func (m *Metrics) Forget(l Labels) {
	if m == nil {
		return
	}
	vals := []string{l.Model, l.Version}
	m.queueTime.DeleteLabelValues(vals...)
	m.computeTime.DeleteLabelValues(vals...)
	m.batchSize.DeleteLabelValues(vals...)
	m.rejected.DeleteLabelValues(vals...)
	m.expired.DeleteLabelValues(l.Model, l.Version, "deadline")
	m.expired.DeleteLabelValues(l.Model, l.Version, "cancelled")
	m.queued.DeleteLabelValues(vals...)
}

// observers are one queue's metric series, resolved once.
type observers struct {
	queueTime, computeTime, batchSize prometheus.Observer
	rejected, expired, cancelled      prometheus.Counter
	queued                            prometheus.Gauge
}

func (m *Metrics) observers(l Labels) observers {
	if m == nil {
		return observers{
			queueTime: nop{}, computeTime: nop{}, batchSize: nop{},
			rejected:  prometheus.NewCounter(prometheus.CounterOpts{Name: "x"}),
			expired:   prometheus.NewCounter(prometheus.CounterOpts{Name: "x"}),
			cancelled: prometheus.NewCounter(prometheus.CounterOpts{Name: "x"}),
			queued:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"}),
		}
	}
	return observers{
		queueTime:   m.queueTime.WithLabelValues(l.Model, l.Version),
		computeTime: m.computeTime.WithLabelValues(l.Model, l.Version),
		batchSize:   m.batchSize.WithLabelValues(l.Model, l.Version),
		rejected:    m.rejected.WithLabelValues(l.Model, l.Version),
		expired:     m.expired.WithLabelValues(l.Model, l.Version, "deadline"),
		cancelled:   m.expired.WithLabelValues(l.Model, l.Version, "cancelled"),
		queued:      m.queued.WithLabelValues(l.Model, l.Version),
	}
}

type nop struct{}

func (nop) Observe(float64) {}
