// Package registry is Bullseye's model registry (DESIGN §6): immutable model versions and each
// model's routing state (aliases, live traffic split, shadow versions) in etcd, and the model
// artifacts in a JetStream object store.
//
// The etcd layout, under Prefix:
//
//	bullseye/models/<name>/versions/<n>     a ModelVersion (protobuf), written once
//	bullseye/models/<name>/aliases/<alias>  the version the alias names, in decimal
//	bullseye/models/<name>/serving          the routing state, a RegisteredModel (protobuf)
//	                                        holding aliases, live split and shadow versions
//	bullseye/models/<name>/jobs/<job id>    the version a training job registered, in decimal
//
// Version numbers are allocated by compare-and-set on the version key's creation, so two
// registrations never share a number and a version is never overwritten. The routing state
// changes only through Promote, by compare-and-set on the serving key's etcd modification
// revision, which is the model's revision (RegisteredModel.revision; 0 before the first
// promotion); aliases are written in the same transaction. Serving follows the routing state
// with Watch and loads artifacts with LoadArtifact, which verifies their SHA-256 digest.
package registry

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
)

// Prefix is the etcd key prefix of the registry.
const Prefix = "bullseye/models/"

// DefaultBucket is the JetStream object store bucket that holds artifacts.
const DefaultBucket = "bullseye_models"

// URIScheme is the scheme of artifact URIs: nats-object://<bucket>/<object name>.
const URIScheme = "nats-object://"

var (
	nameRE  = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	aliasRE = nameRE
)

// ValidName reports whether name is a valid model name: 1 to 63 characters of [a-z0-9-],
// starting with a letter.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// ValidAlias reports whether alias is a valid alias, with the same rule as names.
func ValidAlias(alias string) bool { return aliasRE.MatchString(alias) }

// Registry is the model registry. It is safe for concurrent use.
type Registry struct {
	etcd     *clientv3.Client
	store    jetstream.ObjectStore
	bucket   string
	replicas int
	now      func() time.Time
}

// Option configures Open.
type Option func(*Registry)

// WithBucket sets the object store bucket of artifacts; the default is DefaultBucket.
func WithBucket(name string) Option { return func(r *Registry) { r.bucket = name } }

// WithReplicas sets the replicas of the artifact bucket when Open creates it (3 on a NATS
// cluster); the default is 1.
func WithReplicas(n int) Option { return func(r *Registry) { r.replicas = n } }

// WithClock sets the clock of creation and update times; the default is time.Now.
func WithClock(now func() time.Time) Option { return func(r *Registry) { r.now = now } }

