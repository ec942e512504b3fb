// Package state keeps customers' profiles in the JetStream key-value bucket
// that every feature replica shares, with an in-memory cache in each
// replica. The cache is kept coherent by a watch on the bucket (a replica
// that owns a customer's partition writes; every replica sees the write and
// refreshes its cached copy) and by an eviction broadcast for erasures,
// which leave no trace in the bucket to watch.
package state

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
)

// Bucket is the key-value bucket of profiles. A key is "<kind>.<token>":
// the subject kind (eventlog.KindUser "u" or eventlog.KindAnonymous "a")
// and the eventlog.EncodeID token of the id; the value is profile.Encode.
const Bucket = "bullseye_features"

// StreamName is the stream behind Bucket.
const StreamName = "KV_" + Bucket

// EvictSubject is the core NATS subject on which replicas tell each other
// to drop a key from their caches (after an erasure).
const EvictSubject = "bullseye.feature.evict"

// DefaultCacheSize is the default number of profiles each replica caches.
const DefaultCacheSize = 200_000

const shards = 64

// KeyOf returns the bucket key of a subject key.
func KeyOf(k eventlog.Key) (string, error) {
	b, err := AppendKey(make([]byte, 0, len(k.Kind)+1+base64.RawURLEncoding.EncodedLen(len(k.ID))), k)
	return string(b), err
}

// AppendKey appends the bucket key of a subject key to dst: KeyOf without
// a string of its own, for lookups of many keys at once.
func AppendKey(dst []byte, k eventlog.Key) ([]byte, error) {
	if k.ID == "" {
		return dst, eventlog.ErrEmptyID
	}
	if len(k.ID) > fault.MaxIDBytes {
		return dst, eventlog.ErrIDTooLong
	}
	dst = append(dst, k.Kind...)
	dst = append(dst, '.')
	return base64.RawURLEncoding.AppendEncode(dst, []byte(k.ID)), nil
}

// UserPrefix is the key filter of every customer (not anonymous) profile.
const UserPrefix = string(eventlog.KindUser) + ".>"

// Subject returns the stream subject of a bucket key.
func Subject(key string) string { return "$KV." + Bucket + "." + key }

// Entry is a cached version of a profile. It keeps the profile encoded,
// which the garbage collector does not need to look into (a decoded history
// is thousands of pointers), and decodes it on demand.
type Entry struct {
	rev     uint64
	data    []byte // nil: no such key
	pending bool   // a read is under way
	// Memo keeps what readers derived from this version (feature values
	// evaluated online).
	Memo profile.Memo
	// consent is the profile's latest consent state plus one; 0 until known.
	consent atomic.Int32
	// hash is the keyed hash of the key's id, once computed.
	hash atomic.Pointer[string]
}

// SubjectHash returns the keyed hash of id, the id of the entry's key (as
// the erasure list holds it), computing it with hash the first time only.
func (e *Entry) SubjectHash(id string, hash func(id string) string) string {
	if h := e.hash.Load(); h != nil {
		return *h
	}
	h := hash(id)
	e.hash.Store(&h)
	return h
}

// Consent returns the profile's latest consent state, decoding it with
// load (which must decode this entry) the first time only.
func (e *Entry) Consent(load func() (*profile.Profile, error)) (commonv1.ConsentState, error) {
	if c := e.consent.Load(); c != 0 {
		return commonv1.ConsentState(c - 1), nil
	}
	p, err := load()
	if err != nil || p == nil {
		return commonv1.ConsentState_CONSENT_STATE_UNSPECIFIED, err
	}
	c := p.Consent()
	e.consent.Store(int32(c) + 1)
	return c, nil
}

// Found reports whether the key has a profile.
func (e *Entry) Found() bool { return e.data != nil }

// Profile decodes the profile; nil when there is none. Each call returns a
// new copy, which the caller may change.
func (e *Entry) Profile() (*profile.Profile, error) {
	if e.data == nil {
		return nil, nil
	}
	return profile.Decode(e.data, nil)
}

type shard struct {
	mu sync.RWMutex
	m  map[string]*Entry
}

// Option configures Open.
type Option func(*options)

type options struct {
	replicas  int
	memory    bool
	cacheSize int
	logger    *slog.Logger
}

// WithReplicas sets the bucket's replicas: 1 (the default) for one server, 3 on a cluster.
func WithReplicas(n int) Option { return func(o *options) { o.replicas = n } }

// WithMemory keeps the bucket in memory when memory is true (benchmarks only).
func WithMemory(memory bool) Option { return func(o *options) { o.memory = memory } }

