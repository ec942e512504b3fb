// Package feature runs Bullseye's feature service, which turns customer
// events into per-customer features: online for serving and point-in-time
// correct for training (DESIGN §1).
package feature

import (
	"context"
	"flag"

	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	"github.com/bullseye-ml/bullseye/pkg/service"
)

// Name is the service's name in discovery: bullseye/services/feature.
const Name = "feature"

// Config is the feature service's configuration.
type Config struct {
	service.Config
}

// NewConfig returns the defaults.
func NewConfig() Config {
	return Config{Config: service.NewConfig(Name)}
}

// RegisterFlags registers the service's flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
}

// Run serves the feature service until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	node, err := service.NewNode(ctx, cfg.Config)
	if err != nil {
		return err
	}
	featurev1.RegisterFeatureServiceServer(node.GRPC(), &server{})
	node.Server().SetReady(true)
	return node.Serve(ctx)
}

// server answers the FeatureService RPCs.
type server struct {
	featurev1.UnimplementedFeatureServiceServer
}
