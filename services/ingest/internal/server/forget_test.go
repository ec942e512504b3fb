package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

// fakeFeature plays the feature service's part of an erasure (see
// pkg/eventlog): it confirms, reporting keysPerErasure deleted keys, and
// deletes the erasure record.
func (e *env) fakeFeature(t *testing.T, keysPerErasure int64) *atomic.Int64 {
	t.Helper()
	ctx := e.ctx(60 * time.Second)
	stream, err := e.js.Stream(ctx, eventlog.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{eventlog.EventsPrefix + ".*.*.*." + string(eventlog.TypeErasure)}})
	if err != nil {
		t.Fatal(err)
	}
	var applied atomic.Int64
	cc, err := cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			t.Error(err)
			return
		}
		var ev ingestv1.StoredEvent
		if err := proto.Unmarshal(m.Data(), &ev); err != nil {
			t.Error(err)
			return
		}
		// Confirm first and delete the record a little later (as the
		// feature service may): ForgetUser must wait for both.
		b, _ := json.Marshal(eventlog.ErasureApplied{ErasureID: ev.GetErasureId(), SubjectHash: ev.GetSubjectHash(), EventSequence: md.Sequence.Stream, KeysDeleted: keysPerErasure, AppliedTime: time.Now()})
		if _, err := e.js.Publish(ctx, eventlog.AuditAppliedSubject(ev.GetErasureId()), b); err != nil {
			t.Error(err)
			return
		}
		applied.Add(1)
		time.Sleep(50 * time.Millisecond)
		if err := stream.DeleteMsg(ctx, md.Sequence.Stream); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return &applied
}

// everything returns every message of every stream of the event log,
// buckets included.
func (e *env) everything() []storedMsg {
	var out []storedMsg
	for _, s := range []string{eventlog.EventsStream, eventlog.DeadLettersStream, eventlog.AuditStream,
		"KV_" + eventlog.ImportsBucket, "KV_" + eventlog.ErasuresBucket, "KV_" + eventlog.ReplaysBucket} {
		out = append(out, e.messages(s)...)
	}
	return out
}

// holds reports where a message holds one of needles: its subject, a
// header or its data.
func (m storedMsg) holds(needles ...string) string {
	var hb strings.Builder
	for k, vs := range m.header {
		hb.WriteString(k + ": " + strings.Join(vs, ", ") + "\n")
	}
	for _, n := range needles {
		if strings.Contains(m.subject, n) || strings.Contains(hb.String(), n) || bytes.Contains(m.data, []byte(n)) {
			return n
		}
	}
	return ""
}

