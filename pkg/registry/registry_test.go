package registry_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/registry"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, embeddedtest.GoleakOptions()...)
}

// env is a registry on real embedded etcd and NATS servers.
type env struct {
	reg  *registry.Registry
	etcd *clientv3.Client
	js   jetstream.JetStream
}

func newEnv(t *testing.T) *env {
	t.Helper()
	cli := embeddedtest.Etcd(t)
	js, _ := embeddedtest.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	reg, err := registry.Open(ctx, cli, js)
	if err != nil {
		t.Fatal(err)
	}
	return &env{reg: reg, etcd: cli, js: js}
}

const cls = modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION

// version is the metadata of a logistic regression version with a test AUC.
func version(name string, auc float64, job string) *modelv1.ModelVersion {
	return &modelv1.ModelVersion{
		ModelName:          name,
		Family:             modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION,
		Task:               cls,
		SelectionMetric:    "roc_auc",
		SelectionDirection: modelv1.MetricDirection_METRIC_DIRECTION_MAXIMIZE,
		TestMetrics:        []*commonv1.Metric{{Name: "roc_auc", Value: auc}, {Name: "log_loss", Value: 1 - auc}},
		Leaderboard:        []*modelv1.LeaderboardEntry{{Rank: 1, Score: auc}},
		Lineage:            &modelv1.Lineage{JobId: job},
	}
}

func art(weights ...float64) *modelv1.ModelArtifact {
	return &modelv1.ModelArtifact{
		FormatVersion: 1,
		Family:        modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION,
		Task:          cls,
		Parameters: &modelv1.ModelArtifact_Linear{Linear: &modelv1.LinearParameters{
			Weights: weights, Link: modelv1.LinkFunction_LINK_FUNCTION_LOGISTIC,
		}},
	}
}

func (e *env) register(t *testing.T, name string, auc float64) *modelv1.ModelVersion {
	t.Helper()
	v, created, err := e.reg.Register(context.Background(), version(name, auc, ""), art(auc))
	if err != nil || !created {
		t.Fatalf("Register: %v, created %v", err, created)
	}
	return v
}

// TestRegister checks version allocation by compare-and-set (sequential and concurrent
// registrations get distinct consecutive numbers), artifact storage with its checksum,
// idempotency by job and the immutability of version keys.
func TestRegister(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	v1 := e.register(t, "bank", 0.90)
	v2 := e.register(t, "bank", 0.91)
	if v1.GetVersion() != 1 || v2.GetVersion() != 2 {
		t.Fatalf("versions %d, %d; want 1, 2", v1.GetVersion(), v2.GetVersion())
	}
	if got := v1.GetArtifact(); got.GetSha256() == "" || got.GetSizeBytes() == 0 ||
		got.GetUri() == "" || got.GetMediaType() != "bullseye.model.v1.ModelArtifact" {
		t.Errorf("artifact ref = %v", got)
	}

	// Concurrent registrations never share a number.
	var wg sync.WaitGroup
	got := make([]int64, 8)
	errs := make([]error, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, _, err := e.reg.Register(ctx, version("bank", 0.5, ""), art(float64(i)))
			errs[i] = err
			got[i] = v.GetVersion()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []int64{3, 4, 5, 6, 7, 8, 9, 10}; !slices.Equal(got, want) {
		t.Fatalf("concurrent versions = %v, want %v", got, want)
	}

	// The stored metadata and the artifact read back; the artifact knows its version.
	stored, err := e.reg.Version(ctx, "bank", 2)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(stored, v2) {
		t.Errorf("Version(2) = %v, want %v", stored, v2)
	}
	a, err := e.reg.LoadArtifact(ctx, stored)
	if err != nil {
		t.Fatal(err)
	}
	if a.GetModelName() != "bank" || a.GetModelVersion() != 2 || a.GetLinear().GetWeights()[0] != 0.91 {
		t.Errorf("artifact = %v", a)
	}

	// A job registers once, however often it asks.
	j1, created, err := e.reg.Register(ctx, version("bank", 0.7, "job-1"), art(7))
	if err != nil || !created {
		t.Fatal(err, created)
	}
	j2, created, err := e.reg.Register(ctx, version("bank", 0.7, "job-1"), art(7))
	if err != nil || created || j2.GetVersion() != j1.GetVersion() {
		t.Fatalf("second registration of job-1: version %d (created %v, %v), want %d not created", j2.GetVersion(), created, err, j1.GetVersion())
	}

	// Another task under the same name conflicts.
	reg := version("bank", 1, "")
	reg.Task = modelv1.TaskKind_TASK_KIND_REGRESSION
	if _, _, err := e.reg.Register(ctx, reg, art()); !errors.Is(err, registry.ErrConflict) {
		t.Errorf("registering a regression under a classifier's name: %v, want ErrConflict", err)
	}
	if _, _, err := e.reg.Register(ctx, version("Bad_Name", 1, ""), art()); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("bad name: %v, want ErrInvalid", err)
	}

	// Promotions change no version key: each was written exactly once.
	if _, err := e.reg.Promote(ctx, registry.Promotion{ModelName: "bank",
		SetAliases: map[string]int64{"champion": 2},
		Live:       &modelv1.TrafficSplit{Versions: []*modelv1.VersionWeight{{Version: 2, Weight: 1}}}}); err != nil {
		t.Fatal(err)
	}
	resp, err := e.etcd.Get(ctx, registry.Prefix+"bank/versions/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 11 {
		t.Errorf("%d version keys, want 11", len(resp.Kvs))
	}
	for _, kv := range resp.Kvs {
		if kv.Version != 1 {
			t.Errorf("%s was written %d times, want once", kv.Key, kv.Version)
		}
	}
}

