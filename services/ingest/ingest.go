// Package ingest runs Bullseye's ingest service: it takes customer events
// and bulk imports, de-duplicates them, pseudonymises personal fields and
// keeps them durably on the event stream (DESIGN §1).
package ingest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/pkg/service"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/importer"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/record"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/server"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/store"
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
	// HMACKeyFile holds the key personal fields are pseudonymised with. When
	// empty, the key is read from the environment (eventlog.KeyEnv,
	// BULLSEYE_HMAC_KEY). Every service must use the same key.
	HMACKeyFile string
	// HMACKeyID names the key on stored records; empty derives it from the
	// key.
	HMACKeyID string
	// DevHMACKey, for development only, generates a key into
	// <DataDir>/hmac.key on first start when no key is configured, and uses
	// it afterwards.
	DevHMACKey bool
	// PersonalFields are the fields pseudonymised at the door (see
	// record.WithPersonalFields).
	PersonalFields []string
	// DedupWindow is how long a message id is remembered for
	// de-duplication.
	DedupWindow time.Duration
	// PublishTimeout bounds how long a call waits for JetStream to store its
	// records before answering UNAVAILABLE.
	PublishTimeout time.Duration
	// ErasureWait bounds how long ForgetUser waits for the feature service
	// to confirm the deletion of the customer's state.
	ErasureWait time.Duration
	// ImportProgressInterval is how often an import reports and records its
	// progress.
	ImportProgressInterval time.Duration
	// FreeTextPersonalData says what happens to e-mail addresses and phone
	// numbers found inside the text of properties and traits (outside the
	// personal fields): "pseudonymise" (the default) replaces each by its
	// keyed pseudonym, "reject" rejects the item.
	FreeTextPersonalData string
}

// NewConfig returns the defaults: 500 events per call of at most 32 KiB
// each, a 24 h de-duplication window, the default personal fields.
func NewConfig() Config {
	return Config{
		Config:            service.NewConfig(Name),
		MaxEventsPerBatch: 500,
		MaxEventBytes:     32 << 10,
		PersonalFields:    record.DefaultPersonalFields,
		DedupWindow:       eventlog.DefaultDuplicates,
		PublishTimeout:    store.DefaultPublishTimeout,
		ErasureWait:       server.DefaultErasureWait,

		ImportProgressInterval: time.Second,
		FreeTextPersonalData:   record.FreeTextPseudonymiseName,
	}
}

// RegisterFlags registers the service's flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	fs.IntVar(&c.MaxEventsPerBatch, "max-events-per-batch", c.MaxEventsPerBatch, "most events one Track call may carry")
	fs.IntVar(&c.MaxEventBytes, "max-event-bytes", c.MaxEventBytes, "largest encoded event accepted")
	fs.StringVar(&c.HMACKeyFile, "hmac-key-file", c.HMACKeyFile, "file holding the HMAC key that pseudonymises personal fields (default: the key in $"+eventlog.KeyEnv+")")
	fs.StringVar(&c.HMACKeyID, "hmac-key-id", c.HMACKeyID, "id of the HMAC key on stored records (default: derived from the key)")
	fs.BoolVar(&c.DevHMACKey, "dev-hmac-key", c.DevHMACKey, "development only: without a configured key, generate one into <data-dir>/hmac.key")
	fs.Func("personal-fields", "comma-separated personal fields, pseudonymised at the door: names of traits and properties, traits.<name>, properties.<name>, context.<field> (default "+strings.Join(c.PersonalFields, ",")+")", func(s string) error {
		c.PersonalFields = nil
		for _, f := range strings.Split(s, ",") {
			if f = strings.TrimSpace(f); f != "" {
				c.PersonalFields = append(c.PersonalFields, f)
			}
		}
		return nil
	})
	fs.DurationVar(&c.DedupWindow, "dedup-window", c.DedupWindow, "how long message ids are remembered for de-duplication")
	fs.DurationVar(&c.PublishTimeout, "publish-timeout", c.PublishTimeout, "how long a call waits for JetStream's acks before answering UNAVAILABLE")
	fs.DurationVar(&c.ErasureWait, "erasure-wait", c.ErasureWait, "how long ForgetUser waits for the feature service to confirm")
	fs.DurationVar(&c.ImportProgressInterval, "import-progress-interval", c.ImportProgressInterval, "how often an import reports and records its progress")
	fs.StringVar(&c.FreeTextPersonalData, "free-text-personal-data", c.FreeTextPersonalData,
		`what to do with e-mail addresses and phone numbers inside the text of properties and traits: "pseudonymise" (replace each by its keyed pseudonym) or "reject" (reject the item)`)
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
	if bad := record.ValidatePersonalFields(c.PersonalFields); len(bad) > 0 {
		errs = append(errs, fmt.Errorf("--personal-fields: unknown context fields %v", bad))
	}
	if c.DedupWindow < time.Minute {
		errs = append(errs, fmt.Errorf("--dedup-window: %s, want at least 1m", c.DedupWindow))
	}
	if c.PublishTimeout < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("--publish-timeout: %s, want at least 100ms", c.PublishTimeout))
	}
	if c.ErasureWait < 0 {
		errs = append(errs, fmt.Errorf("--erasure-wait: %s is negative", c.ErasureWait))
	}
	if _, err := record.ParseFreeText(c.FreeTextPersonalData); err != nil {
		errs = append(errs, fmt.Errorf("--free-text-personal-data: %w", err))
	}
	if c.ImportProgressInterval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("--import-progress-interval: %s, want at least 10ms", c.ImportProgressInterval))
	}
	return errors.Join(c.Config.Validate(), errors.Join(errs...))
}

