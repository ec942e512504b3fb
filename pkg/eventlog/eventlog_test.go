package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	"github.com/bullseye-ml/bullseye/pkg/eventlog"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestEncodeID(t *testing.T) {
	tests := []struct {
		id   string
		want string
	}{
		{"00001", "MDAwMDE"},
		{"a.b", "YS5i"},
		{"*", "Kg"},
		{">", "Pg"},
		{"with space", "d2l0aCBzcGFjZQ"},
		{"ünï", "w7xuw68"},
	}
	for _, tt := range tests {
		got, err := eventlog.EncodeID(tt.id)
		if err != nil || got != tt.want {
			t.Errorf("EncodeID(%q) = %q, %v; want %q", tt.id, got, err, tt.want)
		}
		if strings.ContainsAny(got, ".*> \t") {
			t.Errorf("EncodeID(%q) = %q is not a single subject token", tt.id, got)
		}
		back, err := eventlog.DecodeID(got)
		if err != nil || back != tt.id {
			t.Errorf("DecodeID(%q) = %q, %v; want %q", got, back, err, tt.id)
		}
	}
	if _, err := eventlog.EncodeID(""); !errors.Is(err, eventlog.ErrEmptyID) {
		t.Errorf("EncodeID(\"\"): %v, want ErrEmptyID", err)
	}
}

func TestPartitionIsStable(t *testing.T) {
	// These values are part of the stored layout: they must never change.
	tests := []struct {
		id   string
		want int
	}{
		{"00001", 12},
		{"customer-42", 14},
		{"a.b*c>d e", 10},
	}
	for _, tt := range tests {
		if got := eventlog.Partition(tt.id); got != tt.want {
			t.Errorf("Partition(%q) = %d, want %d", tt.id, got, tt.want)
		}
	}
}

func TestEventSubjectRoundTrip(t *testing.T) {
	for _, key := range []eventlog.Key{eventlog.UserKey("a.b*c>d e"), eventlog.AnonymousKey("cookie-1")} {
		subj, err := eventlog.EventSubject(key, eventlog.TypeIdentify)
		if err != nil {
			t.Fatal(err)
		}
		info, err := eventlog.ParseEventSubject(subj)
		if err != nil {
			t.Fatal(err)
		}
		if info.Key != key || info.Type != eventlog.TypeIdentify || info.Partition != eventlog.Partition(key.ID) {
			t.Errorf("ParseEventSubject(%q) = %+v", subj, info)
		}
		if want := fmt.Sprintf("bullseye.events.%d.", info.Partition); !strings.HasPrefix(subj, want) {
			t.Errorf("subject %q does not start with %q", subj, want)
		}
	}
	for _, bad := range []string{"bullseye.events.1.u.YQ", "bullseye.events.99.u.YQ.track", "bullseye.events.1.x.YQ.track", "other.1.u.YQ.track"} {
		if _, err := eventlog.ParseEventSubject(bad); err == nil {
			t.Errorf("ParseEventSubject(%q) succeeded", bad)
		}
	}
}

func TestPseudonymiser(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	p, err := eventlog.NewPseudonymiser(key, "")
	if err != nil {
		t.Fatal(err)
	}
	if a, b := p.Pseudonymise(" Ana@Example.com "), p.Pseudonymise("ana@example.com"); a != b || len(a) != 64 {
		t.Errorf("normalised pseudonyms differ or are not hex SHA-256: %q %q", a, b)
	}
	if p.Pseudonymise("x") == p.SubjectHash("x") {
		t.Error("a subject hash equals a value pseudonym")
	}
	q, _ := eventlog.NewPseudonymiser([]byte("another key of thirty-two bytes!!"), "")
	if p.SubjectHash("c1") == q.SubjectHash("c1") || p.KeyID() == q.KeyID() {
		t.Error("different keys give the same hashes or key ids")
	}
	for _, s := range []string{p.String(), fmt.Sprintf("%v %+v %#v %s", p, p, p, p)} {
		if strings.Contains(s, string(key)) || strings.Contains(s, fmt.Sprintf("%x", key)) {
			t.Errorf("formatting shows the key: %s", s)
		}
	}
	if _, err := eventlog.NewPseudonymiser([]byte("short"), ""); err == nil {
		t.Error("a short key was accepted")
	}
}

