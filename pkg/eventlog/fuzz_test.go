package eventlog_test

import (
	"strings"
	"testing"
	"unicode"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	"github.com/bullseye-ml/bullseye/pkg/fault"
)

// FuzzEventSubject checks, for any id, that an events subject is refused
// (empty or past fault.MaxIDBytes) or is one valid NATS subject of the
// layout's shape, far below the server's control line, that reads back as
// the same key and type.
func FuzzEventSubject(f *testing.F) {
	for _, s := range []string{"c-1", "a.b *>é", "", "\xff\x00", strings.Repeat("x", fault.MaxIDBytes), strings.Repeat("y", fault.MaxIDBytes+1)} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, id string, anonymous bool) {
		key := eventlog.UserKey(id)
		if anonymous {
			key = eventlog.AnonymousKey(id)
		}
		subj, err := eventlog.EventSubject(key, eventlog.TypeTrack)
		if id == "" || len(id) > fault.MaxIDBytes {
			if err == nil {
				t.Fatalf("an id of %d bytes makes subject %q", len(id), subj)
			}
			return
		}
		if err != nil {
			t.Fatalf("EventSubject(%q): %v", id, err)
		}
		if len(subj) > 512 {
			t.Fatalf("subject of %d bytes", len(subj))
		}
		for _, tok := range strings.Split(subj, ".") {
			if tok == "" || tok == "*" || tok == ">" || strings.IndexFunc(tok, unicode.IsSpace) >= 0 {
				t.Fatalf("subject %q has an invalid token %q", subj, tok)
			}
		}
		info, err := eventlog.ParseEventSubject(subj)
		if err != nil || info.Key != key || info.Type != eventlog.TypeTrack || info.Partition != eventlog.Partition(id) {
			t.Fatalf("ParseEventSubject(%q) = %+v, %v; want %+v", subj, info, err, key)
		}
	})
}
