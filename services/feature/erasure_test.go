package feature_test

import (
	"encoding/json"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/state"
	"github.com/bullseye-ml/bullseye/services/feature/internal/testenv"
)

// forget does what ingest's ForgetUser does to the event log: list the
// customer as erased, purge their records, and publish an erasure record
// on their subject. It returns the record's sequence.
func forget(t *testing.T, env *testenv.Env, user, erasureID string) uint64 {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	hash := env.Pseudonymiser.SubjectHash(user)
	list, err := eventlog.WatchErasures(ctx, env.JS)
	if err != nil {
		t.Fatal(err)
	}
	defer list.Stop()
	if _, _, err := list.Create(ctx, eventlog.ErasureRecord{ErasureID: erasureID, EraseTime: time.Now().UTC(), SubjectHash: hash, KeyID: env.Pseudonymiser.KeyID()}); err != nil {
		t.Fatal(err)
	}
	for _, typ := range eventlog.DataTypes {
		subj, err := eventlog.EventSubject(eventlog.UserKey(user), typ)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := eventlog.Purge(ctx, env.JS, eventlog.EventsStream, subj); err != nil {
			t.Fatal(err)
		}
	}
	return env.MustPublish(&ingestv1.StoredEvent{
		Type: ingestv1.EventType_EVENT_TYPE_ERASURE, MessageId: erasureID + "-record", UserId: user,
		ErasureId: erasureID, SubjectHash: hash, ReceivedAt: timestamppb.Now(), EventTime: timestamppb.Now(),
		Source: ingestv1.EventSource_EVENT_SOURCE_FORGET_USER,
	})
}

