package record

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

// stringPaths sets every string field of m (nested messages included,
// maps and lists aside) to s and returns their paths.
func stringPaths(m protoreflect.Message, prefix, s string) []string {
	var out []string
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		path := prefix + string(fd.Name())
		switch {
		case fd.IsList() || fd.IsMap() || fd.ContainingOneof() != nil:
		case fd.Kind() == protoreflect.StringKind:
			m.Set(fd, protoreflect.ValueOfString(s))
			out = append(out, path)
		case fd.Kind() == protoreflect.MessageKind && fd.Message().FullName() != "google.protobuf.Timestamp":
			out = append(out, stringPaths(m.Mutable(fd).Message(), path+".", s)...)
		}
	}
	return out
}

// TestUTF8CoversEveryString sets each string field of each kind of item to
// invalid UTF-8 and wants a problem naming it: a field added to the API
// without a check would reach the encoder, which fails the whole batch.
func TestUTF8CoversEveryString(t *testing.T) {
	b := newBuilder(t)
	now := time.Now()
	for _, item := range []proto.Message{&ingestv1.Event{}, &ingestv1.TraitUpdate{}, &ingestv1.ConsentChange{}} {
		paths := stringPaths(item.ProtoReflect(), "", "bad\xff")
		var problems []*commonv1.Problem
		switch x := item.(type) {
		case *ingestv1.Event:
			x.Properties = map[string]*commonv1.Value{"p": {Kind: &commonv1.Value_StringValue{StringValue: "\xff"}}}
			paths = append(paths, "properties.p")
			_, problems = b.Event(x, now, "")
		case *ingestv1.TraitUpdate:
			x.Traits = map[string]*commonv1.Value{"\xfe": {}}
			paths = append(paths, "traits")
			_, problems = b.TraitUpdate(x, now, "")
		case *ingestv1.ConsentChange:
			_, problems = b.Consent(x, now, "")
		}
		var got []string
		for _, p := range problems {
			if p.GetReason() != ReasonInvalidUTF8 {
				t.Errorf("%T: problem %s %s, want only %s before any other check", item, p.GetField(), p.GetReason(), ReasonInvalidUTF8)
			}
			got = append(got, p.GetField())
		}
		slices.Sort(got)
		slices.Sort(paths)
		if !slices.Equal(got, paths) {
			t.Errorf("%T: problems name %v, want every string field %v", item, got, paths)
		}
	}
}

// TestDeadItemsAreValidText: the copy of a rejected item kept as a dead
// letter can be encoded, and DigestText tells apart items that differ only
// in their invalid bytes.
func TestDeadItemsAreValidText(t *testing.T) {
	b := newBuilder(t)
	ev := &ingestv1.Event{MessageId: "m\xff", Name: "n\xfe", Properties: map[string]*commonv1.Value{"k\xff": {Kind: &commonv1.Value_StringValue{StringValue: "v\xff"}}}, Context: &ingestv1.EventContext{Campaign: &ingestv1.CampaignContext{Term: "\xff"}}}
	dead, _ := b.DeadEvent(ev, time.Now())
	if _, err := proto.Marshal(dead); err != nil {
		t.Fatalf("the dead event cannot be encoded: %v", err)
	}
	if dead.GetProperties()["k\uFFFD"].GetStringValue() != "v\uFFFD" || dead.GetName() != "n\uFFFD" {
		t.Errorf("dead event %v", dead)
	}
	if ev.GetName() != "n\xfe" {
		t.Error("DeadEvent changed the item it was given")
	}
	other := proto.Clone(ev).(*ingestv1.Event)
	other.Name = "n\xff"
	digest := func(m proto.Message) string {
		data, err := proto.MarshalOptions{Deterministic: true}.Marshal(DigestText(m))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	if digest(ev) == digest(other) {
		t.Error("DigestText maps two different items to the same text")
	}
	if strings.Contains(digest(ev), "\xff") {
		t.Error("DigestText left invalid bytes")
	}
}
