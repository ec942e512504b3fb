package materialize

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
	"github.com/bullseye-ml/bullseye/services/feature/internal/state"
)

// eventually polls cond until it holds, failing the test after a minute.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within a minute", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func allPartitions() []int {
	out := make([]int, eventlog.Partitions)
	for i := range out {
		out[i] = i
	}
	return out
}

// TestAppliesRecordsInEventTimeOrder: one replica owns every partition and applies each
// customer's events, trait updates and consents in event-time order (a late event goes before
// earlier-stored ones), anonymous visitors under their own keys.
func TestAppliesRecordsInEventTimeOrder(t *testing.T) {
	e := newEnv(t)
	m := e.materializer("r1")
	e.run(m)
	late := track("a", "first", t0.Add(time.Hour))
	e.publish(track("a", "second", t0.Add(2*time.Hour)), late, track("b", "only", t0))
	last := e.publish(
		identify("a", t0, map[string]*commonv1.Value{"tier": {Kind: &commonv1.Value_StringValue{StringValue: "gold"}}}),
		consent("a", t0, commonv1.ConsentState_CONSENT_STATE_GRANTED),
		&ingestv1.StoredEvent{Type: ingestv1.EventType_EVENT_TYPE_TRACK, MessageId: nextID(), AnonymousId: "visitor", Name: "anon", EventTime: profile.Timestamp(t0.UnixNano())},
	)
	e.caughtUp(last)
	a := e.profile("a")
	if got := names(a); !slices.Equal(got, []string{"first", "second"}) {
		t.Errorf("a's events %v, want [first second]", got)
	}
	if len(a.Traits) != 1 || a.Consent() != commonv1.ConsentState_CONSENT_STATE_GRANTED {
		t.Errorf("a has %d trait updates and consent %v, want 1 and GRANTED", len(a.Traits), a.Consent())
	}
	if got := names(e.profile("b")); !slices.Equal(got, []string{"only"}) {
		t.Errorf("b's events %v, want [only]", got)
	}
	key, _ := state.KeyOf(eventlog.AnonymousKey("visitor"))
	if data, _, err := e.store.FetchEncoded(e.ctx, key); err != nil || data == nil {
		t.Errorf("the visitor's profile: %v, %d bytes; want it stored under %s", err, len(data), key)
	}
	if got := m.Owned(); !slices.Equal(got, allPartitions()) {
		t.Errorf("one replica owns %v, want every partition", got)
	}
	if ok, n, err := NewProgress(e.js).CaughtUp(e.ctx, last); !ok || n != eventlog.Partitions || err != nil {
		t.Errorf("CaughtUp(%d) = %v, %d, %v; want true for every partition", last, ok, n, err)
	}
}

