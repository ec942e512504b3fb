// Command bullseye-training runs the training service.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/bullseye-ml/bullseye/pkg/mesh"
	"github.com/bullseye-ml/bullseye/pkg/service"
	"github.com/bullseye-ml/bullseye/services/training"
)

func main() {
	cfg := training.NewConfig()
	os.Exit(service.Main(service.Command{
		Name:   training.Name,
		Flags:  func(fs *flag.FlagSet) { cfg.RegisterFlags(fs) },
		Server: func() *mesh.ServerConfig { return &cfg.Server },
		Run:    func(ctx context.Context) error { return training.Run(ctx, cfg) },
	}, os.Args[1:], os.Stdout, os.Stderr))
}
