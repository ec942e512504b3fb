// Package serving runs Bullseye's serving service, which holds the promoted
// models in memory and answers Predict and Recommend for internal backends
// through a batched prediction core (DESIGN §1, §7).
package serving

import (
	"context"
	"flag"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/pkg/gen/inference"
	"github.com/bullseye-ml/bullseye/pkg/service"
)

// Name is the service's name in discovery: bullseye/services/serving.
const Name = "serving"

// featureService is the name under which the feature service registers.
const featureService = "feature"

// Config is the serving service's configuration.
type Config struct {
	service.Config
	// ReadinessInterval is how often serving checks that it reaches the
	// feature service; it is ready only while it does.
	ReadinessInterval time.Duration
}

// NewConfig returns the defaults.
func NewConfig() Config {
	return Config{Config: service.NewConfig(Name), ReadinessInterval: time.Second}
}

// RegisterFlags registers the service's flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	fs.DurationVar(&c.ReadinessInterval, "readiness-interval", c.ReadinessInterval, "how often to check that the feature service is reachable")
}

// Run serves the serving service until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if cfg.ReadinessInterval <= 0 {
		return fmt.Errorf("--readiness-interval: %v, want a positive duration", cfg.ReadinessInterval)
	}
	node, err := service.NewNode(ctx, cfg.Config)
	if err != nil {
		return err
	}
	features, err := node.Dial(ctx, featureService)
	if err != nil {
		node.Close()
		return fmt.Errorf("dialing the feature service: %w", err)
	}
	defer features.Close()
	servingv1.RegisterPredictionServiceServer(node.GRPC(), &server{})
	inference.RegisterGRPCInferenceServiceServer(node.GRPC(), &inferenceServer{})

	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go watchReadiness(rctx, node, features, cfg)
	return node.Serve(ctx)
}

// watchReadiness keeps serving's health in step with its reach of the
// feature service: every Predict by user id needs a feature lookup, so a
// serving instance that cannot reach one is not ready.
func watchReadiness(ctx context.Context, node *service.Node, features grpc.ClientConnInterface, cfg Config) {
	tracer := tracerOf(cfg)
	client := healthpb.NewHealthClient(features)
	ready := false
	t := time.NewTicker(cfg.ReadinessInterval)
	defer t.Stop()
	for {
		cctx, span := tracer.Start(ctx, "serving.readiness")
		cctx, cancel := context.WithTimeout(cctx, cfg.ReadinessInterval)
		resp, err := client.Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		span.End()
		now := err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
		if now != ready {
			ready = now
			node.Server().SetReady(ready)
			node.Logger().Info("readiness changed", "ready", ready, "feature_error", errString(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func tracerOf(cfg Config) trace.Tracer {
	tp := cfg.Server.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer("github.com/bullseye-ml/bullseye/services/serving")
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// server answers the PredictionService RPCs.
type server struct {
	servingv1.UnimplementedPredictionServiceServer
}

// inferenceServer answers the Open Inference Protocol v2 RPCs.
type inferenceServer struct {
	inference.UnimplementedGRPCInferenceServiceServer
}