// TestARecreatedConsumerAppliesNothingTwice: when a partition's consumer is lost and made
// again, it delivers the partition from its start; every record already applied is ignored
// by the profile's last sequence, and new records still come.
func TestARecreatedConsumerAppliesNothingTwice(t *testing.T) {
	e := newEnv(t)
	e.run(e.materializer("r1"))
	var records []*ingestv1.StoredEvent
	for i := range 20 {
		records = append(records, track("a", "e"+strconv.Itoa(i), t0.Add(time.Duration(i)*time.Minute)))
	}
	e.caughtUp(e.publish(records...))
	before := e.profile("a")
	events, err := e.js.Stream(e.ctx, eventlog.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := events.DeleteConsumer(e.ctx, ConsumerName(eventlog.Partition("a"))); err != nil {
		t.Fatal(err)
	}
	e.caughtUp(e.publish(track("a", "new", t0.Add(time.Hour))))
	after := e.profile("a")
	if got, want := names(after), append(names(before), "new"); !slices.Equal(got, want) {
		t.Errorf("after the consumer was made again: %v, want %v", got, want)
	}
}

// TestErasureWithinABatch: an erasure record deletes the customer's profile and its history,
// reports ErasureApplied with the keys deleted and is itself deleted from the events stream;
// records before it in the batch are gone with the profile, those after it start a new one,
// and other customers' records are untouched. An erasure of a customer without a profile
// deletes no key.
func TestErasureWithinABatch(t *testing.T) {
	e := newEnv(t)
	e.publish(track("a", "before", t0), identify("a", t0, map[string]*commonv1.Value{"x": {Kind: &commonv1.Value_IntValue{IntValue: 1}}}), track("b", "kept", t0))
	erased := e.publish(erasure("a", "er-1", "hash-a"))
	ghost := e.publish(erasure("ghost", "er-2", "hash-ghost"))
	last := e.publish(track("a", "after", t0.Add(time.Hour)))
	e.run(e.materializer("r1"))
	e.caughtUp(last)

	a := e.profile("a")
	if got := names(a); !slices.Equal(got, []string{"after"}) || len(a.Traits) != 0 {
		t.Errorf("a after the erasure: events %v and %d trait updates, want [after] and none", got, len(a.Traits))
	}
	if got := names(e.profile("b")); !slices.Equal(got, []string{"kept"}) {
		t.Errorf("b: %v, want [kept]", got)
	}
	stream, err := e.js.Stream(e.ctx, state.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := state.KeyOf(eventlog.UserKey("a"))
	info, err := stream.Info(e.ctx, jetstream.WithSubjectFilter(state.Subject(key)))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[state.Subject(key)]; n != 1 {
		t.Errorf("the bucket's stream holds %d messages of a's key, want only the profile written after the erasure", n)
	}
	events, err := e.js.Stream(e.ctx, eventlog.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id   string
		seq  uint64
		keys int64
	}{{"er-1", erased, 1}, {"er-2", ghost, 0}} {
		if _, err := events.GetMsg(e.ctx, c.seq); !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Errorf("erasure record %d: %v, want it deleted", c.seq, err)
		}
		audit, err := e.js.Stream(e.ctx, eventlog.AuditStream)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := audit.GetLastMsgForSubject(e.ctx, eventlog.AuditAppliedSubject(c.id))
		if err != nil {
			t.Errorf("no ErasureApplied for %s: %v", c.id, err)
			continue
		}
		var applied eventlog.ErasureApplied
		if err := json.Unmarshal(msg.Data, &applied); err != nil {
			t.Fatal(err)
		}
		if applied.EventSequence != c.seq || applied.KeysDeleted != c.keys || applied.Instance != "r1" {
			t.Errorf("%s: applied %+v, want sequence %d, %d keys deleted, instance r1", c.id, applied, c.seq, c.keys)
		}
	}
}

// TestRecordsOfErasedCustomersAreSkipped: with the erasure list and pseudonymiser, records of
// a customer on the list are not applied.
func TestRecordsOfErasedCustomersAreSkipped(t *testing.T) {
	e := newEnv(t)
	list, err := eventlog.WatchErasures(e.ctx, e.js)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(list.Stop)
	ps, err := eventlog.NewPseudonymiser([]byte("materialize-test-key-0123456789abcdef"), "")
	if err != nil {
		t.Fatal(err)
	}
	list.Add(ps.SubjectHash("gone"))
	e.run(e.materializer("r1", WithErasures(list, ps)))
	e.caughtUp(e.publish(track("gone", "late", t0), track("here", "kept", t0)))
	if p := e.profile("gone"); p != nil {
		t.Errorf("an erased customer's record was applied: %v", names(p))
	}
	if got := names(e.profile("here")); !slices.Equal(got, []string{"kept"}) {
		t.Errorf("another customer: %v, want [kept]", got)
	}
}

// TestRetentionDropsTheOldestEvents: past MaxProfileBytes a profile keeps its newest events
// and counts the dropped ones by name, with the latest time among them.
func TestRetentionDropsTheOldestEvents(t *testing.T) {
	e := newEnv(t)
	const limit, n = 4096, 300
	var records []*ingestv1.StoredEvent
	for i := range n {
		name := "even"
		if i%2 == 1 {
			name = "odd"
		}
		records = append(records, track("a", name, t0.Add(time.Duration(i)*time.Second)))
	}
	e.run(e.materializer("r1", WithMaxProfileBytes(limit)))
	e.caughtUp(e.publish(records...))
	a := e.profile("a")
	if size := len(profile.Encode(nil, a)); size > limit {
		t.Errorf("the profile is %d bytes, over the retention of %d", size, limit)
	}
	kept := len(a.Events)
	if kept == 0 || kept == n || a.DroppedEvents() != int64(n-kept) {
		t.Fatalf("%d events kept and %d counted as dropped, want some of each adding up to %d", kept, a.DroppedEvents(), n)
	}
	if want := t0.Add((n - 1) * time.Second).UnixNano(); a.Events[kept-1].Time != want {
		t.Errorf("the newest event kept is at %d, want the last one published (%d)", a.Events[kept-1].Time, want)
	}
	for _, d := range a.Dropped {
		if d.Latest >= a.Events[0].Time || (d.Name != "even" && d.Name != "odd") {
			t.Errorf("dropped %+v: want even or odd events all older than the first kept (%d)", d, a.Events[0].Time)
		}
	}
}

// TestUndecodableRecordsAreSkipped: a record that is not a StoredEvent is skipped and
// acknowledged with the rest; the records around it are applied.
func TestUndecodableRecordsAreSkipped(t *testing.T) {
	e := newEnv(t)
	e.publish(track("a", "before", t0))
	subject, err := eventlog.EventSubject(eventlog.UserKey("a"), eventlog.TypeTrack)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.Publish(e.ctx, subject, []byte{0xff, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	last := e.publish(track("a", "after", t0.Add(time.Second)))
	e.run(e.materializer("r1"))
	e.caughtUp(last)
	if got := names(e.profile("a")); !slices.Equal(got, []string{"before", "after"}) {
		t.Errorf("events %v, want [before after]", got)
	}
}

// TestFlushRedoesALostCompareAndSet: a profile written since the batch read it (by a
// previous owner still writing) makes the batch's write lose; the batch reads the profile
// again and applies its records to it, keeping what the other writer stored.
func TestFlushRedoesALostCompareAndSet(t *testing.T) {
	e := newEnv(t)
	m := e.materializer("r1")
	sk := eventlog.UserKey("a")
	key, _ := state.KeyOf(sk)
	encode := func(records ...*ingestv1.StoredEvent) []byte {
		p := profile.New(sk)
		for i, r := range records {
			p.Apply(uint64(i+1), r)
		}
		return profile.Encode(nil, p)
	}
	rev, err := e.store.KV().Put(e.ctx, key, encode(track("a", "read", t0)))
	if err != nil {
		t.Fatal(err)
	}
	data, _, err := e.store.FetchEncoded(e.ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	// The other writer stores records 1 and 2 after the batch read record 1's version.
	if _, err := e.store.KV().Put(e.ctx, key, encode(track("a", "read", t0), track("a", "other", t0.Add(time.Second)))); err != nil {
		t.Fatal(err)
	}
	g := &group{key: key, sk: sk, rev: rev}
	if g.app, err = profile.NewAppender(sk, data); err != nil {
		t.Fatal(err)
	}
	it := item{seq: 3, key: key, sk: sk, ev: track("a", "batch", t0.Add(2*time.Second))}
	g.items = append(g.items, it)
	g.dirty = g.app.Apply(it.seq, it.ev)
	r := &runner{m: m, part: eventlog.Partition("a"), log: quiet()}
	if err := r.flush(e.ctx, []*group{g}); err != nil {
		t.Fatal(err)
	}
	if got := names(e.profile("a")); !slices.Equal(got, []string{"read", "other", "batch"}) {
		t.Errorf("stored %v, want the other writer's events and the batch's: [read other batch]", got)
	}
}

// TestProgress: nothing stored is caught up; a record no consumer applied is not, and Wait
// for it fails with ErrBehind when its context ends.
func TestProgress(t *testing.T) {
	e := newEnv(t)
	p := NewProgress(e.js)
	if seq, err := p.LastSeq(e.ctx); seq != 0 || err != nil {
		t.Errorf("LastSeq of an empty stream = %d, %v", seq, err)
	}
	if ok, n, err := p.CaughtUp(e.ctx, 0); !ok || n != eventlog.Partitions || err != nil {
		t.Errorf("CaughtUp(0) = %v, %d, %v; want true for every partition", ok, n, err)
	}
	seq := e.publish(track("a", "x", t0))
	if got, err := p.LastSeq(e.ctx); got != seq || err != nil {
		t.Errorf("LastSeq = %d, %v; want %d", got, err, seq)
	}
	if ok, n, err := p.CaughtUp(e.ctx, seq); ok || n != 0 || err != nil {
		t.Errorf("CaughtUp without consumers = %v, %d, %v; want false, 0", ok, n, err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 300*time.Millisecond)
	defer cancel()
	if err := p.Wait(ctx, seq); !errors.Is(err, ErrBehind) {
		t.Errorf("Wait without consumers = %v, want ErrBehind", err)
	}
}

// TestNewRejects: an instance name that is empty or holds '/', or an event log without its
// events stream.
func TestNewRejects(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"", "a/b"} {
		if _, err := New(e.ctx, e.cli, e.js, e.store, name); err == nil {
			t.Errorf("instance %q accepted", name)
		}
	}
	if err := e.js.DeleteStream(e.ctx, eventlog.EventsStream); err != nil {
		t.Fatal(err)
	}
	if _, err := New(e.ctx, e.cli, e.js, e.store, "r1"); err == nil || !strings.Contains(err.Error(), eventlog.EventsStream) {
		t.Errorf("without the events stream: %v, want an error naming it", err)
	}
}

// TestReplicasSharePartitions: two replicas split the partitions evenly and without overlap;
// one that stops gives up its partitions and membership before Run returns, and the other
// takes them all.
func TestReplicasSharePartitions(t *testing.T) {
	e := newEnv(t)
	r1, r2 := e.materializer("r1", WithLeaseTTL(time.Minute)), e.materializer("r2", WithLeaseTTL(time.Minute))
	e.run(r1)
	eventually(t, "r1 owning every partition", func() bool { return len(r1.Owned()) == eventlog.Partitions })
	stop2 := e.run(r2)
	eventually(t, "an even split", func() bool {
		return len(r1.Owned()) == eventlog.Partitions/2 && len(r2.Owned()) == eventlog.Partitions/2
	})
	if both := slices.Sorted(slices.Values(append(r1.Owned(), r2.Owned()...))); !reflect.DeepEqual(both, allPartitions()) {
		t.Errorf("r1 %v and r2 %v, want every partition once", r1.Owned(), r2.Owned())
	}
	stop2()
	resp, err := e.cli.Get(e.ctx, "bullseye/feature/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if string(kv.Value) == "r2" {
			t.Errorf("after r2 stopped, etcd still has %s = r2", kv.Key)
		}
	}
	eventually(t, "r1 taking r2's partitions", func() bool { return len(r1.Owned()) == eventlog.Partitions })
}

// TestPreferenceDiffersByInstance: replicas rank partitions differently, so that they prefer
// different ones.
func TestPreferenceDiffersByInstance(t *testing.T) {
	rank := func(instance string) []int {
		ps := allPartitions()
		slices.SortFunc(ps, func(a, b int) int {
			pa, pb := preference(instance, a), preference(instance, b)
			if pa < pb {
				return -1
			}
			return 1
		})
		return ps
	}
	if reflect.DeepEqual(rank("r1"), rank("r2")) {
		t.Errorf("r1 and r2 rank the partitions alike: %v", rank("r1"))
	}
	if !reflect.DeepEqual(rank("r1"), rank("r1")) {
		t.Error("one instance's ranking changed")
	}
}