func TestLoadArtifactChecksum(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	v := e.register(t, "bank", 0.9)
	store, err := e.js.ObjectStore(ctx, registry.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := store.List(ctx)
	if err != nil || len(objs) != 1 {
		t.Fatalf("objects %v, %v; want one", objs, err)
	}
	data, err := store.GetBytes(ctx, objs[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 0xff
	if _, err := store.PutBytes(ctx, objs[0].Name, data); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.LoadArtifact(ctx, v); !errors.Is(err, registry.ErrCorrupt) {
		t.Errorf("LoadArtifact of a corrupted artifact: %v, want ErrCorrupt", err)
	}
}

func live(vw ...int64) *modelv1.TrafficSplit {
	s := &modelv1.TrafficSplit{}
	for i := 0; i < len(vw); i += 2 {
		s.Versions = append(s.Versions, &modelv1.VersionWeight{Version: vw[i], Weight: uint32(vw[i+1])})
	}
	return s
}

// TestPromote walks a model through promotions: the first by revision 0, a stale revision,
// the quality gate (refused, then forced), validate_only, aliases and invalid requests.
func TestPromote(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.register(t, "bank", 0.90) // v1
	e.register(t, "bank", 0.85) // v2, worse
	e.register(t, "bank", 0.93) // v3, better

	if _, _, err := e.reg.Resolve(ctx, &commonv1.ModelRef{Name: "bank"}); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Resolve with nothing live: %v, want ErrNotFound", err)
	}
	resp, err := e.reg.Promote(ctx, registry.Promotion{ModelName: "bank", ExpectedRevision: 0, Live: live(1, 100),
		SetAliases: map[string]int64{"champion": 1}})
	if err != nil {
		t.Fatal(err)
	}
	rev1 := resp.Model.GetRevision()
	if rev1 == 0 || len(resp.Checks) != 1 || !resp.Checks[0].GetPassed() || resp.Checks[0].GetLiveVersion() != 0 {
		t.Fatalf("first promotion: revision %d, checks %v", rev1, resp.Checks)
	}

	// A stale revision is refused with the current one.
	_, err = e.reg.Promote(ctx, registry.Promotion{ModelName: "bank", ExpectedRevision: 0, Live: live(3, 100)})
	var re *registry.RevisionError
	if !errors.As(err, &re) || re.Current != rev1 || !errors.Is(err, registry.ErrRevisionMismatch) {
		t.Fatalf("stale revision: %v, want a RevisionError with current %d", err, rev1)
	}

	// The quality gate refuses a canary of the worse version 2, and lets it through forced.
	_, err = e.reg.Promote(ctx, registry.Promotion{ModelName: "bank", ExpectedRevision: rev1, Live: live(1, 90, 2, 10)})
	var qe *registry.QualityGateError
	if !errors.As(err, &qe) || len(qe.Checks) != 1 || qe.Checks[0].GetPassed() || qe.Checks[0].GetValue() != 0.85 ||
		qe.Checks[0].GetLiveVersion() != 1 || qe.Checks[0].GetLiveValue() != 0.90 {
		t.Fatalf("gate: %v, want a QualityGateError on version 2 against version 1", err)
	}
	// By a loss the gate compares the other way: version 2's log loss 0.15 is worse than 0.10.
	if _, err := e.reg.Promote(ctx, registry.Promotion{ModelName: "bank", ExpectedRevision: rev1,
		Live: live(1, 90, 2, 10), GateMetric: "log_loss"}); !errors.Is(err, registry.ErrQualityGate) {
		t.Fatalf("gate by log_loss: %v, want ErrQualityGate", err)
	}
	resp, err = e.reg.Promote(ctx, registry.Promotion{ModelName: "bank", ExpectedRevision: rev1,
		Live: live(1, 90, 2, 10), Force: true, ValidateOnly: true})
	if err != nil || resp.Model.GetRevision() != rev1 || !resp.Checks[0].GetForced() {
		t.Fatalf("forced validate_only: %v, %v", resp, err)
	}
	resp, err = e.reg.Promote(ctx, registry.Promotion{ModelName: "bank", ExpectedRevision: rev1,
		Live: live(1, 90, 2, 10), Force: true, Reason: "canary"})
	if err != nil {
		t.Fatal(err)
	}
	rev2 := resp.Model.GetRevision()
	if rev2 <= rev1 || len(resp.Model.GetLive().GetVersions()) != 2 {
		t.Fatalf("forced promotion: %v", resp.Model)
	}

	// A better version passes; aliases move; the shadow set changes; version 2 was already
	// live, so only version 3 is checked.
	resp, err = e.reg.Promote(ctx, registry.Promotion{ModelName: "bank", ExpectedRevision: rev2,
		Live: live(3, 50, 2, 50), Shadow: &modelv1.ShadowVersions{Versions: []int64{1}},
		SetAliases: map[string]int64{"champion": 3, "previous": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if c := resp.Checks; len(c) != 1 || c[0].GetVersion() != 3 || !c[0].GetPassed() {
		t.Errorf("checks = %v, want version 3 passing", c)
	}
	rev3 := resp.Model.GetRevision()
	v, m, err := e.reg.Resolve(ctx, &commonv1.ModelRef{Name: "bank", Selector: &commonv1.ModelRef_Alias{Alias: "previous"}})
	if err != nil || v.GetVersion() != 1 || m.GetRevision() != rev3 {
		t.Fatalf("Resolve(previous) = %d at revision %d, %v", v.GetVersion(), m.GetRevision(), err)
	}
	v, _, err = e.reg.Resolve(ctx, &commonv1.ModelRef{Name: "bank"})
	if err != nil || v.GetVersion() != 3 {
		t.Fatalf("Resolve(live) = %d, %v; want 3 (first of the largest share)", v.GetVersion(), err)
	}
	ak, err := e.etcd.Get(ctx, registry.Prefix+"bank/aliases/", clientv3.WithPrefix())
	if err != nil || len(ak.Kvs) != 2 {
		t.Fatalf("alias keys %v, %v", ak, err)
	}

	// Removing an alias and leaving live and shadow as they are.
	resp, err = e.reg.Promote(ctx, registry.Promotion{ModelName: "bank", ExpectedRevision: rev3, RemoveAliases: []string{"previous"}})
	if err != nil {
		t.Fatal(err)
	}
	if m := resp.Model; len(m.GetAliases()) != 1 || len(m.GetLive().GetVersions()) != 2 || len(m.GetShadow().GetVersions()) != 1 {
		t.Errorf("after removing an alias: %v", m)
	}
	if _, _, err := e.reg.Resolve(ctx, &commonv1.ModelRef{Name: "bank", Selector: &commonv1.ModelRef_Alias{Alias: "previous"}}); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("removed alias resolves: %v", err)
	}

	bad := []struct {
		name  string
		req   registry.Promotion
		field string
	}{
		{"unregistered live version", registry.Promotion{Live: live(9, 1)}, "live.versions[0].version"},
		{"zero weight", registry.Promotion{Live: live(1, 0)}, "live.versions[0].weight"},
		{"version twice", registry.Promotion{Live: live(1, 1, 1, 2)}, "live.versions[1].version"},
		{"bad alias", registry.Promotion{SetAliases: map[string]int64{"Champion": 1}}, `set_aliases["Champion"]`},
		{"too many shadows", registry.Promotion{Shadow: &modelv1.ShadowVersions{Versions: []int64{1, 2, 3, 4, 5}}}, "shadow.versions"},
		{"unknown gate metric", registry.Promotion{GateMetric: "happiness"}, "gate_metric"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.ModelName = "bank"
			_, err := e.reg.Promote(ctx, tc.req)
			var ie fault.Violations
			if !errors.As(err, &ie) || !slices.ContainsFunc(ie, func(v fault.Violation) bool { return v.Field == tc.field }) {
				t.Errorf("error %v, want a violation of %s", err, tc.field)
			}
		})
	}
	if _, err := e.reg.Promote(ctx, registry.Promotion{ModelName: "nope"}); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("unknown model: %v", err)
	}
}

// TestWatch follows routing states: a full update first, then one update per promotion.
func TestWatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e := newEnv(t)
	e.register(t, "bank", 0.9)
	e.register(t, "churn", 0.8)
	if _, err := e.reg.Promote(ctx, registry.Promotion{ModelName: "churn", Live: live(1, 1)}); err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	updates := e.reg.Watch(wctx)
	next := func() registry.Update {
		t.Helper()
		select {
		case u := <-updates:
			return u
		case <-ctx.Done():
			t.Fatal("no update")
		}
		return registry.Update{}
	}
	u := next()
	if !u.Full || len(u.Models) != 1 || u.Models[0].GetName() != "churn" || u.Models[0].GetRevision() == 0 {
		t.Fatalf("first update = %+v, want the full state with churn", u)
	}
	resp, err := e.reg.Promote(ctx, registry.Promotion{ModelName: "bank", Live: live(1, 1),
		SetAliases: map[string]int64{"champion": 1}})
	if err != nil {
		t.Fatal(err)
	}
	e.register(t, "bank", 0.95) // a new version changes no routing state
	u = next()
	if u.Full || len(u.Models) != 1 {
		t.Fatalf("update = %+v, want bank's change only", u)
	}
	m := u.Models[0]
	if m.GetName() != "bank" || m.GetRevision() != resp.Model.GetRevision() || m.GetAliases()["champion"] != 1 ||
		len(m.GetLive().GetVersions()) != 1 {
		t.Errorf("bank's routing = %v, want revision %d, champion 1, version 1 live", m, resp.Model.GetRevision())
	}
	stop()
	for range updates {
	}
}

func TestModels(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	for _, name := range []string{"bank", "bank-b", "churn", "bank-a"} {
		e.register(t, name, 0.9)
	}
	e.register(t, "bank", 0.91)
	var names []string
	after := ""
	for {
		ms, next, err := e.reg.Models(ctx, "bank", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			names = append(names, fmt.Sprintf("%s:%d", m.GetName(), len(m.GetVersions())))
			for _, v := range m.GetVersions() {
				if v.GetLeaderboard() != nil {
					t.Errorf("%s: listed version carries its leaderboard", m.GetName())
				}
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	if want := []string{"bank:2", "bank-a:1", "bank-b:1"}; !slices.Equal(names, want) {
		t.Errorf("models = %v, want %v", names, want)
	}
	m, err := e.reg.Model(ctx, "bank")
	if err != nil || m.GetLatestVersion() != 2 || m.GetTask() != cls || m.GetCreateTime() == nil {
		t.Errorf("Model(bank) = %v, %v", m, err)
	}
}

func TestParseRef(t *testing.T) {
	tests := []struct {
		in   string
		want *commonv1.ModelRef
	}{
		{"bank", &commonv1.ModelRef{Name: "bank"}},
		{"bank@3", &commonv1.ModelRef{Name: "bank", Selector: &commonv1.ModelRef_Version{Version: 3}}},
		{"bank@champion", &commonv1.ModelRef{Name: "bank", Selector: &commonv1.ModelRef_Alias{Alias: "champion"}}},
		{"bank@", &commonv1.ModelRef{Name: "bank", Selector: &commonv1.ModelRef_Alias{Alias: ""}}},
		{"@3", &commonv1.ModelRef{Selector: &commonv1.ModelRef_Version{Version: 3}}},
	}
	for _, tc := range tests {
		if got := registry.ParseRef(tc.in); !proto.Equal(got, tc.want) {
			t.Errorf("ParseRef(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if got := registry.RefOf("bank", ""); !proto.Equal(got, &commonv1.ModelRef{Name: "bank"}) {
		t.Errorf("RefOf(bank, \"\") = %v", got)
	}
	if got := registry.RefOf("bank", "7"); got.GetVersion() != 7 {
		t.Errorf("RefOf(bank, 7) = %v", got)
	}
}
