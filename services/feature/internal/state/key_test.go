package state

import (
	"errors"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
)

// TestKeyOf checks that bucket keys are the kind and the id's subject token,
// as the materialiser names them, whether made alone or appended in a run.
func TestKeyOf(t *testing.T) {
	for _, k := range []eventlog.Key{eventlog.UserKey("c-1"), eventlog.AnonymousKey("a.b *>é"), eventlog.UserKey("x")} {
		tok, err := eventlog.EncodeID(k.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := string(k.Kind) + "." + tok
		got, err := KeyOf(k)
		if err != nil || got != want {
			t.Errorf("KeyOf(%+v) = %q, %v; want %q", k, got, err, want)
		}
		run, err := AppendKey([]byte("prefix|"), k)
		if err != nil || string(run) != "prefix|"+want {
			t.Errorf("AppendKey(prefix, %+v) = %q, %v; want %q", k, run, err, "prefix|"+want)
		}
	}
	if _, err := KeyOf(eventlog.UserKey("")); !errors.Is(err, eventlog.ErrEmptyID) {
		t.Errorf("KeyOf of an empty id: %v, want ErrEmptyID", err)
	}
}
