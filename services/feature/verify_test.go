package feature_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
	"github.com/bullseye-ml/bullseye/services/feature/internal/state"
	"github.com/bullseye-ml/bullseye/services/feature/internal/testenv"
)

// TestVerifyMaterialization reconciles a stream of orders, views, trait
// updates and consents with the profiles (no difference), then damages one
// profile by hand and expects the difference named: the customer, the
// event name and the feature set that reads it.
func TestVerifyMaterialization(t *testing.T) {
	env := testenv.New(t)
	svc := env.Start(env.Config())
	testenv.ApplyReady(t, svc.Client, crashFeatures())
	t0 := time.Now().Add(-time.Hour)
	var evs []*ingestv1.StoredEvent
	for i := range 400 {
		user := fmt.Sprintf("v-%03d", i%40)
		name := "Order Completed"
		if i%3 == 0 {
			name = "Product Viewed"
		}
		evs = append(evs, testenv.Track(user, fmt.Sprint("t-", i), name, t0.Add(time.Duration(i)*time.Second), testenv.F(1), "", nil))
	}
	for i := range 40 {
		user := fmt.Sprintf("v-%03d", i)
		evs = append(evs,
			testenv.Identify(user, fmt.Sprint("i-", i), t0, map[string]*commonv1.Value{"tier": testenv.Str("gold")}),
			testenv.Consent(user, fmt.Sprint("c-", i), t0, commonv1.ConsentState_CONSENT_STATE_GRANTED))
	}
	env.MustPublish(evs...)
	env.WaitApplied(30 * time.Second)

	resp, err := svc.Client.VerifyMaterialization(ctxT(t, 30*time.Second), &featurev1.VerifyMaterializationRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"(consent)": 40, "(identify)": 40, "Order Completed": 266, "Product Viewed": 134}
	for _, rc := range resp.GetRecords() {
		if rc.GetStream() != want[rc.GetName()] || rc.GetMaterialised() != want[rc.GetName()] || rc.GetDifference() != 0 {
			t.Errorf("%s: %v, want %d on both sides", rc.GetName(), rc, want[rc.GetName()])
		}
	}
	if len(resp.GetRecords()) != len(want) || resp.GetDifferences() != 0 || resp.GetProfiles() != 40 {
		t.Fatalf("reconciliation of an intact state: %v", resp)
	}

	// Damage v-007's profile: drop one of its orders.
	kv, err := env.JS.KeyValue(ctxT(t, 5*time.Second), state.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := state.KeyOf(eventlog.UserKey("v-007"))
	entry, err := kv.Get(ctxT(t, 5*time.Second), key)
	if err != nil {
		t.Fatal(err)
	}
	p, err := profile.Decode(entry.Value(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range p.Events {
		if e.Name == "Order Completed" {
			p.Events = append(p.Events[:i], p.Events[i+1:]...)
			break
		}
	}
	if _, err := kv.Put(ctxT(t, 5*time.Second), key, profile.Encode(nil, p)); err != nil {
		t.Fatal(err)
	}
	resp, err = svc.Client.VerifyMaterialization(ctxT(t, 30*time.Second), &featurev1.VerifyMaterializationRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetDifferences() != 1 || resp.GetEntitiesDiffering() != 1 || len(resp.GetEntities()) != 1 {
		t.Fatalf("after damage: %d differences over %d pairs, want 1: %v", resp.GetDifferences(), resp.GetEntitiesDiffering(), resp)
	}
	d := resp.GetEntities()[0]
	if d.GetEntity().GetId() != "v-007" || d.GetCount().GetName() != "Order Completed" || d.GetCount().GetDifference() != 1 {
		t.Errorf("difference %v, want v-007 missing one Order Completed", d)
	}
	for _, rc := range resp.GetRecords() {
		if rc.GetName() == "Order Completed" && (rc.GetDifference() != 1 || strings.Join(rc.GetFeatureSets(), ",") != "crash") {
			t.Errorf("Order Completed: %v, want difference 1 read by feature set crash", rc)
		}
	}
}

// TestRetentionIsReported streams more events for one customer than a
// profile keeps: the oldest are dropped, counted in the profile, and
// reported by the training-set summary and by the reconciliation (which
// accounts for them: 0 differences).
func TestRetentionIsReported(t *testing.T) {
	env := testenv.New(t)
	cfg := env.Config()
	cfg.MaxProfileBytes = 64 << 10
	svc := env.Start(cfg)
	testenv.ApplyReady(t, svc.Client, crashFeatures())
	t0 := time.Now().Add(-24 * time.Hour)
	var evs []*ingestv1.StoredEvent
	for i := range 3000 {
		user := "heavy"
		if i%10 == 0 {
			user = fmt.Sprint("light-", i%7)
		}
		evs = append(evs, testenv.Track(user, fmt.Sprint("r-", i), "Order Completed", t0.Add(time.Duration(i)*time.Second), testenv.F(2), "", map[string]*commonv1.Value{"note": testenv.Str(strings.Repeat("x", 40))}))
	}
	env.MustPublish(evs...)
	env.WaitApplied(30 * time.Second)
	resp, err := svc.Client.VerifyMaterialization(ctxT(t, 30*time.Second), &featurev1.VerifyMaterializationRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetDifferences() != 0 || resp.GetProfilesPastRetention() != 1 || len(resp.GetRecords()) != 1 {
		t.Fatalf("reconciliation: %v", resp)
	}
	rc := resp.GetRecords()[0]
	if rc.GetStream() != 3000 || rc.GetDroppedByRetention() == 0 || rc.GetMaterialised()+rc.GetDroppedByRetention() != 3000 {
		t.Errorf("Order Completed: %v, want 3000 on the stream, some dropped by retention, all accounted for", rc)
	}
	set, err := testenv.Build(ctxT(t, 30*time.Second), svc.Client, &featurev1.BuildTrainingSetRequest{Spec: &featurev1.TrainingSetSpec{
		FeatureSet: &featurev1.FeatureSetRef{Name: "crash"},
		Label:      &featurev1.LabelSpec{Name: "orders_after", Source: &featurev1.LabelSpec_Outcome{Outcome: &featurev1.OutcomeLabel{Filter: orders(), Horizon: durationpb.New(time.Hour)}}, KeepMissing: true},
		Cutoff:     fixedCutoff(t0.Add(time.Hour)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	sum := set.Summary
	if sum.GetEntitiesPastRetention() != 1 || sum.GetEventsDroppedByRetention() != rc.GetDroppedByRetention() {
		t.Errorf("training-set summary: %v, want 1 entity past retention with %d events dropped", sum, rc.GetDroppedByRetention())
	}
}