// Open returns a registry on etcd client cli and JetStream js, creating the artifact bucket
// if it does not exist. The caller keeps ownership of cli and js.
func Open(ctx context.Context, cli *clientv3.Client, js jetstream.JetStream, opts ...Option) (*Registry, error) {
	r := &Registry{etcd: cli, bucket: DefaultBucket, replicas: 1, now: time.Now}
	for _, o := range opts {
		o(r)
	}
	var store jetstream.ObjectStore
	err := eventlog.Retry(ctx, func(ctx context.Context) (err error) {
		store, err = js.ObjectStore(ctx, r.bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			store, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{
				Bucket:      r.bucket,
				Description: "Bullseye model artifacts (bullseye.model.v1.ModelArtifact)",
				Storage:     jetstream.FileStorage,
				Replicas:    r.replicas,
			})
			if errors.Is(err, jetstream.ErrBucketExists) {
				store, err = js.ObjectStore(ctx, r.bucket)
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening the artifact bucket %s: %w", r.bucket, err)
	}
	r.store = store
	return r, nil
}

func modelKey(name string) string            { return Prefix + name + "/" }
func versionsKey(name string) string         { return modelKey(name) + "versions/" }
func versionKey(name string, n int64) string { return versionsKey(name) + strconv.FormatInt(n, 10) }
func aliasKey(name, alias string) string     { return modelKey(name) + "aliases/" + alias }
func servingKey(name string) string          { return modelKey(name) + "serving" }
func jobKey(name, job string) string         { return modelKey(name) + "jobs/" + job }

// Register stores artifact a and registers mv as the next version of model mv.model_name.
// It sets the version number, creation time and artifact reference on both (and the name,
// version and creation time inside the artifact) and returns the registered version.
//
// Registration is idempotent by training job: when mv.lineage.job_id names a job that already
// registered a version of the model, that version is returned with created false and nothing
// is written.
func (r *Registry) Register(ctx context.Context, mv *modelv1.ModelVersion, a *modelv1.ModelArtifact) (registered *modelv1.ModelVersion, created bool, err error) {
	job := mv.GetLineage().GetJobId()
	if strings.Contains(job, "/") {
		return nil, false, fault.Violations{{Field: "lineage.job_id", Description: "must not contain a slash"}}
	}
	return r.register(ctx, job, mv, a)
}

// RegisterImport registers an imported model's version as Register does, idempotent by the
// import's request id instead of a job: a repeat with the same id returns the version the
// first registered. An empty id registers a new version every time.
func (r *Registry) RegisterImport(ctx context.Context, requestID string, mv *modelv1.ModelVersion, a *modelv1.ModelArtifact) (registered *modelv1.ModelVersion, created bool, err error) {
	if strings.Contains(requestID, "/") {
		return nil, false, fault.Violations{{Field: "request_id", Description: "must not contain a slash"}}
	}
	key := ""
	if requestID != "" {
		key = "import:" + requestID
	}
	return r.register(ctx, key, mv, a)
}

// register registers mv with its artifact a, once for the key job when it is not empty.
func (r *Registry) register(ctx context.Context, job string, mv *modelv1.ModelVersion, a *modelv1.ModelArtifact) (*modelv1.ModelVersion, bool, error) {
	name := mv.GetModelName()
	var bad fault.Violations
	if !ValidName(name) {
		bad = append(bad, fault.Violation{Field: "model_name", Description: "must be 1 to 63 characters of [a-z0-9-], starting with a letter"})
	}
	if mv.GetTask() == modelv1.TaskKind_TASK_KIND_UNSPECIFIED {
		bad = append(bad, fault.Violation{Field: "task", Description: "required"})
	}
	if mv.GetFamily() == modelv1.ModelFamily_MODEL_FAMILY_UNSPECIFIED {
		bad = append(bad, fault.Violation{Field: "family", Description: "required"})
	}
	if len(bad) > 0 {
		return nil, false, bad
	}
	if job != "" {
		if v, ok, err := r.jobVersion(ctx, name, job); err != nil || ok {
			return v, false, err
		}
	}
	for attempt := 0; ; attempt++ {
		latest, err := r.latest(ctx, name)
		if err != nil {
			return nil, false, err
		}
		if latest != nil && latest.GetTask() != mv.GetTask() {
			return nil, false, fmt.Errorf("registering %s: %w: the model's versions are %v, this one is %v",
				name, ErrConflict, latest.GetTask(), mv.GetTask())
		}
		n := latest.GetVersion() + 1
		now := timestamppb.New(r.now())
		a.ModelName, a.ModelVersion, a.CreateTime = name, n, now
		data, sha, err := artifact.Marshal(a)
		if err != nil {
			return nil, false, err
		}
		object := fmt.Sprintf("%s/%d/%s", name, n, sha)
		if _, err := r.store.PutBytes(ctx, object, data); err != nil {
			return nil, false, fmt.Errorf("storing the artifact of %s version %d: %w", name, n, err)
		}
		v := proto.Clone(mv).(*modelv1.ModelVersion)
		v.Version, v.CreateTime = n, now
		v.Artifact = &modelv1.ArtifactRef{
			Uri:       URIScheme + r.bucket + "/" + object,
			Sha256:    sha,
			SizeBytes: int64(len(data)),
			MediaType: artifact.MediaType,
		}
		val, err := proto.Marshal(v)
		if err != nil {
			return nil, false, fmt.Errorf("registering %s: %w", name, err)
		}
		conds := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(versionKey(name, n)), "=", 0)}
		ops := []clientv3.Op{clientv3.OpPut(versionKey(name, n), string(val))}
		if job != "" {
			conds = append(conds, clientv3.Compare(clientv3.CreateRevision(jobKey(name, job)), "=", 0))
			ops = append(ops, clientv3.OpPut(jobKey(name, job), strconv.FormatInt(n, 10)))
		}
		resp, err := r.etcd.Txn(ctx).If(conds...).Then(ops...).Commit()
		if err == nil && resp.Succeeded {
			return v, true, nil
		}
		// Lost a race (or failed): the artifact is not referenced; remove it.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = r.store.Delete(dctx, object)
		cancel()
		if err != nil {
			return nil, false, fmt.Errorf("registering %s version %d: %w", name, n, err)
		}
		if job != "" {
			if v, ok, err := r.jobVersion(ctx, name, job); err != nil || ok {
				return v, false, err
			}
		}
		if attempt >= 20 {
			return nil, false, fmt.Errorf("registering %s: version allocation kept losing races", name)
		}
	}
}

