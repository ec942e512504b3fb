package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream and bucket names.
const (
	// EventsStream holds every accepted record, on per-customer subjects.
	EventsStream = "BULLSEYE_EVENTS"
	// DeadLettersStream holds rejected items with their reasons.
	DeadLettersStream = "BULLSEYE_DEADLETTERS"
	// AuditStream holds erasure audit records. It refuses deletes and purges.
	AuditStream = "BULLSEYE_AUDIT"
	// ImportsBucket records import progress by the file's SHA-256 digest.
	ImportsBucket = "bullseye_imports"
	// ErasuresBucket is the erasure list: one ErasureRecord per erased
	// customer, keyed by SubjectHash.
	ErasuresBucket = "bullseye_erasures"
	// ReplaysBucket records which dead letters were replayed, keyed by dead
	// letter id, valued by the replay time (RFC 3339).
	ReplaysBucket = "bullseye_deadletter_replays"
)

// Defaults of the layout's options.
const (
	// DefaultDuplicates is the default de-duplication window of the events
	// and dead-letter streams.
	DefaultDuplicates = 24 * time.Hour
	// DefaultDeadLetterMaxAge is how long dead letters are kept by default.
	DefaultDeadLetterMaxAge = 30 * 24 * time.Hour
)

// Option adjusts the layout Ensure creates.
type Option func(*options)

type options struct {
	replicas         int
	duplicates       time.Duration
	deadLetterMaxAge time.Duration
	storage          jetstream.StorageType
	keepExisting     bool
}

// WithReplicas sets the number of replicas of every stream and bucket: 1
// (the default) for an embedded server, 3 on a cluster.
func WithReplicas(n int) Option { return func(o *options) { o.replicas = n } }

// WithDuplicates sets the de-duplication window of the events and
// dead-letter streams: a record whose message id was stored within it is not
// stored again. The default is DefaultDuplicates.
func WithDuplicates(d time.Duration) Option { return func(o *options) { o.duplicates = d } }

// WithDeadLetterMaxAge sets how long dead letters (and their replay marks)
// are kept. The default is DefaultDeadLetterMaxAge; it is at least the
// de-duplication window.
func WithDeadLetterMaxAge(d time.Duration) Option {
	return func(o *options) { o.deadLetterMaxAge = d }
}

// WithMemoryStorage keeps every stream in memory instead of files (for
// benchmarks and throw-away tests only: nothing survives a restart).
func WithMemoryStorage() Option { return func(o *options) { o.storage = jetstream.MemoryStorage } }

// KeepExisting makes Ensure create only the streams and buckets that do not
// exist and leave existing ones as they are. Readers such as the feature
// service use it so that they can start first without overriding the
// writer's (ingest's) settings.
func KeepExisting() Option { return func(o *options) { o.keepExisting = true } }

func newOptions(opts []Option) (options, error) {
	o := options{
		replicas:         1,
		duplicates:       DefaultDuplicates,
		deadLetterMaxAge: DefaultDeadLetterMaxAge,
		storage:          jetstream.FileStorage,
	}
	for _, opt := range opts {
		opt(&o)
	}
	var errs []error
	if o.replicas < 1 || o.replicas > 5 {
		errs = append(errs, fmt.Errorf("replicas %d, want 1 to 5", o.replicas))
	}
	if o.duplicates < time.Second {
		errs = append(errs, fmt.Errorf("de-duplication window %s, want at least 1s", o.duplicates))
	}
	if o.deadLetterMaxAge < o.duplicates {
		errs = append(errs, fmt.Errorf("dead-letter max age %s is shorter than the de-duplication window %s", o.deadLetterMaxAge, o.duplicates))
	}
	return o, errors.Join(errs...)
}

// StreamConfigs returns the configurations of the three streams for opts.
func StreamConfigs(opts ...Option) ([]jetstream.StreamConfig, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	return o.streams(), nil
}