// WithCacheSize sets the most profiles cached; the default is DefaultCacheSize.
func WithCacheSize(n int) Option { return func(o *options) { o.cacheSize = n } }

// WithLogger sets the logger of warnings; the default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Store is the profile bucket with its cache. It is safe for concurrent
// use.
type Store struct {
	js       jetstream.JetStream
	kv       jetstream.KeyValue
	logger   *slog.Logger
	seed     maphash.Seed
	shards   [shards]shard
	perShard int
	watcher  jetstream.KeyWatcher
	sub      *nats.Subscription
	done     chan struct{}

	hits, misses atomic.Int64
}

// Open opens (creating if needed) the bucket and starts the cache's watch.
func Open(ctx context.Context, js jetstream.JetStream, opts ...Option) (*Store, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.replicas == 0 {
		o.replicas = 1
	}
	if o.cacheSize <= 0 {
		o.cacheSize = DefaultCacheSize
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	storage := jetstream.FileStorage
	if o.memory {
		storage = jetstream.MemoryStorage
	}
	var kv jetstream.KeyValue
	err := eventlog.Retry(ctx, func(ctx context.Context) (err error) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      Bucket,
			Description: "Bullseye feature state: one profile (event history, traits, consent) per customer",
			History:     1,
			Storage:     storage,
			Replicas:    o.replicas,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, Bucket)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening bucket %s: %w", Bucket, err)
	}
	s := &Store{js: js, kv: kv, logger: o.logger, seed: maphash.MakeSeed(), perShard: max(1, o.cacheSize/shards), done: make(chan struct{})}
	for i := range s.shards {
		s.shards[i].m = map[string]*Entry{}
	}
	s.watcher, err = kv.WatchAll(context.WithoutCancel(ctx), jetstream.UpdatesOnly())
	if err != nil {
		return nil, fmt.Errorf("watching bucket %s: %w", Bucket, err)
	}
	s.sub, err = js.Conn().Subscribe(EvictSubject, func(m *nats.Msg) { s.drop(string(m.Data)) })
	if err != nil {
		_ = s.watcher.Stop()
		return nil, fmt.Errorf("subscribing to %s: %w", EvictSubject, err)
	}
	go s.watch()
	return s, nil
}

// Close stops the watch.
func (s *Store) Close() {
	_ = s.sub.Unsubscribe()
	_ = s.watcher.Stop()
	<-s.done
}

// KV returns the bucket.
func (s *Store) KV() jetstream.KeyValue { return s.kv }

// Stats returns the cache's hits and misses so far.
func (s *Store) Stats() (hits, misses int64) { return s.hits.Load(), s.misses.Load() }

func (s *Store) shard(key string) *shard {
	return &s.shards[maphash.String(s.seed, key)%shards]
}

func (s *Store) watch() {
	defer close(s.done)
	for e := range s.watcher.Updates() {
		if e == nil {
			continue
		}
		sh := s.shard(e.Key())
		sh.mu.RLock()
		cur := sh.m[e.Key()]
		stale := cur != nil && cur.rev < e.Revision()
		sh.mu.RUnlock()
		if !stale {
			continue
		}
		var data []byte
		if e.Operation() == jetstream.KeyValuePut {
			data = e.Value()
		}
		s.install(e.Key(), data, e.Revision())
	}
}

// install puts (data, rev) in the cache unless the cache holds a newer
// revision.
func (s *Store) install(key string, data []byte, rev uint64) *Entry {
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	cur := sh.m[key]
	if cur != nil && !cur.pending && cur.rev > rev {
		return cur
	}
	if cur != nil && cur.pending && cur.rev > rev {
		cur.pending = false
		return cur
	}
	e := &Entry{rev: rev, data: data}
	sh.m[key] = e
	s.trimLocked(sh)
	return e
}

func (s *Store) trimLocked(sh *shard) {
	for k, e := range sh.m {
		if len(sh.m) <= s.perShard {
			return
		}
		if !e.pending {
			delete(sh.m, k)
		}
	}
}

func (s *Store) drop(key string) {
	sh := s.shard(key)
	sh.mu.Lock()
	delete(sh.m, key)
	sh.mu.Unlock()
}

// GetEncoded returns the encoded profile of key (nil when there is none,
// read only) and its revision, from the cache or the bucket.
func (s *Store) GetEncoded(ctx context.Context, key string) ([]byte, uint64, error) {
	e, err := s.entry(ctx, key)
	if err != nil {
		return nil, 0, err
	}
	return e.data, e.rev, nil
}

// FetchEncoded is GetEncoded from the bucket, bypassing the cache (which it
// updates).
func (s *Store) FetchEncoded(ctx context.Context, key string) ([]byte, uint64, error) {
	e, err := s.fetch(ctx, key)
	if err != nil {
		return nil, 0, err
	}
	return e.data, e.rev, nil
}