// jobVersion returns the version that job (a training job, or an import's key) registered,
// if any.
func (r *Registry) jobVersion(ctx context.Context, name, job string) (*modelv1.ModelVersion, bool, error) {
	resp, err := r.etcd.Get(ctx, jobKey(name, job))
	if err != nil {
		return nil, false, fmt.Errorf("reading the version job %s registered: %w", job, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, false, nil
	}
	n, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %s holds %q", ErrCorrupt, jobKey(name, job), resp.Kvs[0].Value)
	}
	v, err := r.Version(ctx, name, n)
	return v, err == nil, err
}

// latest returns the model's highest version, or nil when it has none.
func (r *Registry) latest(ctx context.Context, name string) (*modelv1.ModelVersion, error) {
	resp, err := r.etcd.Get(ctx, versionsKey(name), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("listing the versions of %s: %w", name, err)
	}
	var top int64
	for _, kv := range resp.Kvs {
		if n, err := strconv.ParseInt(strings.TrimPrefix(string(kv.Key), versionsKey(name)), 10, 64); err == nil && n > top {
			top = n
		}
	}
	if top == 0 {
		return nil, nil
	}
	return r.Version(ctx, name, top)
}

// Version returns one registered version with its full metadata.
func (r *Registry) Version(ctx context.Context, name string, n int64) (*modelv1.ModelVersion, error) {
	resp, err := r.etcd.Get(ctx, versionKey(name, n))
	if err != nil {
		return nil, fmt.Errorf("reading %s version %d: %w", name, n, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, notFound("VERSION_NOT_FOUND", "model %q has no version %d", name, n)
	}
	v := &modelv1.ModelVersion{}
	if err := proto.Unmarshal(resp.Kvs[0].Value, v); err != nil {
		return nil, fmt.Errorf("%w: %s version %d: %v", ErrCorrupt, name, n, err)
	}
	return v, nil
}

// state is everything the registry holds about one model, read at one etcd revision.
type state struct {
	versions map[int64]*modelv1.ModelVersion
	routing  *modelv1.RegisteredModel // name, task, aliases, live, shadow, update_time
	revision int64                    // the serving key's mod revision; 0 when absent
}

// load reads a model's keys in one range read.
func (r *Registry) load(ctx context.Context, name string) (*state, error) {
	resp, err := r.etcd.Get(ctx, modelKey(name), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("reading model %s: %w", name, err)
	}
	s := &state{versions: map[int64]*modelv1.ModelVersion{}, routing: &modelv1.RegisteredModel{Name: name}}
	for _, kv := range resp.Kvs {
		rest := strings.TrimPrefix(string(kv.Key), modelKey(name))
		switch {
		case strings.HasPrefix(rest, "versions/"):
			n, err := strconv.ParseInt(strings.TrimPrefix(rest, "versions/"), 10, 64)
			if err != nil {
				continue
			}
			v := &modelv1.ModelVersion{}
			if err := proto.Unmarshal(kv.Value, v); err != nil {
				return nil, fmt.Errorf("%w: %s version %d: %v", ErrCorrupt, name, n, err)
			}
			s.versions[n] = v
		case rest == "serving":
			if err := proto.Unmarshal(kv.Value, s.routing); err != nil {
				return nil, fmt.Errorf("%w: routing state of %s: %v", ErrCorrupt, name, err)
			}
			s.revision = kv.ModRevision
		}
	}
	if len(s.versions) == 0 {
		return nil, notFound("MODEL_NOT_FOUND", "model %q is not registered", name)
	}
	return s, nil
}

// model builds the RegisteredModel of a state: versions oldest first (summaries when
// summary is set), the routing state and the revision.
func (s *state) model(summary bool) *modelv1.RegisteredModel {
	m := proto.Clone(s.routing).(*modelv1.RegisteredModel)
	m.Revision = s.revision
	nums := make([]int64, 0, len(s.versions))
	for n := range s.versions {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	m.Versions = nil
	for _, n := range nums {
		v := s.versions[n]
		if summary {
			v = Summary(v)
		}
		m.Versions = append(m.Versions, v)
	}
	first := s.versions[nums[0]]
	m.Task = s.versions[nums[len(nums)-1]].GetTask()
	m.CreateTime = first.GetCreateTime()
	m.LatestVersion = nums[len(nums)-1]
	if m.Aliases == nil {
		m.Aliases = map[string]int64{}
	}
	return m
}

// Summary returns a copy of v without its leaderboard and test curves, as ListModels shows
// versions.
func Summary(v *modelv1.ModelVersion) *modelv1.ModelVersion {
	out := proto.Clone(v).(*modelv1.ModelVersion)
	out.Leaderboard, out.TestCurves = nil, nil
	return out
}

// Model returns a registered model: its versions (summaries, oldest first), aliases, live
// split, shadow versions and revision.
func (r *Registry) Model(ctx context.Context, name string) (*modelv1.RegisteredModel, error) {
	s, err := r.load(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.model(true), nil
}

// Models returns up to limit registered models whose names start with prefix and come after
// the name after (empty for the first page), by name, and the name to pass as after for the
// next page ("" when there is none).
func (r *Registry) Models(ctx context.Context, prefix, after string, limit int) ([]*modelv1.RegisteredModel, string, error) {
	resp, err := r.etcd.Get(ctx, Prefix+prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, "", fmt.Errorf("listing models: %w", err)
	}
	seen := map[string]bool{}
	var names []string
	for _, kv := range resp.Kvs {
		name, _, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), Prefix), "/")
		if !seen[name] && strings.HasPrefix(name, prefix) && name > after {
			seen[name] = true
			names = append(names, name)
		}
	}
	slices.Sort(names)
	next := ""
	if limit > 0 && len(names) > limit {
		names = names[:limit]
		next = names[limit-1]
	}
	var out []*modelv1.RegisteredModel
	for _, name := range names {
		m, err := r.Model(ctx, name)
		if errors.Is(err, ErrNotFound) {
			continue // routing keys without versions
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, m)
	}
	return out, next, nil
}

