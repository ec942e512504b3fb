// Package catalog stores feature set versions in etcd, immutable and
// numbered 1, 2, ... (compare-and-set on create), with each version's
// backfill status, and keeps an in-memory mirror of them current through an
// etcd watch, so that lookups on the hot path never wait for etcd.
//
// Keys:
//
//	bullseye/featuresets/<name>/versions/<n>   FeatureSet (protobuf), never changed once written
//	bullseye/featuresets/<name>/backfill/<n>   BackfillStatus (protobuf)
package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/featureset"
)

// Prefix is the etcd prefix of every feature set key.
const Prefix = "bullseye/featuresets/"

// Errors the catalog returns; handlers map them with errors.Is.
var (
	// ErrNotFound: no such feature set or version.
	ErrNotFound = errors.New("feature set not found")
	// ErrNotReady: the version's backfill is not READY.
	ErrNotReady = errors.New("feature set version not ready")
)

// VersionKey returns the key of a version.
func VersionKey(name string, version int64) string {
	return Prefix + name + "/versions/" + strconv.FormatInt(version, 10)
}

// BackfillKey returns the key of a version's backfill status.
func BackfillKey(name string, version int64) string {
	return Prefix + name + "/backfill/" + strconv.FormatInt(version, 10)
}

type entry struct {
	fs          *featurev1.FeatureSet
	backfill    *featurev1.BackfillStatus
	backfillRev int64
	compiled    *featureset.Set
}

// Catalog is the feature set store and its mirror. It is safe for
// concurrent use.
type Catalog struct {
	cli    *clientv3.Client
	logger *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.RWMutex
	sets    map[string]map[int64]*entry
	rev     int64
	changed chan struct{} // closed and replaced whenever rev moves
}

// Option configures a Catalog.
type Option func(*Catalog)

// WithLogger sets the logger of the stored versions that cannot be read and of watch
// failures; the default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *Catalog) { c.logger = l } }

// Open loads the catalog from cli and keeps it current until Close.
func Open(ctx context.Context, cli *clientv3.Client, opts ...Option) (*Catalog, error) {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c := &Catalog{cli: cli, logger: slog.Default(), cancel: cancel, done: make(chan struct{}), changed: make(chan struct{})}
	for _, o := range opts {
		o(c)
	}
	rev, err := c.load(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	go c.watch(wctx, rev)
	return c, nil
}

// Close stops the watch.
func (c *Catalog) Close() {
	c.cancel()
	<-c.done
}

func (c *Catalog) load(ctx context.Context) (int64, error) {
	resp, err := c.cli.Get(ctx, Prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("loading feature sets from etcd: %w", err)
	}
	sets := map[string]map[int64]*entry{}
	for _, kv := range resp.Kvs {
		apply(sets, string(kv.Key), kv.Value, kv.ModRevision, false, c.logger)
	}
	c.mu.Lock()
	c.sets = sets
	c.setRevLocked(resp.Header.Revision)
	c.mu.Unlock()
	return resp.Header.Revision, nil
}

func (c *Catalog) setRevLocked(rev int64) {
	if rev > c.rev {
		c.rev = rev
		close(c.changed)
		c.changed = make(chan struct{})
	}
}

func (c *Catalog) watch(ctx context.Context, rev int64) {
	defer close(c.done)
	for ctx.Err() == nil {
		wch := c.cli.Watch(clientv3.WithRequireLeader(ctx), Prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		for resp := range wch {
			if err := resp.Err(); err != nil {
				c.logger.Warn("watching feature sets; reloading", slog.Any("error", err))
				break
			}
			c.mu.Lock()
			for _, ev := range resp.Events {
				apply(c.sets, string(ev.Kv.Key), ev.Kv.Value, ev.Kv.ModRevision, ev.Type == clientv3.EventTypeDelete, c.logger)
			}
			c.setRevLocked(resp.Header.Revision)
			c.mu.Unlock()
			rev = resp.Header.Revision
		}
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
		if r, err := c.load(ctx); err == nil {
			rev = r
		}
	}
}

func apply(sets map[string]map[int64]*entry, key string, value []byte, modRev int64, deleted bool, logger *slog.Logger) {
	rest, _ := strings.CutPrefix(key, Prefix)
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return
	}
	name, kind := parts[0], parts[1]
	version, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return
	}
	vs := sets[name]
	if vs == nil {
		vs = map[int64]*entry{}
		sets[name] = vs
	}
	e := vs[version]
	if e == nil {
		e = &entry{}
		vs[version] = e
	}
	switch kind {
	case "versions":
		if deleted {
			delete(vs, version)
			return
		}
		fs := &featurev1.FeatureSet{}
		if err := proto.Unmarshal(value, fs); err != nil {
			logger.Error("reading a feature set version", slog.String("key", key), slog.Any("error", err))
			return
		}
		compiled, err := featureset.Compile(fs, "feature_set")
		if err != nil {
			logger.Error("compiling a stored feature set version", slog.String("key", key), slog.Any("error", err))
		}
		e.fs, e.compiled = fs, compiled
	case "backfill":
		if deleted {
			e.backfill, e.backfillRev = nil, 0
			return
		}
		st := &featurev1.BackfillStatus{}
		if err := proto.Unmarshal(value, st); err != nil {
			logger.Error("reading a backfill status", slog.String("key", key), slog.Any("error", err))
			return
		}
		e.backfill, e.backfillRev = st, modRev
	}
}

