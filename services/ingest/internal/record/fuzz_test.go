package record

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

// FuzzBuildEncodes checks, for any strings in an event, that the Builder
// either accepts it as a record that encodes, or rejects it with a dead
// letter copy that encodes (no string that is not UTF-8 reaches the
// encoder, which would fail the whole batch), and that no accepted record
// keeps an e-mail address or a phone number in its text.
func FuzzBuildEncodes(f *testing.F) {
	f.Add("m-1", "c-1", "Order Completed", "note", "call me at +44 20 7946 0958 or jo@example.com")
	f.Add("m\xff", "c-1", "n", "k\xfe", "v\xff")
	f.Add("m-1", "c\t1", "Page\nViewed", "", "(555) 123-4567")
	p, err := eventlog.NewPseudonymiser([]byte("test key test key test key test key"), "ktest")
	if err != nil {
		f.Fatal(err)
	}
	b := New(p)
	f.Fuzz(func(t *testing.T, msgID, userID, name, key, text string) {
		ev := &ingestv1.Event{MessageId: msgID, UserId: userID, Name: name,
			Properties: map[string]*commonv1.Value{key: {Kind: &commonv1.Value_StringValue{StringValue: text}}}}
		rec, problems := b.Event(ev, time.Now(), "events[0]")
		if len(problems) == 0 {
			if _, err := proto.Marshal(rec.Event); err != nil {
				t.Fatalf("an accepted record does not encode: %v", err)
			}
			for _, v := range rec.Event.GetProperties() {
				if s := v.GetStringValue(); len(personalSpans(s)) > 0 {
					t.Fatalf("an accepted record keeps personal data in %q", s)
				}
			}
			return
		}
		dead, _ := b.DeadEvent(ev, time.Now())
		if _, err := proto.Marshal(&ingestv1.DeadLetter{Problems: problems, Item: &ingestv1.DeadLetter_Event{Event: dead}}); err != nil {
			t.Fatalf("the dead letter does not encode: %v", err)
		}
	})
}

// FuzzPersonalSpans checks that the spans found in any text are in order,
// apart and within it, and that the text scrubbed of them holds none.
func FuzzPersonalSpans(f *testing.F) {
	f.Add("call me at +44 20 7946 0958 or jo@example.com")
	f.Add("(555) 123-4567 a@b.co 2024-01-02")
	f.Add("x@555 123 4567.com")
	p, err := eventlog.NewPseudonymiser([]byte("test key test key test key test key"), "ktest")
	if err != nil {
		f.Fatal(err)
	}
	b := New(p)
	f.Fuzz(func(t *testing.T, s string) {
		last := 0
		spans := personalSpans(s)
		for _, sp := range spans {
			if sp.start < last || sp.end <= sp.start || sp.end > len(s) {
				t.Fatalf("span %+v after %d in %d bytes", sp, last, len(s))
			}
			last = sp.end
		}
		if len(spans) == 0 {
			return
		}
		if out := b.scrubText(s, spans); len(personalSpans(out)) > 0 {
			t.Fatalf("scrubbed text keeps personal data in %q", out)
		}
	})
}
