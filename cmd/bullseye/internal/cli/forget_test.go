package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/cmd/bullseye/internal/dev"
	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
)

// TestForgetThroughTheMesh erases a customer with `bullseye forget` on a
// real mesh and then reads every message of every JetStream stream and
// bucket (events, dead letters, audit, imports, erasure list, feature
// state): neither the customer's id (raw or as a subject token) nor their
// email appears anywhere, and online lookups no longer find them.
func TestForgetThroughTheMesh(t *testing.T) {
	m := startMesh(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const who, email = "cust-4711", "ana.forgotten@example.com"
	if code, _, errOut := bullseye(t, m, "featureset", "apply", "testdata/rfm.yaml"); code != 0 {
		t.Fatal(errOut)
	}

	ingestConn, err := mesh.DialAddr(ctx, m.Addr("ingest"), mesh.TLSConfig{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ingestConn.Close()
	ingest := ingestv1.NewIngestServiceClient(ingestConn)
	now := time.Now()
	var events []*ingestv1.Event
	for i := range 3 {
		v := 10.0 * float64(i+1)
		events = append(events, &ingestv1.Event{
			MessageId: fmt.Sprintf("order-%d", i), UserId: who, Name: "Order Completed", Value: &v, Currency: "EUR",
			OriginalTimestamp: timestamppb.New(now.Add(-time.Duration(i+1) * time.Hour)),
		})
	}
	// One bad event too, so the customer also has a dead letter.
	events = append(events, &ingestv1.Event{MessageId: "bad", UserId: who})
	tr, err := ingest.Track(ctx, &ingestv1.TrackRequest{Events: events})
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.GetResults()[3].GetStatus(); got != ingestv1.EventStatus_EVENT_STATUS_REJECTED {
		t.Fatalf("the nameless event is %v, want REJECTED", got)
	}
	_, err = ingest.Identify(ctx, &ingestv1.IdentifyRequest{Updates: []*ingestv1.TraitUpdate{{
		MessageId: "traits-1", UserId: who,
		Traits: map[string]*commonv1.Value{"email": {Kind: &commonv1.Value_StringValue{StringValue: email}}},
	}}})
	if err != nil {
		t.Fatal(err)
	}

	featureConn, err := mesh.DialAddr(ctx, m.Addr("feature"), mesh.TLSConfig{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer featureConn.Close()
	features := featurev1.NewFeatureServiceClient(featureConn)
	lookup := func() (*featurev1.EntityFeatures, error) {
		resp, err := features.GetOnlineFeatures(ctx, &featurev1.GetOnlineFeaturesRequest{
			FeatureSet: &featurev1.FeatureSetRef{Name: "purchases"},
			Entities:   []*commonv1.EntityKey{{Id: who}},
		})
		if err != nil {
			return nil, err
		}
		return resp.GetResults()[0], nil
	}
	// Wait for the feature set's backfill and the customer's state.
	deadline := time.Now().Add(30 * time.Second)
	for {
		e, err := lookup()
		if err == nil && e.GetFound() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the feature service never materialised the customer (last error %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The scan must find the customer before the erasure, or it proves nothing.
	if hits := scanJetStream(t, m, who, email); len(hits) == 0 {
		t.Fatal("the scan found no trace of the customer before the erasure")
	}

	code, out, errOut := bullseye(t, m, "forget", who, "--reason", "customer request")
	if code != 0 {
		t.Fatalf("forget exited %d: %s", code, errOut)
	}
	if !strings.Contains(out, "FEATURE_STATE") || !strings.Contains(out, "DEAD_LETTERS") {
		t.Errorf("the receipt %q does not account for the feature state and dead letters", out)
	}
	if hits := scanJetStream(t, m, who, email); len(hits) > 0 {
		t.Errorf("after the erasure the customer is still in: %s", strings.Join(hits, "; "))
	}
	if e, err := lookup(); err != nil || e.GetFound() || e.GetConsent() != commonv1.ConsentState_CONSENT_STATE_ERASED {
		t.Errorf("online lookup after the erasure = %v (err %v), want not found and ERASED", e, err)
	}
	code, out, _ = bullseye(t, m, "forget", who)
	if code != 0 || !strings.Contains(out, "erased before") {
		t.Errorf("a second forget: exit %d, %q; want an idempotent receipt", code, out)
	}
}

// scanJetStream reads every message of every stream (key-value buckets and
// object stores are streams too) and returns where any needle appears, in
// the subject, a header or the data; ids are also searched as the subject
// tokens they become.
func scanJetStream(t *testing.T, m *dev.Mesh, needles ...string) []string {
	t.Helper()
	token, err := eventlog.EncodeID(needles[0])
	if err != nil {
		t.Fatal(err)
	}
	needles = append(needles, token)
	nc, err := nats.Connect(m.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var hits []string
	names := js.StreamNames(ctx)
	for name := range names.Name() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		st := s.CachedInfo().State
		for seq := st.FirstSeq; seq <= st.LastSeq && st.Msgs > 0; seq++ {
			msg, err := s.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				t.Fatalf("reading %s #%d: %v", name, seq, err)
			}
			var hdr bytes.Buffer
			for k, vs := range msg.Header {
				fmt.Fprintf(&hdr, "%s:%s\n", k, strings.Join(vs, ","))
			}
			for _, n := range needles {
				if strings.Contains(msg.Subject, n) || bytes.Contains(msg.Data, []byte(n)) || strings.Contains(hdr.String(), n) {
					hits = append(hits, fmt.Sprintf("%s #%d (%s) holds %q", name, seq, msg.Subject, n))
				}
			}
		}
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	return hits
}