// maxRecvBytes is the server's receive limit: it fits the largest allowed
// batch, so an oversized event is refused on its own, never its whole call.
func (c *Config) maxRecvBytes() int {
	const overhead = 1 << 20 // envelope, field tags, a little slack
	return c.MaxEventsPerBatch*(c.MaxEventBytes+64) + overhead
}

// Pseudonymiser loads the HMAC key the configuration names (never logging
// it) and returns the pseudonymiser every ingest component uses.
func (c *Config) Pseudonymiser() (*eventlog.Pseudonymiser, error) {
	p, err := eventlog.LoadPseudonymiser(c.HMACKeyFile, c.HMACKeyID)
	if errors.Is(err, eventlog.ErrNoKey) && c.DevHMACKey {
		key, derr := devKey(filepath.Join(c.DataDir, "hmac.key"))
		if derr != nil {
			return nil, fmt.Errorf("--dev-hmac-key: %w", derr)
		}
		return eventlog.NewPseudonymiser(key, c.HMACKeyID)
	}
	if errors.Is(err, eventlog.ErrNoKey) {
		return nil, fmt.Errorf("no HMAC key: give --hmac-key-file or set %s (or --dev-hmac-key for development)", eventlog.KeyEnv)
	}
	if err != nil {
		return nil, fmt.Errorf("--hmac-key-file: %w", err)
	}
	return p, nil
}

// devKey reads the development key at path, creating it first if needed.
func devKey(path string) ([]byte, error) {
	if k, err := eventlog.ReadKeyFile(path); err == nil {
		return k, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return eventlog.ReadKeyFile(path) // created by a sibling meanwhile
	}
	defer f.Close()
	if _, err := f.WriteString(base64.RawURLEncoding.EncodeToString(raw) + "\n"); err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	return eventlog.ReadKeyFile(path)
}

// Run serves the ingest service until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if need := cfg.maxRecvBytes(); cfg.Server.MaxRecvMsgSize < need {
		cfg.Server.MaxRecvMsgSize = need
	}
	ps, err := cfg.Pseudonymiser()
	if err != nil {
		return err
	}
	node, err := service.NewNode(ctx, cfg.Config)
	if err != nil {
		return err
	}
	parts, err := start(ctx, cfg, node, ps)
	if err != nil {
		node.Close()
		return err
	}
	defer parts.close()
	ingestv1.RegisterIngestServiceServer(node.GRPC(), parts.server)
	parts.logger.InfoContext(ctx, "ingest ready", "hmac_key_id", ps.KeyID(), "dedup_window", cfg.DedupWindow.String())
	// While NATS is unreachable the connection, a dependency of the server,
	// keeps it NOT_SERVING: a replica that cannot store answers UNAVAILABLE,
	// and health checks steer callers to the others.
	node.Server().SetReady(true)
	return node.Serve(ctx)
}

// parts are the service's components.
type parts struct {
	nc     *nats.Conn
	store  *store.Store
	server *server.Server
	logger *slog.Logger
}

func start(ctx context.Context, cfg Config, node *service.Node, ps *eventlog.Pseudonymiser) (_ *parts, err error) {
	p := &parts{logger: node.Logger()}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	var js jetstream.JetStream
	if p.nc, js, err = node.JetStream(store.JetStreamOptions(cfg.PublishTimeout)); err != nil {
		return nil, err
	}
	if p.store, err = openStore(ctx, js, cfg); err != nil {
		return nil, err
	}
	// Accepted events must fit in a NATS message, with the record's extra
	// fields and headers.
	if limit := p.nc.MaxPayload(); limit > 0 && int64(cfg.MaxEventBytes)+16<<10 > limit {
		return nil, fmt.Errorf("--max-event-bytes: %d does not fit the NATS server's max_payload of %d with 16 KiB to spare", cfg.MaxEventBytes, limit)
	}
	freeText, _ := record.ParseFreeText(cfg.FreeTextPersonalData) // checked by Validate
	b := record.New(ps, record.WithMaxItemBytes(cfg.MaxEventBytes), record.WithPersonalFields(cfg.PersonalFields), record.WithFreeText(freeText))
	opts := []server.Option{
		server.WithLogger(p.logger),
		server.WithMaxBatch(cfg.MaxEventsPerBatch),
		server.WithErasureWait(cfg.ErasureWait),
		server.WithImporter(importer.New(p.store, b, importer.WithLogger(p.logger), importer.WithProgressInterval(cfg.ImportProgressInterval))),
	}
	if cfg.Server.TracerProvider != nil {
		opts = append(opts, server.WithTracerProvider(cfg.Server.TracerProvider))
	}
	p.server = server.New(p.store, b, opts...)
	return p, nil
}

func (p *parts) close() {
	if p.store != nil {
		p.store.Close()
	}
	if p.nc != nil {
		p.nc.Close()
	}
}

// openStore opens the event log, retrying while NATS is not reachable yet.
func openStore(ctx context.Context, js jetstream.JetStream, cfg Config) (*store.Store, error) {
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := store.New(octx, js, store.WithLayout(eventlog.WithDuplicates(cfg.DedupWindow), eventlog.WithReplicas(cfg.StreamReplicas)))
		cancel()
		if err == nil {
			return st, nil
		}
		if !errors.Is(err, store.ErrUnavailable) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("opening the event log at %s: %w", cfg.NATSURL, errors.Join(ctx.Err(), err))
		case <-time.After(wait):
		}
	}
}
