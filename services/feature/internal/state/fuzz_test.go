package state

import (
	"strings"
	"testing"
	"unicode"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	"github.com/bullseye-ml/bullseye/pkg/fault"
)

// FuzzKeyOf checks, for any id, that a bucket key is refused (empty or past
// fault.MaxIDBytes) or makes one valid, short subject of the bucket whose
// token decodes back to the id, and that AppendKey agrees with KeyOf.
func FuzzKeyOf(f *testing.F) {
	for _, s := range []string{"c-1", "a.b *>é", "", "\xff", strings.Repeat("x", fault.MaxIDBytes+1)} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, id string, user bool) {
		k := eventlog.AnonymousKey(id)
		if user {
			k = eventlog.UserKey(id)
		}
		key, err := KeyOf(k)
		run, err2 := AppendKey([]byte("x|"), k)
		if (err == nil) != (err2 == nil) || (err == nil && string(run) != "x|"+key) {
			t.Fatalf("KeyOf %q, %v; AppendKey %q, %v", key, err, run, err2)
		}
		if id == "" || len(id) > fault.MaxIDBytes {
			if err == nil {
				t.Fatalf("an id of %d bytes makes key %q", len(id), key)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		subj := Subject(key)
		if len(subj) > 512 {
			t.Fatalf("subject of %d bytes", len(subj))
		}
		toks := strings.Split(subj, ".")
		for _, tok := range toks {
			if tok == "" || tok == "*" || tok == ">" || strings.IndexFunc(tok, unicode.IsSpace) >= 0 {
				t.Fatalf("subject %q has an invalid token %q", subj, tok)
			}
		}
		if got, err := eventlog.DecodeID(toks[len(toks)-1]); err != nil || got != id {
			t.Fatalf("the key's token decodes to %q, %v; want %q", got, err, id)
		}
	})
}