// TestForgottenCustomer erases a customer through the eventlog protocol:
// the feature service deletes their state and its history, reports
// ErasureApplied, deletes the erasure record; the customer then answers
// NOT_FOUND (consent ERASED) online and is absent from new training sets.
// A customer who objected is left out of training sets unless asked for.
func TestForgottenCustomer(t *testing.T) {
	env := testenv.New(t)
	svc := env.Start(env.Config())
	t0 := time.Now().Add(-24 * time.Hour)
	for _, u := range []string{"victim", "keeper", "objector"} {
		env.MustPublish(
			testenv.Track(u, u+"-o1", "Order Completed", t0, testenv.F(10), "", nil),
			testenv.Identify(u, u+"-t1", t0, map[string]*commonv1.Value{"segment": testenv.Str("a")}),
		)
	}
	env.MustPublish(testenv.Consent("objector", "objector-c1", t0.Add(time.Hour), commonv1.ConsentState_CONSENT_STATE_OBJECTED))
	testenv.ApplyReady(t, svc.Client, crashFeatures())
	online := func() *featurev1.GetOnlineFeaturesResponse {
		return onlineBothWays(t, svc.Client, &featurev1.GetOnlineFeaturesRequest{
			FeatureSet: &featurev1.FeatureSetRef{Name: "crash"},
			Entities:   []*commonv1.EntityKey{{Id: "victim"}, {Id: "keeper"}, {Id: "objector"}},
		})
	}
	if r := online().GetResults(); !r[0].GetFound() || r[2].GetConsent() != commonv1.ConsentState_CONSENT_STATE_OBJECTED {
		t.Fatalf("before erasure: %v", r)
	}
	if got := listEntities(t, svc.Client); !slices.Equal(got, []string{"keeper", "objector", "victim"}) {
		t.Fatalf("ListEntities before erasure = %v, want every customer, the objector included", got)
	}

	audit, err := env.JS.OrderedConsumer(ctxT(t, 5*time.Second), eventlog.AuditStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{eventlog.AuditAppliedSubject("er-1")},
	})
	if err != nil {
		t.Fatal(err)
	}
	seq := forget(t, env, "victim", "er-1")
	msg, err := audit.Next(jetstream.FetchMaxWait(20 * time.Second))
	if err != nil {
		t.Fatalf("no ErasureApplied: %v", err)
	}
	var applied eventlog.ErasureApplied
	if err := json.Unmarshal(msg.Data(), &applied); err != nil {
		t.Fatal(err)
	}
	if applied.ErasureID != "er-1" || applied.EventSequence != seq || applied.KeysDeleted != 1 || applied.SubjectHash != env.Pseudonymiser.SubjectHash("victim") {
		t.Errorf("ErasureApplied = %+v, want erasure er-1, sequence %d, 1 key", applied, seq)
	}
	events, err := env.JS.Stream(ctxT(t, 5*time.Second), eventlog.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := events.GetMsg(ctxT(t, 5*time.Second), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the erasure record is still stored: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Nothing the feature service keeps names the customer: no value, no
	// purge marker, in the state bucket.
	key, _ := state.KeyOf(eventlog.UserKey("victim"))
	kvStream, err := env.JS.Stream(ctxT(t, 5*time.Second), state.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := kvStream.Info(ctxT(t, 5*time.Second), jetstream.WithSubjectFilter(state.Subject(key)))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[state.Subject(key)]; n != 0 {
		t.Errorf("the state bucket still holds %d messages of the customer", n)
	}

	if got := listEntities(t, svc.Client); !slices.Equal(got, []string{"keeper", "objector"}) {
		t.Errorf("ListEntities after erasure = %v, want the erased customer gone", got)
	}
	r := online().GetResults()
	if r[0].GetFound() || r[0].GetConsent() != commonv1.ConsentState_CONSENT_STATE_ERASED {
		t.Errorf("erased customer: found %v consent %v, want not found and ERASED", r[0].GetFound(), r[0].GetConsent())
	}
	for _, v := range r[0].GetValues() {
		if v.GetStatus() != featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_NOT_FOUND {
			t.Errorf("erased customer value status %v, want NOT_FOUND", v.GetStatus())
		}
	}
	if !r[1].GetFound() {
		t.Error("the other customer was erased too")
	}
	// A late record of the erased customer (sent before the erasure,
	// stored after it) does not bring their state back.
	env.MustPublish(testenv.Track("victim", "victim-late", "Order Completed", t0.Add(time.Minute), testenv.F(5), "", nil))
	env.WaitApplied(20 * time.Second)
	if r := online().GetResults(); r[0].GetFound() || r[0].GetConsent() != commonv1.ConsentState_CONSENT_STATE_ERASED {
		t.Errorf("after a late record of the erased customer: found %v consent %v, want not found and ERASED", r[0].GetFound(), r[0].GetConsent())
	}
	kv, err := env.JS.KeyValue(ctxT(t, 5*time.Second), state.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctxT(t, 5*time.Second), key); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("a late record of the erased customer stored state again: %v", err)
	}

	build := func(includeObjected bool) *testenv.TrainingSet {
		ts, err := testenv.Build(ctxT(t, 30*time.Second), svc.Client, &featurev1.BuildTrainingSetRequest{Spec: &featurev1.TrainingSetSpec{
			FeatureSet:      &featurev1.FeatureSetRef{Name: "crash"},
			Label:           &featurev1.LabelSpec{Source: &featurev1.LabelSpec_Trait{Trait: &featurev1.TraitLabel{Trait: "segment"}}},
			Cutoff:          fixedCutoff(time.Now()),
			IncludeObjected: includeObjected,
		}})
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	ids := func(ts *testenv.TrainingSet) []string {
		var out []string
		for _, r := range ts.Rows {
			out = append(out, r.GetEntity().GetId())
		}
		return out
	}
	ts := build(false)
	if got := ids(ts); len(got) != 1 || got[0] != "keeper" || ts.Summary.GetExcludedObjected() != 1 {
		t.Errorf("training set entities %v (excluded objected %d), want [keeper] and 1", got, ts.Summary.GetExcludedObjected())
	}
	if got := ids(build(true)); len(got) != 2 || got[0] != "keeper" || got[1] != "objector" {
		t.Errorf("training set with objected entities %v, want [keeper objector]", got)
	}
}

// listEntities lists every customer with ListEntities, in pages of two, sorted.
func listEntities(t *testing.T, c featurev1.FeatureServiceClient) []string {
	t.Helper()
	stream, err := c.ListEntities(ctxT(t, 10*time.Second), &featurev1.ListEntitiesRequest{PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n := len(resp.GetEntities()); n == 0 || n > 2 {
			t.Errorf("a page of %d entities, want 1 or 2", n)
		}
		for _, e := range resp.GetEntities() {
			ids = append(ids, e.GetId())
		}
	}
	slices.Sort(ids)
	return ids
}