func (o options) streams() []jetstream.StreamConfig {
	return []jetstream.StreamConfig{
		{
			Name:        EventsStream,
			Description: "Bullseye records: events, trait updates, consent changes, erasure orders; per-customer subjects",
			Subjects:    []string{EventsPrefix + ".>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     o.storage,
			Replicas:    o.replicas,
			Duplicates:  o.duplicates,
			AllowDirect: true,
		},
		{
			Name:        DeadLettersStream,
			Description: "Bullseye dead letters: rejected items with reasons, personal fields pseudonymised",
			Subjects:    []string{DeadLettersPrefix + ".>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     o.storage,
			Replicas:    o.replicas,
			Duplicates:  o.duplicates,
			MaxAge:      o.deadLetterMaxAge,
			AllowDirect: true,
		},
		{
			Name:        AuditStream,
			Description: "Bullseye audit records of erasures; customers named only by keyed hash",
			Subjects:    []string{AuditPrefix + ".>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     o.storage,
			Replicas:    o.replicas,
			Duplicates:  2 * time.Minute,
			DenyDelete:  true,
			DenyPurge:   true,
			AllowDirect: true,
		},
	}
}

func (o options) buckets() []jetstream.KeyValueConfig {
	return []jetstream.KeyValueConfig{
		{
			Bucket:      ImportsBucket,
			Description: "Bullseye import progress by file digest",
			History:     1,
			Storage:     o.storage,
			Replicas:    o.replicas,
		},
		{
			Bucket:      ErasuresBucket,
			Description: "Bullseye erasure list by keyed hash of the customer id",
			History:     1,
			Storage:     o.storage,
			Replicas:    o.replicas,
		},
		{
			Bucket:      ReplaysBucket,
			Description: "Bullseye replayed dead letters by dead letter id",
			History:     1,
			TTL:         o.deadLetterMaxAge,
			Storage:     o.storage,
			Replicas:    o.replicas,
		},
	}
}

// Ensure creates the streams and buckets of the layout, or updates existing
// ones to the configuration opts describe (unless KeepExisting is given). It
// is idempotent and safe to call from several processes at once.
func Ensure(ctx context.Context, js jetstream.JetStream, opts ...Option) error {
	o, err := newOptions(opts)
	if err != nil {
		return fmt.Errorf("ensuring the event log layout: %w", err)
	}
	for _, cfg := range o.streams() {
		err := Retry(ctx, func(ctx context.Context) (err error) {
			if o.keepExisting {
				_, err = js.CreateStream(ctx, cfg)
				if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
					err = nil
				}
			} else {
				_, err = js.CreateOrUpdateStream(ctx, cfg)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("ensuring stream %s: %w", cfg.Name, err)
		}
	}
	for _, cfg := range o.buckets() {
		err := Retry(ctx, func(ctx context.Context) (err error) {
			if o.keepExisting {
				_, err = js.CreateKeyValue(ctx, cfg)
				if errors.Is(err, jetstream.ErrBucketExists) {
					err = nil
				}
			} else {
				_, err = js.CreateOrUpdateKeyValue(ctx, cfg)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("ensuring bucket %s: %w", cfg.Bucket, err)
		}
	}
	return nil
}

// Purge removes every message on subject (wildcards allowed) from stream and
// returns how many it removed. jetstream.Stream.Purge does not report the
// count, which erasure receipts need, so Purge calls the JetStream API
// directly.
func Purge(ctx context.Context, js jetstream.JetStream, stream, subject string) (uint64, error) {
	req, err := json.Marshal(struct {
		Filter string `json:"filter"`
	}{subject})
	if err != nil {
		return 0, err
	}
	msg, err := js.Conn().RequestWithContext(ctx, apiPrefix(js)+"STREAM.PURGE."+stream, req)
	if err != nil {
		return 0, fmt.Errorf("purging %s from %s: %w", subject, stream, err)
	}
	var resp struct {
		Success bool   `json:"success"`
		Purged  uint64 `json:"purged"`
		Error   *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return 0, fmt.Errorf("purging %s from %s: reading the answer: %w", subject, stream, err)
	}
	if resp.Error != nil {
		return 0, fmt.Errorf("purging %s from %s: %s (code %d, error code %d)", subject, stream, resp.Error.Description, resp.Error.Code, resp.Error.ErrCode)
	}
	if !resp.Success {
		return 0, fmt.Errorf("purging %s from %s: the server did not confirm", subject, stream)
	}
	return resp.Purged, nil
}

// apiPrefix returns the prefix js sends API requests with, as jetstream.New,
// NewWithAPIPrefix and NewWithDomain set it.
func apiPrefix(js jetstream.JetStream) string {
	o := js.Options()
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		if !strings.HasSuffix(o.APIPrefix, ".") {
			return o.APIPrefix + "."
		}
		return o.APIPrefix
	default:
		return jetstream.DefaultAPIPrefix
	}
}
