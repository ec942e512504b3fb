package serving

import (
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/services/serving/internal/testenv"
)

// TestReadinessIsNotTraced: an idle serving instance checking its readiness every 50 ms makes
// no span in 3 s, while a Predict call is traced by the same tracer provider.
func TestReadinessIsNotTraced(t *testing.T) {
	b := sharedBank(t)
	b.register(t, "bank-quiet", testenv.Routing{Live: map[int64]uint32{1: 1}}, b.v1)
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = tp.Shutdown(ctxT(t, 5*time.Second)) })
	in := startServing(t, b.env, func(c *Config) {
		c.Server.TracerProvider = tp
		c.ReadinessInterval = 50 * time.Millisecond
	})

	spans.Reset()
	time.Sleep(3 * time.Second)
	if got := spans.GetSpans(); len(got) > 0 {
		t.Errorf("3 s of idle readiness checks made %d spans, want none; the first: %q", len(got), got[0].Name)
	}

	id := b.data.Rows[b.data.Test[0]].GetEntity().GetId()
	if _, err := in.client.Predict(ctxT(t, 10*time.Second), &servingv1.PredictRequest{Model: ref("bank-quiet"), Instances: byUser(id)}); err != nil {
		t.Fatal(err)
	}
	if len(spans.GetSpans()) == 0 {
		t.Error("a Predict call made no span: the tracer provider is not the one serving uses")
	}
}