// waitRev waits until the mirror has seen rev.
func (c *Catalog) waitRev(ctx context.Context, rev int64) error {
	for {
		c.mu.RLock()
		cur, ch := c.rev, c.changed
		c.mu.RUnlock()
		if cur >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the feature set mirror: %w", ctx.Err())
		}
	}
}

// definition returns fs without its output-only fields.
func definition(fs *featurev1.FeatureSet) *featurev1.FeatureSet {
	d := proto.Clone(fs).(*featurev1.FeatureSet)
	d.Version, d.CreateTime, d.Columns, d.Backfill = 0, nil, nil, nil
	return d
}

// Apply stores fs, already validated, as a new version unless it equals
// the latest version, and returns the stored version with its status and
// whether it was unchanged. streamSeq is the events stream's last sequence
// now: the new version is READY once materialisation has passed it.
func (c *Catalog) Apply(ctx context.Context, fs *featurev1.FeatureSet, compiled *featureset.Set, streamSeq uint64) (*featurev1.FeatureSet, bool, error) {
	def := definition(fs)
	for attempt := 0; ; attempt++ {
		latest := c.latest(def.GetName(), false)
		if latest != nil && proto.Equal(definition(latest.fs), def) {
			return c.withStatus(latest), true, nil
		}
		version := int64(1)
		if latest != nil {
			version = latest.fs.GetVersion() + 1
		}
		now := time.Now()
		stored := proto.Clone(def).(*featurev1.FeatureSet)
		stored.Version = version
		stored.CreateTime = timestamppb.New(now)
		stored.Columns = compiled.Columns
		status := &featurev1.BackfillStatus{
			State:       featurev1.BackfillState_BACKFILL_STATE_PENDING,
			EventsTotal: int64(streamSeq),
			StartTime:   timestamppb.New(now),
		}
		fsBytes, err := proto.Marshal(stored)
		if err != nil {
			return nil, false, err
		}
		stBytes, err := proto.Marshal(status)
		if err != nil {
			return nil, false, err
		}
		key := VersionKey(def.GetName(), version)
		resp, err := c.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, string(fsBytes)), clientv3.OpPut(BackfillKey(def.GetName(), version), string(stBytes))).
			Commit()
		if err != nil {
			return nil, false, fmt.Errorf("storing feature set %s version %d: %w", def.GetName(), version, err)
		}
		if err := c.waitRev(ctx, resp.Header.Revision); err != nil {
			return nil, false, err
		}
		if resp.Succeeded {
			stored.Backfill = status
			return stored, false, nil
		}
		if attempt >= 10 {
			return nil, false, fmt.Errorf("storing feature set %s: too many concurrent writers", def.GetName())
		}
	}
}

func (c *Catalog) latest(name string, ready bool) *entry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var best *entry
	for _, e := range c.sets[name] {
		if e.fs == nil || (ready && e.backfill.GetState() != featurev1.BackfillState_BACKFILL_STATE_READY) {
			continue
		}
		if best == nil || e.fs.GetVersion() > best.fs.GetVersion() {
			best = e
		}
	}
	return best
}

func (c *Catalog) withStatus(e *entry) *featurev1.FeatureSet {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := proto.Clone(e.fs).(*featurev1.FeatureSet)
	if e.backfill != nil {
		out.Backfill = proto.Clone(e.backfill).(*featurev1.BackfillStatus)
	}
	return out
}

