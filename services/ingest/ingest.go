// Package ingest runs Bullseye's ingest service: it takes customer events
// and bulk imports, de-duplicates them, pseudonymises personal fields and
// keeps them durably on the event stream (DESIGN §1).
package ingest

import (
	"context"
	"errors"
	"flag"
	"fmt"

	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/pkg/service"
)

// Name is the service's name in discovery: bullseye/services/ingest.
const Name = "ingest"

// Config is the ingest service's configuration.
type Config struct {
	service.Config
	// MaxEventsPerBatch is the most events one Track call may carry.
	MaxEventsPerBatch int
	// MaxEventBytes is the largest encoded event accepted; a larger one is
	// rejected on its own, not with its whole batch.
	MaxEventBytes int
}

// NewConfig returns the defaults: 500 events per call of at most 32 KiB each.
func NewConfig() Config {
	return Config{
		Config:            service.NewConfig(Name),
		MaxEventsPerBatch: 500,
		MaxEventBytes:     32 << 10,
	}
}

// RegisterFlags registers the service's flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	fs.IntVar(&c.MaxEventsPerBatch, "max-events-per-batch", c.MaxEventsPerBatch, "most events one Track call may carry")
	fs.IntVar(&c.MaxEventBytes, "max-event-bytes", c.MaxEventBytes, "largest encoded event accepted")
}

// Validate reports configuration mistakes, naming the flag.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxEventsPerBatch < 1 {
		errs = append(errs, fmt.Errorf("--max-events-per-batch: %d, want at least 1", c.MaxEventsPerBatch))
	}
	if c.MaxEventBytes < 1<<10 {
		errs = append(errs, fmt.Errorf("--max-event-bytes: %d, want at least 1024", c.MaxEventBytes))
	}
	return errors.Join(c.Config.Validate(), errors.Join(errs...))
}

// maxRecvBytes is the server's receive limit: it fits the largest allowed
// batch, so an oversized event is refused on its own, never its whole call.
func (c *Config) maxRecvBytes() int {
	const overhead = 1 << 20 // envelope, field tags, a little slack
	return c.MaxEventsPerBatch*(c.MaxEventBytes+64) + overhead
}

// Run serves the ingest service until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if need := cfg.maxRecvBytes(); cfg.Server.MaxRecvMsgSize < need {
		cfg.Server.MaxRecvMsgSize = need
	}
	node, err := service.NewNode(ctx, cfg.Config)
	if err != nil {
		return err
	}
	ingestv1.RegisterIngestServiceServer(node.GRPC(), &server{})
	node.Server().SetReady(true)
	return node.Serve(ctx)
}

// server answers the IngestService RPCs.
type server struct {
	ingestv1.UnimplementedIngestServiceServer
}