func (s *Store) entry(ctx context.Context, key string) (*Entry, error) {
	sh := s.shard(key)
	sh.mu.RLock()
	e := sh.m[key]
	sh.mu.RUnlock()
	if e != nil && !e.pending {
		s.hits.Add(1)
		return e, nil
	}
	s.misses.Add(1)
	return s.fetch(ctx, key)
}

func (s *Store) fetch(ctx context.Context, key string) (*Entry, error) {
	key = strings.Clone(key) // the cache keeps it: not the caller's larger string
	sh := s.shard(key)
	sh.mu.Lock()
	if sh.m[key] == nil {
		sh.m[key] = &Entry{pending: true}
	}
	sh.mu.Unlock()
	kve, err := s.kv.Get(ctx, key)
	var data []byte
	var rev uint64
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		sh.mu.Lock()
		if e := sh.m[key]; e != nil && e.pending {
			delete(sh.m, key)
		}
		sh.mu.Unlock()
		return nil, fmt.Errorf("reading profile %s: %w", key, err)
	default:
		rev, data = kve.Revision(), kve.Value()
	}
	return s.install(key, data, rev), nil
}

// Entries gets the cached versions of keys into out (len(out) ==
// len(keys)), reading cache misses from the bucket concurrently.
func (s *Store) Entries(ctx context.Context, keys []string, out []*Entry) error {
	var missing []int
	for i, key := range keys {
		sh := s.shard(key)
		sh.mu.RLock()
		e := sh.m[key]
		sh.mu.RUnlock()
		if e != nil && !e.pending {
			out[i] = e
			continue
		}
		missing = append(missing, i)
	}
	s.hits.Add(int64(len(keys) - len(missing)))
	s.misses.Add(int64(len(missing)))
	if len(missing) == 0 {
		return nil
	}
	if len(missing) == 1 {
		var err error
		out[missing[0]], err = s.fetch(ctx, keys[missing[0]])
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(missing))
	sem := make(chan struct{}, 32)
	for j, i := range missing {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i], errs[j] = s.fetch(ctx, keys[i])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Remember caches the encoded profile its owner has just written at rev.
func (s *Store) Remember(key string, data []byte, rev uint64) {
	s.install(key, data, rev)
}

// Evict drops key from every replica's cache.
func (s *Store) Evict(key string) error {
	s.drop(key)
	if err := s.js.Conn().Publish(EvictSubject, []byte(key)); err != nil {
		return fmt.Errorf("broadcasting the eviction of %s: %w", key, err)
	}
	return nil
}

// Scan calls fn once for every key matching filter (e.g. UserPrefix) that
// exists when it starts and is not deleted meanwhile, with a value at
// least as new as the one then stored, in no particular order.
//
// It lists the keys first (the stream's subjects), then reads the bucket's
// stream (eventlog.ReadStream) and finally gets, one by one, the listed
// keys the read did not meet. A watch of the bucket, which this replaces,
// declares its initial values complete after as many messages as there
// were keys, and rewrites during the scan count towards them, so keys went
// unseen (and others came twice); a read of the stream alone can miss a key
// too, when each of its rewrites lands beyond where the read then stands.
func (s *Store) Scan(ctx context.Context, filter string, fn func(key string, value []byte) error) error {
	stream, err := s.js.Stream(ctx, StreamName)
	if err != nil {
		return fmt.Errorf("scanning bucket %s: %w", Bucket, err)
	}
	prefix := "$KV." + Bucket + "."
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(prefix+filter))
	if err != nil {
		return fmt.Errorf("listing the keys of bucket %s: %w", Bucket, err)
	}
	seen := make(map[string]struct{}, len(info.State.Subjects))
	err = eventlog.ReadStream(ctx, stream, prefix+filter, 0, func(msg jetstream.Msg) error {
		if msg.Headers().Get("KV-Operation") != "" {
			return nil // a deletion
		}
		key := msg.Subject()[len(prefix):]
		if _, dup := seen[key]; dup {
			return nil
		}
		seen[key] = struct{}{}
		return fn(key, msg.Data())
	})
	if err != nil {
		return err
	}
	for subject := range info.State.Subjects {
		key := subject[len(prefix):]
		if _, ok := seen[key]; ok {
			continue
		}
		e, err := s.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			continue // deleted since
		case err != nil:
			return fmt.Errorf("scanning bucket %s: %w", Bucket, err)
		}
		seen[key] = struct{}{}
		if err := fn(key, e.Value()); err != nil {
			return err
		}
	}
	return nil
}
