// Command bullseye-serving runs the serving service.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/bullseye-ml/bullseye/pkg/mesh"
	"github.com/bullseye-ml/bullseye/pkg/service"
	"github.com/bullseye-ml/bullseye/services/serving"
)

func main() {
	cfg := serving.NewConfig()
	os.Exit(service.Main(service.Command{
		Name:   serving.Name,
		Flags:  func(fs *flag.FlagSet) { cfg.RegisterFlags(fs) },
		Server: func() *mesh.ServerConfig { return &cfg.Server },
		Run:    func(ctx context.Context) error { return serving.Run(ctx, cfg) },
	}, os.Args[1:], os.Stdout, os.Stderr))
}
