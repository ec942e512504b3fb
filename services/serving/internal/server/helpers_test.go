package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/pkg/registry"
	"github.com/bullseye-ml/bullseye/services/serving/internal/audience"
	"github.com/bullseye-ml/bullseye/services/serving/internal/batch"
	"github.com/bullseye-ml/bullseye/services/serving/internal/features/featurestest"
	"github.com/bullseye-ml/bullseye/services/serving/internal/models"
	"github.com/bullseye-ml/bullseye/services/serving/internal/scoring"
	"github.com/bullseye-ml/bullseye/services/serving/internal/scoring/scoringtest"
)

// registryDouble is the model registry as the store reads it: routing states given at the
// start, and the artifacts of their versions.
type registryDouble struct {
	mu        sync.Mutex
	routing   []*modelv1.RegisteredModel
	artifacts map[string]*modelv1.ModelArtifact // by "name/version"
}

func artifactKey(name string, n int64) string { return fmt.Sprintf("%s/%d", name, n) }

func (r *registryDouble) Watch(ctx context.Context) <-chan registry.Update {
	out := make(chan registry.Update)
	go func() {
		defer close(out)
		r.mu.Lock()
		u := registry.Update{Full: true, Models: r.routing, Revision: 1}
		r.mu.Unlock()
		select {
		case out <- u:
		case <-ctx.Done():
		}
		<-ctx.Done()
	}()
	return out
}

func (r *registryDouble) Version(_ context.Context, name string, n int64) (*modelv1.ModelVersion, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.artifacts[artifactKey(name, n)]
	if a == nil {
		return nil, fmt.Errorf("no version %d of %s", n, name)
	}
	return &modelv1.ModelVersion{ModelName: name, Version: n, Family: a.GetFamily(), Task: a.GetTask()}, nil
}

func (r *registryDouble) LoadArtifact(_ context.Context, v *modelv1.ModelVersion) (*modelv1.ModelArtifact, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.artifacts[artifactKey(v.GetModelName(), v.GetVersion())], nil
}

// served is one model the harness serves: its routing and its versions' artifacts.
type served struct {
	routing   *modelv1.RegisteredModel
	artifacts []*modelv1.ModelArtifact
}

// live routes a model to its versions with weights (version, weight, version, weight, ...).
func live(name string, task modelv1.TaskKind, vw ...int64) *modelv1.RegisteredModel {
	rm := &modelv1.RegisteredModel{Name: name, Task: task, Revision: 1, Live: &modelv1.TrafficSplit{}}
	for i := 0; i+1 < len(vw); i += 2 {
		rm.Live.Versions = append(rm.Live.Versions, &modelv1.VersionWeight{Version: vw[i], Weight: uint32(vw[i+1])})
	}
	return rm
}

const regression = modelv1.TaskKind_TASK_KIND_REGRESSION

var (
	granted  = commonv1.ConsentState_CONSENT_STATE_GRANTED
	objected = commonv1.ConsentState_CONSENT_STATE_OBJECTED
)

func num(f float64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: f}}
}
func integer(i int64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_IntValue{IntValue: i}}
}
func str(s string) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: s}}
}

// customers are the feature service's customers in every harness.
func customers() map[string]featurestest.Customer {
	return map[string]featurestest.Customer{
		"c1":       {Consent: granted, Values: map[string]*commonv1.Value{"age": integer(30), "spend": num(4)}},
		"c2":       {Consent: granted, Values: map[string]*commonv1.Value{"age": integer(50)}},
		"c3":       {Values: map[string]*commonv1.Value{"age": integer(10), "spend": num(1)}},
		"u1":       {Consent: granted},
		"objected": {Consent: objected, Values: map[string]*commonv1.Value{"age": integer(60), "spend": num(1)}},
	}
}

// harness is a server over a store that loaded the served models, with the feature service
// double and the metrics registry.
type harness struct {
	srv   *Server
	fs    *featurestest.Service
	store *models.Store
	reg   *prometheus.Registry
}

// newHarness serves the models with batches of opts, waiting until every live version is
// loaded.
func newHarness(t *testing.T, opts batch.Options, ms ...served) *harness {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := &harness{fs: featurestest.New([]*featurev1.FeatureSet{scoringtest.People}, customers()), reg: prometheus.NewRegistry()}
	fc := h.fs.Serve(t)
	src := &registryDouble{artifacts: map[string]*modelv1.ModelArtifact{}}
	for _, m := range ms {
		src.routing = append(src.routing, m.routing)
		for _, a := range m.artifacts {
			src.artifacts[artifactKey(a.GetModelName(), a.GetModelVersion())] = a
		}
	}
	deps := scoring.Deps{Features: fc, Pool: batch.NewPool(2), Options: func(string) batch.Options { return opts }, Logger: logger}
	var err error
	h.store, err = models.New(src, func(a *modelv1.ModelArtifact) (*scoring.Model, error) { return scoring.Load(deps, a) }, models.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = h.store.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		if err := h.store.Close(cctx); err != nil {
			t.Errorf("closing the store: %v", err)
		}
	})
	deadline := time.Now().Add(time.Minute)
	for _, m := range ms {
		for !h.store.ModelReady(m.routing.GetName(), "") {
			if time.Now().After(deadline) {
				t.Fatalf("model %s was not loaded within a minute", m.routing.GetName())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	h.srv, err = New(h.store, fc, audience.New(fc, audience.WithPageSize(2)),
		WithReady(func() bool { return true }), WithVersion("test"), WithLogger(logger), WithRegisterer(h.reg))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// linearModel serves scoringtest.Linear as version 1 of "spend".
func linearModel(t *testing.T) served {
	return served{live("spend", regression, 1, 1), []*modelv1.ModelArtifact{scoringtest.Linear(t, "spend", 1)}}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func ref(name string) *commonv1.ModelRef { return &commonv1.ModelRef{Name: name} }

// refused is what a status error says: its code, ErrorInfo reason, the fields of its
// BadRequest and its message.
type refused struct {
	code    codes.Code
	reason  string
	fields  []string
	message string
}

func refusal(err error) refused {
	st := status.Convert(err)
	r := refused{code: st.Code(), message: st.Message()}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			r.reason = d.GetReason()
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				r.fields = append(r.fields, v.GetField())
			}
		}
	}
	return r
}

func byUser(ids ...string) []*servingv1.Instance {
	out := make([]*servingv1.Instance, len(ids))
	for i, id := range ids {
		out[i] = &servingv1.Instance{UserId: id}
	}
	return out
}
