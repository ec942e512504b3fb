// Package training runs Bullseye's training service: training jobs with
// preprocessing, the model families, model selection by cross-validation,
// evaluation and the model registry (DESIGN §1).
package training

import (
	"context"
	"flag"

	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/service"
)

// Name is the service's name in discovery: bullseye/services/training.
const Name = "training"

// Config is the training service's configuration.
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

// Run serves the training service until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	node, err := service.NewNode(ctx, cfg.Config)
	if err != nil {
		return err
	}
	trainingv1.RegisterTrainingServiceServer(node.GRPC(), &server{})
	node.Server().SetReady(true)
	return node.Serve(ctx)
}

// server answers the TrainingService RPCs.
type server struct {
	trainingv1.UnimplementedTrainingServiceServer
}
