package profile

import (
	"reflect"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func track(name string, at int64, v *float64, props map[string]*commonv1.Value) *ingestv1.StoredEvent {
	return &ingestv1.StoredEvent{Type: ingestv1.EventType_EVENT_TYPE_TRACK, MessageId: name, Name: name, Value: v,
		Properties: props, EventTime: Timestamp(at), ImportId: "imp", RowNumber: at}
}

func TestApplyIgnoresRedeliveryAndSortsByTime(t *testing.T) {
	p := New(eventlog.UserKey("c"))
	v := 2.5
	steps := []struct {
		seq  uint64
		ev   *ingestv1.StoredEvent
		want bool
	}{
		{1, track("b", 20, &v, nil), true},
		{2, track("a", 10, nil, nil), true},
		{2, track("a", 10, nil, nil), false}, // redelivered
		{1, track("b", 20, &v, nil), false},  // redelivered out of order
		{5, track("c", 20, nil, nil), true},  // same time, later sequence
		{4, track("x", 1, nil, nil), false},  // below the last applied sequence
	}
	for _, s := range steps {
		if got := p.Apply(s.seq, s.ev); got != s.want {
			t.Errorf("Apply(%d, %s) = %v, want %v", s.seq, s.ev.GetName(), got, s.want)
		}
	}
	var names []string
	for _, e := range p.Events {
		names = append(names, e.Name)
	}
	if !reflect.DeepEqual(names, []string{"a", "b", "c"}) || p.LastSeq != 5 {
		t.Errorf("events %v last seq %d, want [a b c] and 5", names, p.LastSeq)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	v := -3.25
	p := New(eventlog.AnonymousKey("anon.1"))
	p.Apply(1, track("Order Completed", -5e9, &v, map[string]*commonv1.Value{
		"s": {Kind: &commonv1.Value_StringValue{StringValue: "x"}},
		"i": {Kind: &commonv1.Value_IntValue{IntValue: -7}},
		"n": {Kind: &commonv1.Value_NumberValue{NumberValue: 0}},
		"b": {Kind: &commonv1.Value_BoolValue{BoolValue: true}},
		"t": {Kind: &commonv1.Value_TimeValue{TimeValue: timestamppb.New(time.Unix(-1, 5))}},
		"z": {},
	}))
	p.Apply(2, &ingestv1.StoredEvent{Type: ingestv1.EventType_EVENT_TYPE_IDENTIFY, MessageId: "t", EventTime: Timestamp(7),
		Traits: map[string]*commonv1.Value{"plan": {Kind: &commonv1.Value_StringValue{StringValue: "gold"}}, "gone": {}}})
	p.Apply(3, &ingestv1.StoredEvent{Type: ingestv1.EventType_EVENT_TYPE_CONSENT, EventTime: Timestamp(9), ConsentState: commonv1.ConsentState_CONSENT_STATE_OBJECTED})
	b := Encode(nil, p)
	got, err := Decode(b, Interner{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, p)
	}
	if _, err := Decode(b[:len(b)-3], nil); err == nil {
		t.Error("a truncated profile decodes")
	}
}

func TestPointInTime(t *testing.T) {
	p := New(eventlog.UserKey("c"))
	set := func(seq uint64, at int64, plan string) {
		p.Apply(seq, &ingestv1.StoredEvent{Type: ingestv1.EventType_EVENT_TYPE_IDENTIFY, EventTime: Timestamp(at), ImportId: "imp", RowNumber: int64(seq),
			Traits: map[string]*commonv1.Value{"plan": {Kind: &commonv1.Value_StringValue{StringValue: plan}}}})
	}
	set(1, 10, "a")
	set(2, 20, "b")
	tests := []struct {
		before int64
		want   string
		found  bool
	}{{10, "", false}, {11, "a", true}, {20, "a", true}, {21, "b", true}}
	for _, tt := range tests {
		v, _, found := p.TraitAt("plan", tt.before)
		if v.Str != tt.want || found != tt.found {
			t.Errorf("TraitAt(before %d) = %q %v, want %q %v", tt.before, v.Str, found, tt.want, tt.found)
		}
	}
	if id, row, ok := p.ImportRow(""); !ok || id != "imp" || row != 2 {
		t.Errorf("ImportRow = %q %d %v, want the latest trait update's row 2", id, row, ok)
	}
	if up := p.UpTo(1); len(up.Traits) != 1 || up.LastSeq != 1 || len(p.Traits) != 2 {
		t.Errorf("UpTo(1) = %+v", up)
	}
}

func TestConvert(t *testing.T) {
	tests := []struct {
		in   Value
		to   commonv1.ValueType
		want Value
	}{
		{IntValue(3), commonv1.ValueType_VALUE_TYPE_NUMBER, NumberValue(3)},
		{NumberValue(3), commonv1.ValueType_VALUE_TYPE_INT, IntValue(3)},
		{NumberValue(3.5), commonv1.ValueType_VALUE_TYPE_INT, Value{}},
		{StringValue("4.5"), commonv1.ValueType_VALUE_TYPE_NUMBER, NumberValue(4.5)},
		{StringValue("x"), commonv1.ValueType_VALUE_TYPE_NUMBER, Value{}},
		{IntValue(12), commonv1.ValueType_VALUE_TYPE_STRING, StringValue("12")},
		{StringValue("true"), commonv1.ValueType_VALUE_TYPE_BOOL, BoolValue(true)},
	}
	for _, tt := range tests {
		if got := tt.in.Convert(tt.to); got != tt.want {
			t.Errorf("%+v.Convert(%v) = %+v, want %+v", tt.in, tt.to, got, tt.want)
		}
	}
}

// TestDropOldestCountsAndRoundTrips drops a profile's oldest events by
// retention: the counts per name (and the latest dropped time) survive an
// encoding, and appending to the encoding keeps them.
func TestDropOldestCountsAndRoundTrips(t *testing.T) {
	p := New(eventlog.UserKey("c-1"))
	for i := range 10 {
		name := "Product Viewed"
		if i%2 == 0 {
			name = "Order Completed"
		}
		p.Apply(uint64(i+1), track(name, int64(i)*1e9, nil, nil))
	}
	p.DropOldest(5)
	want := []Dropped{{Name: "Order Completed", Count: 3, Latest: 4e9}, {Name: "Product Viewed", Count: 2, Latest: 3e9}}
	if !reflect.DeepEqual(p.Dropped, want) || len(p.Events) != 5 || p.DroppedEvents() != 5 {
		t.Fatalf("dropped %+v, %d events left", p.Dropped, len(p.Events))
	}
	b := Encode(nil, p)
	a, err := NewAppender(eventlog.UserKey("c-1"), b)
	if err != nil {
		t.Fatal(err)
	}
	a.Apply(11, track("Order Completed", 20e9, nil, nil))
	got, err := Decode(a.Bytes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Dropped, want) || len(got.Events) != 6 {
		t.Errorf("after an append: dropped %+v, %d events", got.Dropped, len(got.Events))
	}
}