func TestForgetUser(t *testing.T) {
	e := newEnv(t, withErasureWait(5*time.Second))
	applied := e.fakeFeature(t, 3)
	const user, anon, other = "crm.42 *>", "cookie-42", "crm-7"
	token, _ := eventlog.EncodeID(user)
	anonToken, _ := eventlog.EncodeID(anon)
	secrets := []string{user, anon, token, anonToken, "secret-plan-42", "sku-forget-me", "forget-me-campaign"}

	ctx := e.ctx(30 * time.Second)
	if _, err := e.client.Track(ctx, &ingestv1.TrackRequest{Events: []*ingestv1.Event{
		{MessageId: "e1", UserId: user, Name: "Order Completed", ItemId: "sku-forget-me", Value: proto.Float64(9), Currency: "EUR"},
		{MessageId: "e2", UserId: user, Name: "Campaign Responded", Context: &ingestv1.EventContext{Campaign: &ingestv1.CampaignContext{Id: "forget-me-campaign"}}},
		{MessageId: "e3", AnonymousId: anon, Name: "Page Viewed", ItemId: "sku-forget-me"},
		{MessageId: "e4", UserId: user, ItemId: "sku-forget-me"}, // no name: a dead letter
		{MessageId: "e5", UserId: other, Name: "Order Completed", ItemId: "sku-1"},
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Identify(ctx, &ingestv1.IdentifyRequest{Updates: []*ingestv1.TraitUpdate{
		{MessageId: "t1", UserId: user, AnonymousId: anon, Traits: map[string]*commonv1.Value{"plan": strv("secret-plan-42")}},
		{MessageId: "t2", UserId: other, Traits: map[string]*commonv1.Value{"plan": strv("basic")}},
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.SetConsent(ctx, &ingestv1.SetConsentRequest{Changes: []*ingestv1.ConsentChange{
		{MessageId: "k1", UserId: user, State: commonv1.ConsentState_CONSENT_STATE_OBJECTED},
	}}); err != nil {
		t.Fatal(err)
	}
	// An imported file with the customer's rows, one of them rejected.
	csv := fmt.Sprintf("id,plan\n%s,secret-plan-42\n%s,\"bad\"quote\n%s,basic\n", user, user, other)
	m := &ingestv1.ImportMapping{
		Format:       ingestv1.FileFormat_FILE_FORMAT_CSV,
		Csv:          &ingestv1.CsvOptions{HeaderRow: true},
		Entity:       &ingestv1.ImportMapping_UserIdColumn{UserIdColumn: "id"},
		Time:         &ingestv1.ImportMapping_FixedTime{FixedTime: timestamppb.Now()},
		TraitColumns: []*ingestv1.ColumnMapping{{Column: "plan"}},
	}
	last, err := importFile(ctx, e.client, "crm.csv", []byte(csv), m, importOpts{})
	if err != nil || last.GetRowsAccepted() != 2 {
		t.Fatalf("import: %v, %v", last, err)
	}
	importID := last.GetImportId()

	// The scan below finds the customer before the erasure.
	found := map[string]bool{}
	for _, msg := range e.everything() {
		for _, s := range secrets {
			if msg.holds(s) != "" {
				found[s] = true
			}
		}
	}
	if len(found) != len(secrets) {
		t.Fatalf("before the erasure the scan finds only %v of %v", found, secrets)
	}

	resp, err := e.client.ForgetUser(ctx, &ingestv1.ForgetUserRequest{UserId: user, AnonymousIds: []string{anon}, Reason: "GDPR art. 17 request 2024-118"})
	if err != nil {
		t.Fatal(err)
	}
	r := resp.GetReceipt()
	hash := e.p.SubjectHash(user)
	if r.GetSubjectHash() != hash || r.GetKeyId() != e.p.KeyID() || r.GetAlreadyErased() || r.GetErasureId() == "" {
		t.Errorf("receipt %v", r)
	}
	purged := map[string]int64{}
	for _, pc := range r.GetPurged() {
		purged[pc.GetTarget().String()] = pc.GetCount()
	}
	wantPurged := map[string]int64{
		"ERASURE_TARGET_EVENTS":          3, // e1, e2, e3 (the anonymous id's)
		"ERASURE_TARGET_TRAITS":          2, // t1 and the imported row
		"ERASURE_TARGET_CONSENT_RECORDS": 1,
		"ERASURE_TARGET_DEAD_LETTERS":    1, // e4; the badly quoted row has no customer
		"ERASURE_TARGET_FEATURE_STATE":   6, // two erasure records, 3 keys each
	}
	if fmt.Sprint(purged) != fmt.Sprint(wantPurged) {
		t.Errorf("purged %v, want %v", purged, wantPurged)
	}
	if applied.Load() != 2 {
		t.Errorf("the feature service applied %d erasure records, want 2", applied.Load())
	}

	// Nothing ingest keeps holds the customer's id or data; the audit
	// record names them by hash only.
	audits := 0
	for _, msg := range e.everything() {
		if s := msg.holds(secrets...); s != "" {
			t.Errorf("%s message %d on %s still holds %q", msg.stream, msg.seq, msg.subject, s)
		}
		if msg.stream == eventlog.AuditStream && strings.HasSuffix(msg.subject, ".requested") {
			audits++
			var a eventlog.AuditRecord
			if err := json.Unmarshal(msg.data, &a); err != nil {
				t.Fatal(err)
			}
			if a.SubjectHash != hash || a.ErasureID != r.GetErasureId() || a.Reason == "" || a.FeatureStatePending || a.Purged["events"] != 3 {
				t.Errorf("audit record %+v", a)
			}
		}
	}
	if audits != 1 {
		t.Errorf("%d audit records, want 1", audits)
	}
	// The other customer keeps their data.
	var kept []string
	for _, ev := range e.decodeStored() {
		kept = append(kept, ev.GetMessageId())
	}
	slices.Sort(kept)
	if want := []string{"e5", importID + "-2:t", "t2"}; !slices.Equal(kept, want) {
		t.Errorf("records left %v, want %v", kept, want)
	}

	// Later data of the customer is refused and not kept.
	tr, err := e.client.Track(ctx, &ingestv1.TrackRequest{Events: []*ingestv1.Event{
		{MessageId: "e6", UserId: user, Name: "Order Completed", ItemId: "sku-forget-me"},
		{MessageId: "e7", AnonymousId: anon, Name: "Page Viewed"},
		{MessageId: "e8", UserId: user},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range tr.GetResults() {
		if res.GetStatus() != ingestv1.EventStatus_EVENT_STATUS_REJECTED || !slices.Contains(problemKeys(res.GetProblems()), ":ERASED") || res.GetDeadLetterId() != "" {
			t.Errorf("event of an erased customer: %v", res)
		}
	}

	// ForgetUser is idempotent.
	again, err := e.client.ForgetUser(ctx, &ingestv1.ForgetUserRequest{UserId: user})
	if err != nil {
		t.Fatal(err)
	}
	a := again.GetReceipt()
	if !a.GetAlreadyErased() || a.GetErasureId() != r.GetErasureId() || !a.GetEraseTime().AsTime().Equal(r.GetEraseTime().AsTime()) {
		t.Errorf("second receipt %v", a)
	}
	for _, pc := range a.GetPurged() {
		if pc.GetTarget() != ingestv1.ErasureTarget_ERASURE_TARGET_FEATURE_STATE && pc.GetCount() != 0 {
			t.Errorf("second erasure purged %v", pc)
		}
	}
	for _, msg := range e.everything() {
		if s := msg.holds(secrets...); s != "" {
			t.Errorf("after the second erasure, %s message %d still holds %q", msg.stream, msg.seq, s)
		}
	}
}

func TestForgetUserWithoutFeatureService(t *testing.T) {
	e := newEnv(t, withErasureWait(100*time.Millisecond))
	if _, err := e.client.ForgetUser(e.ctx(10*time.Second), &ingestv1.ForgetUserRequest{UserId: "crm-000123", Reason: "crm-000123 asked"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a reason holding the customer id: %v, want INVALID_ARGUMENT", err)
	}
	resp, err := e.client.ForgetUser(e.ctx(10*time.Second), &ingestv1.ForgetUserRequest{UserId: "c-1", Reason: "request c-1/2024"})
	if err != nil {
		t.Fatal(err)
	}
	for _, pc := range resp.GetReceipt().GetPurged() {
		if pc.GetTarget() == ingestv1.ErasureTarget_ERASURE_TARGET_FEATURE_STATE {
			t.Errorf("receipt reports feature state purged without a confirmation: %v", pc)
		}
	}
	// The erasure record waits on the customer's subject for the feature
	// service.
	subj, _ := eventlog.EventSubject(eventlog.UserKey("c-1"), eventlog.TypeErasure)
	msgs := e.messages(eventlog.EventsStream)
	if len(msgs) != 1 || msgs[0].subject != subj {
		t.Fatalf("events stream holds %v, want one erasure record on %s", msgs, subj)
	}
	var audit eventlog.AuditRecord
	for _, m := range e.messages(eventlog.AuditStream) {
		_ = json.Unmarshal(m.data, &audit)
	}
	if !audit.FeatureStatePending {
		t.Errorf("audit record %+v does not say the feature state is pending", audit)
	}
}
