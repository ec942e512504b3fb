package record

import (
	"slices"
	"strings"
	"testing"
	"time"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

func TestPersonalSpans(t *testing.T) {
	tests := []struct {
		text string
		want []string // the personal values found, in order
	}{
		{"call me at +44 20 7946 0958 or jo@example.com", []string{"+44 20 7946 0958", "jo@example.com"}},
		{"Write to Ana.Silva+promo@mail.example.pt.", []string{"Ana.Silva+promo@mail.example.pt"}},
		{"(555) 123-4567 after 6pm", []string{"(555) 123-4567"}},
		{"home: 555-123-4567; work: 06 12 34 56 78", []string{"555-123-4567", "06 12 34 56 78"}},
		{"+14155552671", []string{"+14155552671"}},
		{"020 7946 0958", []string{"020 7946 0958"}},
		// A number whose digits run on into an address's local part
		// ends where the address begins.
		{"06 12 34 56 78 0611@example.com", []string{"06 12 34 56 78", "0611@example.com"}},
		{"0 0 00000 011@80Y.AB", []string{"0 0 00000", "011@80Y.AB"}},
		{"ring (555) 123-4567(0611@example.com)", []string{"(555) 123-4567", "0611@example.com"}},
		// Not personal data.
		{"delivered 2024-01-02 at 10:00:00", nil},
		{"due 12/31/2024", nil},
		{"from 192.168.10.1", nil},
		{"paid 1 234 567 EUR", nil},
		{"order 1234567890", nil},
		{"sku-1234-5678 v1.2.3", nil},
		{"pi is 3.14159265", nil},
		{"user@tenant", nil},
		{"f4e1c2a90b3d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f", nil},
		{"", nil},
	}
	for _, tt := range tests {
		var got []string
		for _, sp := range personalSpans(tt.text) {
			got = append(got, tt.text[sp.start:sp.end])
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("personalSpans(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}

// TestScrubLeavesNothing: text scrubbed of its addresses and numbers holds
// none, even where a pseudonym with the text around it forms one (a number
// between "x@" and ".com" is pseudonymised with them, as one address).
func TestScrubLeavesNothing(t *testing.T) {
	b := newBuilder(t)
	ps := b.p.Pseudonymise
	tests := []struct{ text, want string }{
		{"0 0 00000 011@80Y.AB", ps("0 0 00000") + " " + ps("011@80Y.AB")},
		{"x@555 123 4567.com", ps("x@555 123 4567.com")},
		{"write x@(555) 123-4567.com today", "write " + ps("x@(555) 123-4567.com") + " today"},
		{"at jo@a.555 123 4567.org or 020 7946 0958", "at " + ps("jo@a.555 123 4567.org") + " or " + ps("020 7946 0958")},
		// Under the test key the number's pseudonym begins "ae": with
		// "x@a." it makes an address that ends inside the pseudonym.
		{"x@a.555 123 0000 and 1", ps("x@a.555 123 0000") + " and 1"},
		{"call me at +44 20 7946 0958 or jo@example.com", "call me at " + ps("+44 20 7946 0958") + " or " + ps("jo@example.com")},
	}
	for _, tt := range tests {
		got := b.scrubText(tt.text, personalSpans(tt.text))
		if got != tt.want {
			t.Errorf("scrubText(%q) = %q, want %q", tt.text, got, tt.want)
		}
		if left := personalSpans(got); len(left) > 0 {
			t.Errorf("scrubText(%q) = %q keeps %v", tt.text, got, left)
		}
	}
}

// TestFreeText pseudonymises the addresses and numbers inside a
// property's text by default, and rejects the event naming the field when
// configured so; dead letters never keep them in clear.
func TestFreeText(t *testing.T) {
	text := "call me at +44 20 7946 0958 or jo@example.com"
	ev := func() *ingestv1.Event {
		return &ingestv1.Event{MessageId: "m", UserId: "c-1", Name: "Note Left", Properties: map[string]*commonv1.Value{
			"note": {Kind: &commonv1.Value_StringValue{StringValue: text}},
			"plan": {Kind: &commonv1.Value_StringValue{StringValue: "pro"}},
		}}
	}
	b := newBuilder(t)
	rec, problems := b.Event(ev(), time.Now(), "")
	if len(problems) > 0 {
		t.Fatalf("problems %v", problems)
	}
	want := "call me at " + b.p.Pseudonymise("+44 20 7946 0958") + " or " + b.p.Pseudonymise("jo@example.com")
	if got := rec.Event.GetProperties()["note"].GetStringValue(); got != want {
		t.Errorf("note stored as %q, want %q", got, want)
	}
	if rec.Event.GetProperties()["plan"].GetStringValue() != "pro" || !slices.Equal(rec.Event.GetPseudonymisedFields(), []string{"properties.note"}) {
		t.Errorf("stored %v", rec.Event)
	}

	strict := newBuilder(t, WithFreeText(FreeTextReject))
	_, problems = strict.Event(ev(), time.Now(), "events[2]")
	var keys []string
	for _, p := range problems {
		keys = append(keys, p.GetField()+":"+p.GetReason())
		if strings.Contains(p.GetDescription(), "example.com") || strings.Contains(p.GetDescription(), "7946") {
			t.Errorf("problem %q repeats the personal data", p.GetDescription())
		}
	}
	if !slices.Equal(keys, []string{"events[2].properties.note:CONTAINS_EMAIL", "events[2].properties.note:CONTAINS_PHONE"}) {
		t.Errorf("problems %v", keys)
	}
	dead, paths := strict.DeadEvent(ev(), time.Now())
	if got := dead.GetProperties()["note"].GetStringValue(); got != want || !slices.Contains(paths, "properties.note") {
		t.Errorf("dead letter keeps %q (paths %v), want %q", got, paths, want)
	}
	if _, err := ParseFreeText("redact"); err == nil {
		t.Error("ParseFreeText accepted an unknown mode")
	}
}
