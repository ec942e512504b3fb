package profile

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

// TestAppenderEqualsApply applies random streams of records (events, trait
// updates and consents at random, often equal, times; redeliveries; flushes
// at random points, more than MaxAppends of them) both to a decoded profile
// and, batch by batch, to its encoding with an Appender. Every batch's
// encoding must decode to exactly the profile and keep its records in
// (time, seq) order, and each Apply must agree.
func TestAppenderEqualsApply(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 2))
	for c := 0; c < 200; c++ {
		key := eventlog.UserKey("c-1")
		if c%7 == 0 {
			key = eventlog.AnonymousKey("a.1")
		}
		want := New(key)
		var stored []byte
		var seq uint64
		for batch := 0; batch < 1+rng.IntN(3*MaxAppends); batch++ {
			a, err := NewAppender(key, stored)
			if err != nil {
				t.Fatal(err)
			}
			if a.LastSeq() != want.LastSeq {
				t.Fatalf("customer %d batch %d: appender starts at sequence %d, want %d", c, batch, a.LastSeq(), want.LastSeq)
			}
			for range 1 + rng.IntN(5) {
				s := seq + 1
				if seq > 0 && rng.IntN(5) == 0 {
					s = 1 + rng.Uint64N(seq) // a redelivery
				}
				seq = max(seq, s)
				r := randomRecord(rng)
				if got, w := a.Apply(s, r), want.Apply(s, r); got != w {
					t.Fatalf("customer %d batch %d: Apply(%d) = %v, profile says %v", c, batch, s, got, w)
				}
			}
			stored = a.Bytes()
			got, err := Decode(stored, nil)
			if err != nil {
				t.Fatalf("customer %d batch %d: %v", c, batch, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("customer %d batch %d: appended encoding decodes to\n%+v\nwant\n%+v", c, batch, got, want)
			}
			if !inOrder(stored) {
				t.Fatalf("customer %d batch %d: the encoding's records are out of (time, seq) order", c, batch)
			}
		}
	}
}

// TestAppenderRewritesWhole checks that an encoding appended to MaxAppends
// times is written whole again: as long as a fresh encoding.
func TestAppenderRewritesWhole(t *testing.T) {
	key := eventlog.UserKey("c")
	var stored []byte
	want := New(key)
	for i := 1; i <= MaxAppends+2; i++ {
		a, err := NewAppender(key, stored)
		if err != nil {
			t.Fatal(err)
		}
		r := track("e", int64(i), nil, nil)
		a.Apply(uint64(i), r)
		want.Apply(uint64(i), r)
		stored = a.Bytes()
	}
	if fresh := Encode(nil, want); len(stored) > len(fresh)+2*MaxAppends {
		t.Errorf("after %d appends the encoding is %d bytes, a fresh one %d", MaxAppends+2, len(stored), len(fresh))
	}
}

// inOrder reports whether each kind of record of an encoding comes in
// (time, seq) order, as a reader that does not sort expects.
func inOrder(b []byte) bool {
	var last [3]at
	var has [3]bool
	ok := true
	_ = walk(b, func(num protowire.Number, _ protowire.Type, _ uint64, data []byte) error {
		if num < 5 || num > 7 {
			return nil
		}
		r, err := placeOf(data)
		if err != nil {
			ok = false
		}
		k := num - 5
		if has[k] && !after(r.time, r.seq, last[k].time, last[k].seq) {
			ok = false
		}
		last[k], has[k] = r, true
		return nil
	})
	return ok
}

func randomRecord(rng *rand.Rand) *ingestv1.StoredEvent {
	at := int64(rng.IntN(6)) * 1e9 // few distinct times: ties by sequence
	v := float64(rng.IntN(100)) / 4
	props := map[string]*commonv1.Value{"k": {Kind: &commonv1.Value_StringValue{StringValue: "v"}}}
	switch rng.IntN(4) {
	case 0:
		return &ingestv1.StoredEvent{Type: ingestv1.EventType_EVENT_TYPE_IDENTIFY, MessageId: "t", EventTime: Timestamp(at),
			Traits: map[string]*commonv1.Value{"plan": {Kind: &commonv1.Value_IntValue{IntValue: int64(rng.IntN(3))}}}}
	case 1:
		return &ingestv1.StoredEvent{Type: ingestv1.EventType_EVENT_TYPE_CONSENT, MessageId: "c", EventTime: Timestamp(at),
			ConsentState: commonv1.ConsentState(1 + rng.IntN(3))}
	default:
		if rng.IntN(2) == 0 {
			props = nil
		}
		return track([]string{"Order Completed", "Product Viewed"}[rng.IntN(2)], at, &v, props)
	}
}