// Resolve returns the version a model reference selects and the model's routing state: the
// pinned version, the version an alias names, or, with neither, the live version with the
// largest traffic share (ties: the first listed). It fails with ErrNotFound (a *fault.Coded
// with reason MODEL_NOT_FOUND, VERSION_NOT_FOUND, ALIAS_NOT_FOUND or NO_LIVE_VERSION).
func (r *Registry) Resolve(ctx context.Context, ref *commonv1.ModelRef) (*modelv1.ModelVersion, *modelv1.RegisteredModel, error) {
	name := ref.GetName()
	if !ValidName(name) {
		return nil, nil, fault.Violations{{Field: "model.name", Description: "must be 1 to 63 characters of [a-z0-9-], starting with a letter"}}
	}
	s, err := r.load(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	var n int64
	switch sel := ref.GetSelector().(type) {
	case *commonv1.ModelRef_Version:
		n = sel.Version
	case *commonv1.ModelRef_Alias:
		v, ok := s.routing.GetAliases()[sel.Alias]
		if !ok {
			return nil, nil, notFound("ALIAS_NOT_FOUND", "model %q has no alias %q", name, sel.Alias)
		}
		n = v
	default:
		n = topLive(s.routing.GetLive())
		if n == 0 {
			return nil, nil, notFound("NO_LIVE_VERSION", "model %q has no live version", name)
		}
	}
	v, ok := s.versions[n]
	if !ok {
		return nil, nil, notFound("VERSION_NOT_FOUND", "model %q has no version %d", name, n)
	}
	return v, s.model(true), nil
}

// topLive returns the live version with the largest weight (the first on ties), or 0.
func topLive(live *modelv1.TrafficSplit) int64 {
	var best int64
	var w uint32
	for _, vw := range live.GetVersions() {
		if vw.GetWeight() > w {
			best, w = vw.GetVersion(), vw.GetWeight()
		}
	}
	return best
}

// LoadArtifact reads a version's artifact from the object store and checks its size and
// SHA-256 digest against the version's metadata (ErrCorrupt otherwise).
func (r *Registry) LoadArtifact(ctx context.Context, v *modelv1.ModelVersion) (*modelv1.ModelArtifact, error) {
	ref := v.GetArtifact()
	bucket, object, ok := strings.Cut(strings.TrimPrefix(ref.GetUri(), URIScheme), "/")
	if !strings.HasPrefix(ref.GetUri(), URIScheme) || !ok || bucket != r.bucket {
		return nil, fmt.Errorf("%w: %s version %d: artifact URI %q is not in bucket %s", ErrCorrupt, v.GetModelName(), v.GetVersion(), ref.GetUri(), r.bucket)
	}
	data, err := r.store.GetBytes(ctx, object)
	if err != nil {
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return nil, fmt.Errorf("%w: %s version %d: artifact %s is missing", ErrCorrupt, v.GetModelName(), v.GetVersion(), object)
		}
		return nil, fmt.Errorf("reading the artifact of %s version %d: %w", v.GetModelName(), v.GetVersion(), err)
	}
	if int64(len(data)) != ref.GetSizeBytes() {
		return nil, fmt.Errorf("%w: %s version %d: artifact has %d bytes, metadata says %d", ErrCorrupt, v.GetModelName(), v.GetVersion(), len(data), ref.GetSizeBytes())
	}
	a, err := artifact.Unmarshal(data, ref.GetSha256())
	if err != nil {
		return nil, fmt.Errorf("%w: %s version %d: %v", ErrCorrupt, v.GetModelName(), v.GetVersion(), err)
	}
	return a, nil
}
