package eventlog_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	"github.com/bullseye-ml/bullseye/pkg/eventlog"
)

// TestReadStream reads a stream's filtered messages in order, whole and up
// to a sequence, and an empty filter at once; it leaves no consumer.
func TestReadStream(t *testing.T) {
	js, _ := embeddedtest.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "R", Subjects: []string{"r.>"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1500 {
		if _, err := js.Publish(ctx, fmt.Sprintf("r.%d", i%3), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	read := func(subject string, until uint64) []uint64 {
		var seqs []uint64
		if err := eventlog.ReadStream(ctx, st, subject, until, func(m jetstream.Msg) error {
			md, _ := m.Metadata()
			seqs = append(seqs, md.Sequence.Stream)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return seqs
	}
	if got := read("r.>", 0); len(got) != 1500 || got[0] != 1 || got[1499] != 1500 {
		t.Errorf("whole stream: %d messages, %v…", len(got), got[:min(3, len(got))])
	}
	if got := read("r.1", 0); len(got) != 500 || got[0] != 2 || got[499] != 1499 {
		t.Errorf("r.1: %d messages", len(got))
	}
	if got := read("r.>", 700); len(got) != 700 || got[699] != 700 {
		t.Errorf("up to 700: %d messages", len(got))
	}
	if got := read("r.none", 0); len(got) != 0 {
		t.Errorf("no message matches, read %d", len(got))
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Consumers != 0 {
		t.Errorf("consumers left: %v %v", info.State.Consumers, err)
	}
}