func TestEnsurePurgeAndErasureList(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js, _ := embeddedtest.JetStream(t)
	// Readers may create the layout first; the writer's settings then win.
	if err := eventlog.Ensure(ctx, js, eventlog.KeepExisting()); err != nil {
		t.Fatal(err)
	}
	if err := eventlog.Ensure(ctx, js, eventlog.WithDuplicates(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := eventlog.Ensure(ctx, js, eventlog.KeepExisting()); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, eventlog.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.Duplicates; got != time.Hour {
		t.Errorf("events stream Duplicates = %s, want 1h (KeepExisting must not reset it)", got)
	}
	if _, err := eventlog.StreamConfigs(eventlog.WithDeadLetterMaxAge(time.Minute)); err == nil {
		t.Error("a dead-letter age shorter than the de-duplication window was accepted")
	}

	a, _ := eventlog.EventSubject(eventlog.UserKey("a"), eventlog.TypeTrack)
	b, _ := eventlog.EventSubject(eventlog.UserKey("b"), eventlog.TypeTrack)
	for i, subj := range []string{a, a, b} {
		if _, err := js.Publish(ctx, subj, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := eventlog.Purge(ctx, js, eventlog.EventsStream, a)
	if err != nil || n != 2 {
		t.Fatalf("Purge = %d, %v; want 2", n, err)
	}
	if n, err := eventlog.Purge(ctx, js, eventlog.EventsStream, a); err != nil || n != 0 {
		t.Fatalf("second Purge = %d, %v; want 0", n, err)
	}
	if _, err := eventlog.Purge(ctx, js, eventlog.AuditStream, eventlog.AuditPrefix+".>"); err == nil {
		t.Error("the audit stream allowed a purge")
	}

	list, err := eventlog.WatchErasures(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	defer list.Stop()
	rec := eventlog.ErasureRecord{ErasureID: "er-1", EraseTime: time.Now().UTC(), SubjectHash: "h1", KeyID: "k"}
	if _, created, err := list.Create(ctx, rec); err != nil || !created {
		t.Fatalf("Create: created %v, %v", created, err)
	}
	rec2 := rec
	rec2.ErasureID = "er-2"
	got, created, err := list.Create(ctx, rec2)
	if err != nil || created || got.ErasureID != "er-1" {
		t.Fatalf("second Create = %+v, created %v, %v; want the first entry", got, created, err)
	}
	// A second watcher sees the entry.
	other, err := eventlog.WatchErasures(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Stop()
	if !other.Contains("h1") || other.Contains("h2") || other.Len() != 1 {
		t.Errorf("another watcher: Contains(h1) %v, Contains(h2) %v, Len %d", other.Contains("h1"), other.Contains("h2"), other.Len())
	}
}

func TestLoadPseudonymiser(t *testing.T) {
	key := "0123456789abcdef0123456789abcdef"
	file := t.TempDir() + "/key"
	if err := os.WriteFile(file, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(eventlog.KeyEnv, "")
	if _, err := eventlog.LoadPseudonymiser("", ""); !errors.Is(err, eventlog.ErrNoKey) {
		t.Errorf("no key: %v, want ErrNoKey", err)
	}
	fromFile, err := eventlog.LoadPseudonymiser(file, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(eventlog.KeyEnv, key+"\n")
	fromEnv, err := eventlog.LoadPseudonymiser("", "")
	if err != nil {
		t.Fatal(err)
	}
	if fromFile.KeyID() != fromEnv.KeyID() || fromFile.SubjectHash("c") != fromEnv.SubjectHash("c") {
		t.Error("a key from a file and the same key from the environment differ")
	}
}
