// Command bullseye-feature runs the feature service.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/bullseye-ml/bullseye/pkg/mesh"
	"github.com/bullseye-ml/bullseye/pkg/service"
	"github.com/bullseye-ml/bullseye/services/feature"
)

func main() {
	cfg := feature.NewConfig()
	os.Exit(service.Main(service.Command{
		Name:   feature.Name,
		Flags:  func(fs *flag.FlagSet) { cfg.RegisterFlags(fs) },
		Server: func() *mesh.ServerConfig { return &cfg.Server },
		Run:    func(ctx context.Context) error { return feature.Run(ctx, cfg) },
	}, os.Args[1:], os.Stdout, os.Stderr))
}
