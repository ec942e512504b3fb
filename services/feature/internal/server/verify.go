package server

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
)

// MaxVerifyEntities is the most differing entities a reconciliation lists.
const MaxVerifyEntities = 10000

// VerifyGauges export the last reconciliation's result.
type VerifyGauges struct {
	differences *prometheus.GaugeVec
	total       prometheus.Gauge
}

// VerifyMetrics registers the reconciliation's gauges on reg.
func VerifyMetrics(reg prometheus.Registerer) (*VerifyGauges, error) {
	g := &VerifyGauges{
		differences: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bullseye_feature_verify_difference",
			Help: "Records on the events stream minus those the profiles hold or dropped by retention, per event name (or (identify), (consent)), at the last VerifyMaterialization: 0 when nothing accepted was lost.",
		}, []string{"record"}),
		total: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bullseye_feature_verify_differences",
			Help: "The sum over customers and record kinds of |difference| at the last VerifyMaterialization.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{g.differences, g.total} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return g, nil
}

func (g *VerifyGauges) record(resp *featurev1.VerifyMaterializationResponse) {
	if g == nil {
		return
	}
	g.differences.Reset()
	for _, rc := range resp.GetRecords() {
		g.differences.WithLabelValues(rc.GetName()).Set(float64(rc.GetDifference()))
	}
	g.total.Set(float64(resp.GetDifferences()))
}

// VerifyMaterialization implements featurev1.FeatureServiceServer.
func (s *Server) VerifyMaterialization(ctx context.Context, req *featurev1.VerifyMaterializationRequest) (*featurev1.VerifyMaterializationResponse, error) {
	resp, err := s.verifyMaterialization(ctx, req)
	return resp, statuses.Status(ctx, s.logger, "VerifyMaterialization", err)
}

func (s *Server) verifyMaterialization(ctx context.Context, req *featurev1.VerifyMaterializationRequest) (*featurev1.VerifyMaterializationResponse, error) {
	n := int(req.GetMaxEntities())
	if n < 0 || n > MaxVerifyEntities {
		return nil, fault.Invalid("max_entities", "%d, want 0 (the default, 100) to %d", n, MaxVerifyEntities)
	}
	seq, err := s.lastSeq(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.builder.CatchUp(ctx, seq); err != nil {
		return nil, err
	}
	resp, err := s.verifier.Verify(ctx, seq, n)
	if err != nil {
		return nil, fmt.Errorf("reconciling the stream with the profiles: %w", err)
	}
	s.verified.record(resp)
	return resp, nil
}