func (c *Catalog) find(name string, version int64) *entry {
	if version == 0 {
		return c.latest(name, false)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	e := c.sets[name][version]
	if e == nil || e.fs == nil {
		return nil
	}
	return e
}

// Get returns a version (0: the latest) with its backfill status.
func (c *Catalog) Get(name string, version int64) (*featurev1.FeatureSet, error) {
	e := c.find(name, version)
	if e == nil {
		return nil, notFound(name, version)
	}
	return c.withStatus(e), nil
}

func notFound(name string, version int64) error {
	if version == 0 {
		return fmt.Errorf("%w: %s", ErrNotFound, fault.Quote(name))
	}
	return fmt.Errorf("%w: %s version %d", ErrNotFound, fault.Quote(name), version)
}

// Resolve returns the compiled version to use for lookups or training:
// the given version, or with version 0 the latest READY one (online) or the
// latest one (ready false). With ready, a version that is not READY is
// ErrNotReady.
func (c *Catalog) Resolve(name string, version int64, ready bool) (*featureset.Set, error) {
	var e *entry
	if version == 0 && ready {
		e = c.latest(name, true)
		if e == nil {
			if c.latest(name, false) == nil {
				return nil, notFound(name, 0)
			}
			return nil, fmt.Errorf("%w: no version of %s is READY yet", ErrNotReady, fault.Quote(name))
		}
	} else {
		e = c.find(name, version)
		if e == nil {
			return nil, notFound(name, version)
		}
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if ready && e.backfill.GetState() != featurev1.BackfillState_BACKFILL_STATE_READY {
		return nil, fmt.Errorf("%w: %q version %d is %s", ErrNotReady, name, e.fs.GetVersion(), e.backfill.GetState())
	}
	if e.compiled == nil {
		return nil, fmt.Errorf("feature set %q version %d does not compile", name, e.fs.GetVersion())
	}
	return e.compiled, nil
}

// List returns the feature sets whose name starts with prefix, in name
// order: the latest version of each, or every version (newest first within
// a name).
func (c *Catalog) List(prefix string, all bool) []*featurev1.FeatureSet {
	c.mu.RLock()
	names := make([]string, 0, len(c.sets))
	for name := range c.sets {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	c.mu.RUnlock()
	sort.Strings(names)
	var out []*featurev1.FeatureSet
	for _, name := range names {
		if !all {
			if e := c.latest(name, false); e != nil {
				out = append(out, c.withStatus(e))
			}
			continue
		}
		c.mu.RLock()
		var es []*entry
		for _, e := range c.sets[name] {
			if e.fs != nil {
				es = append(es, e)
			}
		}
		c.mu.RUnlock()
		sort.Slice(es, func(i, j int) bool { return es[i].fs.GetVersion() > es[j].fs.GetVersion() })
		for _, e := range es {
			out = append(out, c.withStatus(e))
		}
	}
	return out
}

// Pending is a version whose backfill is not finished.
type Pending struct {
	// Name and Version identify the version.
	Name    string
	Version int64
	// Status is its current status.
	Status *featurev1.BackfillStatus
	// Revision is the status key's mod revision, for UpdateBackfill.
	Revision int64
}

// Pending returns the versions whose backfill is PENDING or RUNNING.
func (c *Catalog) Pending() []Pending {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []Pending
	for name, vs := range c.sets {
		for v, e := range vs {
			if e.fs == nil || e.backfill == nil {
				continue
			}
			switch e.backfill.GetState() {
			case featurev1.BackfillState_BACKFILL_STATE_PENDING, featurev1.BackfillState_BACKFILL_STATE_RUNNING:
				out = append(out, Pending{Name: name, Version: v, Status: proto.Clone(e.backfill).(*featurev1.BackfillStatus), Revision: e.backfillRev})
			}
		}
	}
	return out
}

// UpdateBackfill writes a version's backfill status if its key is still at
// revision rev (another replica may have moved it on); it reports whether
// it wrote.
func (c *Catalog) UpdateBackfill(ctx context.Context, name string, version int64, st *featurev1.BackfillStatus, rev int64) (bool, error) {
	b, err := proto.Marshal(st)
	if err != nil {
		return false, err
	}
	key := BackfillKey(name, version)
	resp, err := c.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return false, fmt.Errorf("updating the backfill status of %s version %d: %w", name, version, err)
	}
	if err := c.waitRev(ctx, resp.Header.Revision); err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}
