package server_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

// wireCodec sends requests as a hostile client may: encoded by the
// generated MarshalVT, which does not refuse invalid UTF-8 (grpc's own
// codec refuses to send them). Replies are decoded by the standard,
// validating decoder, so that a reply repeating a bad string fails the
// test.
type wireCodec struct{}

func (wireCodec) Marshal(v any) ([]byte, error) {
	return v.(interface{ MarshalVT() ([]byte, error) }).MarshalVT()
}

func (wireCodec) Unmarshal(data []byte, v any) error { return proto.Unmarshal(data, v.(proto.Message)) }

func (wireCodec) Name() string { return "proto" }

// asWire is the call option of requests holding invalid UTF-8.
func asWire() grpc.CallOption { return grpc.ForceCodec(wireCodec{}) }

const badUTF8 = "ok\xff\xfe"

// resultKeys renders results as "STATUS field:REASON,...".
func resultKeys(rs []*ingestv1.EventResult) []string {
	var out []string
	for _, r := range rs {
		out = append(out, strings.TrimPrefix(r.GetStatus().String(), "EVENT_STATUS_")+" "+strings.Join(problemKeys(r.GetProblems()), ","))
	}
	return out
}

// TestTrackInvalidUTF8RejectsOnlyItsItem sends a batch whose middle event
// holds invalid UTF-8 in a property value and in its name: that event
// alone is rejected, naming both fields, and its neighbours are stored.
func TestTrackInvalidUTF8RejectsOnlyItsItem(t *testing.T) {
	e := newEnv(t)
	events := []*ingestv1.Event{
		{MessageId: "u-1", UserId: "c-1", Name: "Order Completed", Properties: map[string]*commonv1.Value{"note": strv("fine")}},
		{MessageId: "u-2", UserId: "c-2", Name: "Bad " + badUTF8, Properties: map[string]*commonv1.Value{"x": strv(badUTF8), "y": strv("fine")}},
		{MessageId: "u-3", UserId: "c-3", Name: "Product Viewed"},
	}
	resp, err := e.client.Track(e.ctx(10*time.Second), &ingestv1.TrackRequest{Events: events}, asWire())
	if err != nil {
		t.Fatalf("Track: %v, want per-item results", err)
	}
	got := resultKeys(resp.GetResults())
	want := []string{"ACCEPTED ", "REJECTED events[1].name:INVALID_UTF8,events[1].properties.x:INVALID_UTF8", "ACCEPTED "}
	if len(got) == 3 {
		// The map's order is random: compare the rejected problems sorted.
		ps := strings.Split(strings.TrimPrefix(got[1], "REJECTED "), ",")
		slices.Sort(ps)
		got[1] = "REJECTED " + strings.Join(ps, ",")
	}
	if !slices.Equal(got, want) {
		t.Fatalf("results %q, want %q", got, want)
	}
	for _, p := range resp.GetResults()[1].GetProblems() {
		if !strings.Contains(p.GetDescription(), "not valid UTF-8") {
			t.Errorf("problem %s says %q, want it to say the field is not valid UTF-8", p.GetField(), p.GetDescription())
		}
	}
	if resp.GetResults()[1].GetDeadLetterId() == "" {
		t.Error("the rejected event has no dead letter")
	}
	stored := e.decodeStored()
	if len(stored) != 2 || stored["u-1"].GetName() != "Order Completed" || stored["u-3"].GetName() != "Product Viewed" {
		t.Errorf("stored %v, want exactly u-1 and u-3", slices.Sorted(maps.Keys(stored)))
	}
	// The dead letter keeps the item with its bad bytes replaced, so that
	// it can be encoded and listed.
	dl, err := e.client.ListDeadLetters(e.ctx(10*time.Second), &ingestv1.ListDeadLettersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(dl.GetDeadLetters()); n != 1 {
		t.Fatalf("%d dead letters, want 1", n)
	}
	if got := dl.GetDeadLetters()[0].GetEvent(); got.GetName() != "Bad ok\uFFFD" || got.GetProperties()["x"].GetStringValue() != "ok\uFFFD" {
		t.Errorf("dead letter holds %v", got)
	}

	// A retry stores nothing new, not even a second dead letter.
	resp, err = e.client.Track(e.ctx(10*time.Second), &ingestv1.TrackRequest{Events: events}, asWire())
	if err != nil {
		t.Fatal(err)
	}
	if c := resp.GetCounts(); c.GetDuplicates() != 2 || c.GetRejected() != 1 {
		t.Errorf("retry counts %v, want 2 duplicates and 1 rejected", c)
	}
	if n := e.count(eventlog.DeadLettersStream); n != 1 {
		t.Errorf("dead-letter stream holds %d messages after a retry, want 1", n)
	}
	// Two items that differ only in their bad bytes keep a dead letter each.
	other := proto.Clone(events[1]).(*ingestv1.Event)
	other.Name = "Bad ok\xfe\xff"
	other.Properties["x"] = strv("ok\xfe\xff")
	if _, err := e.client.Track(e.ctx(10*time.Second), &ingestv1.TrackRequest{Events: []*ingestv1.Event{other}}, asWire()); err != nil {
		t.Fatal(err)
	}
	if n := e.count(eventlog.DeadLettersStream); n != 2 {
		t.Errorf("dead-letter stream holds %d messages, want 2 (one per distinct bad item)", n)
	}
}

// TestIdentifyInvalidUTF8RejectsOnlyItsItem is the same for Identify, with
// the bad bytes in a trait's name, a trait's value, the context and the
// message id (which the reply does not repeat).
func TestIdentifyInvalidUTF8RejectsOnlyItsItem(t *testing.T) {
	e := newEnv(t)
	updates := []*ingestv1.TraitUpdate{
		{MessageId: "t-1", UserId: "c-1", Traits: map[string]*commonv1.Value{"plan": strv("pro")}},
		{MessageId: "t-2", UserId: "c-2", Traits: map[string]*commonv1.Value{"plan": strv(badUTF8), "k" + badUTF8: strv("v")}, Context: &ingestv1.EventContext{Locale: badUTF8}},
		{MessageId: "t-3" + badUTF8, UserId: "c-3", Traits: map[string]*commonv1.Value{"plan": strv("free")}},
		{MessageId: "t-4", UserId: "c-4", Traits: map[string]*commonv1.Value{"plan": strv("free")}},
	}
	resp, err := e.client.Identify(e.ctx(10*time.Second), &ingestv1.IdentifyRequest{Updates: updates}, asWire())
	if err != nil {
		t.Fatalf("Identify: %v, want per-item results", err)
	}
	got := resultKeys(resp.GetResults())
	if len(got) == 4 {
		ps := strings.Split(strings.TrimPrefix(got[1], "REJECTED "), ",")
		slices.Sort(ps)
		got[1] = "REJECTED " + strings.Join(ps, ",")
	}
	want := []string{
		"ACCEPTED ",
		"REJECTED updates[1].context.locale:INVALID_UTF8,updates[1].traits.plan:INVALID_UTF8,updates[1].traits:INVALID_UTF8",
		"REJECTED updates[2].message_id:INVALID_UTF8",
		"ACCEPTED ",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("results %q, want %q", got, want)
	}
	if id := resp.GetResults()[2].GetMessageId(); id != "" {
		t.Errorf("a message id that is not UTF-8 is repeated as %q", id)
	}
	stored := e.decodeStored()
	if len(stored) != 2 || stored["t-1"] == nil || stored["t-4"] == nil {
		t.Errorf("stored %v, want exactly t-1 and t-4", slices.Sorted(maps.Keys(stored)))
	}
	if n := e.count(eventlog.DeadLettersStream); n != 2 {
		t.Errorf("dead-letter stream holds %d messages, want 2", n)
	}
}

// TestImportInvalidUTF8RejectsOnlyItsRow imports a CSV whose middle row
// holds invalid UTF-8: that row alone is rejected (with a dead letter),
// the import goes on, and a header that is not UTF-8 is refused naming
// the column.
func TestImportInvalidUTF8RejectsOnlyItsRow(t *testing.T) {
	e := newEnv(t)
	m := &ingestv1.ImportMapping{
		Format:               ingestv1.FileFormat_FILE_FORMAT_CSV,
		Csv:                  &ingestv1.CsvOptions{HeaderRow: true},
		Entity:               &ingestv1.ImportMapping_UserIdColumn{UserIdColumn: "id"},
		Time:                 &ingestv1.ImportMapping_FixedTime{FixedTime: timestamppb.Now()},
		TraitColumns:         []*ingestv1.ColumnMapping{{Column: "plan"}},
		DisableTypeInference: true,
	}
	csv := "id,plan\nc-1,pro\nc-2,bad" + badUTF8 + "\nc-3,free\n"
	last, err := importFile(e.ctx(20*time.Second), e.client, "utf8.csv", []byte(csv), m, importOpts{})
	if err != nil {
		t.Fatalf("Import: %v %v, want the bad row rejected on its own", err, status.Convert(err).Details())
	}
	if last.GetRowsRead() != 3 || last.GetRowsAccepted() != 2 || last.GetRowsRejected() != 1 {
		t.Errorf("counts: %d read, %d accepted, %d rejected; want 3, 2, 1", last.GetRowsRead(), last.GetRowsAccepted(), last.GetRowsRejected())
	}
	if r := last.GetRejections(); len(r) != 1 || !slices.Equal(problemKeys(r[0].GetProblems()), []string{"plan:INVALID_UTF8"}) || r[0].GetDeadLetterId() == "" {
		t.Errorf("rejections %v, want row 1's plan as INVALID_UTF8 with a dead letter", r)
	}
	if n := len(e.decodeStored()); n != 2 {
		t.Errorf("%d records stored, want 2", n)
	}

	_, err = importFile(e.ctx(20*time.Second), e.client, "header.csv", []byte("id,pl"+badUTF8+"\nc-1,pro\n"), m, importOpts{})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message()+fmt.Sprint(st.Details()), "column 2") {
		t.Errorf("header not UTF-8: %v, want INVALID_ARGUMENT naming column 2", err)
	}
}
