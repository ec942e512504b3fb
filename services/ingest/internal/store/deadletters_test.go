package store

import (
	"errors"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

var received = time.Date(2024, 7, 1, 12, 0, 0, 0, time.UTC)

// letter is a dead letter of customer user (empty: unidentified), received minutes after
// received, for reason, from source and import imp.
type letter struct {
	user    string
	minutes int
	reason  string
	source  ingestv1.EventSource
	imp     string
	pad     int // bytes of padding in the item, to make it large
}

// storeLetters publishes the letters in order and returns their ids.
func storeLetters(t *testing.T, s *Store, letters ...letter) []string {
	t.Helper()
	ctx := testContext(t)
	msgs := make([]Message, len(letters))
	for i, l := range letters {
		dl := &ingestv1.DeadLetter{
			Type:        ingestv1.EventType_EVENT_TYPE_TRACK,
			Source:      l.source,
			ReceiveTime: timestamppb.New(received.Add(time.Duration(l.minutes) * time.Minute)),
			Problems:    []*commonv1.Problem{{Field: "name", Reason: l.reason}},
			ImportId:    l.imp,
			Item:        &ingestv1.DeadLetter_Event{Event: &ingestv1.Event{Name: string(make([]byte, l.pad))}},
		}
		data, err := proto.Marshal(dl)
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = Message{Subject: DeadLetterSubject(eventlog.UserKey(l.user), l.user != ""), Data: data}
	}
	acks, err := s.Publish(ctx, msgs).Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(acks))
	for i, a := range acks {
		ids[i] = DeadLetterID(a.Seq)
	}
	return ids
}

// list pages through every letter matching f, pages of limit, and returns their ids and the
// number of pages.
func list(t *testing.T, s *Store, f DeadLetterFilter, limit, maxBytes int) (ids []string, pages int) {
	t.Helper()
	ctx := testContext(t)
	var before uint64
	for {
		letters, next, err := s.ListDeadLetters(ctx, f, before, limit, maxBytes)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(letters) > limit {
			t.Fatalf("a page of %d letters, limit %d", len(letters), limit)
		}
		for _, dl := range letters {
			ids = append(ids, dl.GetId())
		}
		if next == 0 {
			return ids, pages
		}
		if before != 0 && next >= before {
			t.Fatalf("next %d does not move on from %d", next, before)
		}
		before = next
		if pages > 10000 {
			t.Fatal("paging does not end")
		}
	}
}

func reversed(ids []string) []string {
	out := slices.Clone(ids)
	slices.Reverse(out)
	return out
}

// TestListDeadLettersPagesNewestFirst: pages of any size give every letter once, newest
// first; a page past the first letter is empty; a page holds at least one letter however
// large, and no more than maxBytes otherwise.
func TestListDeadLettersPagesNewestFirst(t *testing.T) {
	s, _ := open(t)
	ctx := testContext(t)
	if letters, next, err := s.ListDeadLetters(ctx, DeadLetterFilter{}, 0, 10, 1<<20); len(letters) != 0 || next != 0 || err != nil {
		t.Errorf("an empty stream: %d letters, next %d, %v", len(letters), next, err)
	}
	ids := storeLetters(t, s,
		letter{user: "a", reason: "BAD_NAME"}, letter{user: "b", reason: "BAD_NAME"}, letter{reason: "NO_ID"},
		letter{user: "a", reason: "BAD_TIME"}, letter{user: "c", reason: "BAD_NAME"})
	for _, limit := range []int{1, 2, 5, 100} {
		got, pages := list(t, s, DeadLetterFilter{}, limit, 1<<20)
		if want := reversed(ids); !slices.Equal(got, want) {
			t.Errorf("pages of %d: %v, want %v", limit, got, want)
		}
		if want := (len(ids) + limit - 1) / limit; pages != want {
			t.Errorf("pages of %d: %d pages, want %d", limit, pages, want)
		}
	}
	first, _ := ParseDeadLetterID(ids[0])
	if letters, next, err := s.ListDeadLetters(ctx, DeadLetterFilter{}, first, 10, 1<<20); len(letters) != 0 || next != 0 || err != nil {
		t.Errorf("before the first letter: %d letters, next %d, %v", len(letters), next, err)
	}

	big := storeLetters(t, s, letter{user: "a", reason: "BIG", pad: 4000}, letter{user: "a", reason: "BIG", pad: 4000})
	letters, next, err := s.ListDeadLetters(ctx, DeadLetterFilter{Reasons: []string{"BIG"}}, 0, 10, 100)
	if err != nil || len(letters) != 1 || letters[0].GetId() != big[1] || next == 0 {
		t.Fatalf("a letter larger than maxBytes: %d letters, next %d, %v; want the newest alone and a next page", len(letters), next, err)
	}
	if got, _ := list(t, s, DeadLetterFilter{Reasons: []string{"BIG"}}, 10, 5000); !slices.Equal(got, reversed(big)) {
		t.Errorf("paging by bytes: %v, want %v", got, reversed(big))
	}
}

// TestListDeadLettersFilters: by reason (any of several), receive time in [Start, End),
// import, source, replay mark and subject; a deleted letter is skipped.
func TestListDeadLettersFilters(t *testing.T) {
	s, _ := open(t)
	ctx := testContext(t)
	imp, track := ingestv1.EventSource_EVENT_SOURCE_IMPORT, ingestv1.EventSource_EVENT_SOURCE_TRACK
	ids := storeLetters(t, s,
		letter{user: "a", minutes: 0, reason: "R1", source: track},
		letter{user: "b", minutes: 10, reason: "R2", source: imp, imp: "file-1"},
		letter{user: "a", minutes: 20, reason: "R3", source: imp, imp: "file-2"},
		letter{user: "c", minutes: 30, reason: "R1", source: track},
		letter{user: "a", minutes: 40, reason: "R2", source: track},
	)
	if err := s.MarkReplayed(ctx, ids[3], received.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	aSubject, _ := eventlog.DeadLetterSubject(eventlog.UserKey("a"))
	pick := func(is ...int) []string {
		var out []string
		for _, i := range slices.Backward(is) {
			out = append(out, ids[i])
		}
		return out
	}
	for _, c := range []struct {
		name string
		f    DeadLetterFilter
		want []string
	}{
		{"not replayed", DeadLetterFilter{}, pick(0, 1, 2, 4)},
		{"with replayed", DeadLetterFilter{IncludeReplayed: true}, pick(0, 1, 2, 3, 4)},
		{"reasons", DeadLetterFilter{Reasons: []string{"R2", "R3"}}, pick(1, 2, 4)},
		{"time", DeadLetterFilter{Start: received.Add(10 * time.Minute), End: received.Add(40 * time.Minute)}, pick(1, 2)},
		{"start only", DeadLetterFilter{Start: received.Add(40 * time.Minute)}, pick(4)},
		{"import", DeadLetterFilter{ImportID: "file-2"}, pick(2)},
		{"source", DeadLetterFilter{Source: imp}, pick(1, 2)},
		{"subject", DeadLetterFilter{Subject: aSubject}, pick(0, 2, 4)},
		{"subject and reason", DeadLetterFilter{Subject: aSubject, Reasons: []string{"R2"}}, pick(4)},
		{"unknown subject", DeadLetterFilter{Subject: DeadLetterSubject(eventlog.UserKey("nobody"), true)}, nil},
	} {
		for _, limit := range []int{1, 10} {
			if got, _ := list(t, s, c.f, limit, 1<<20); !slices.Equal(got, c.want) {
				t.Errorf("%s, pages of %d: %v, want %v", c.name, limit, got, c.want)
			}
		}
	}
	seq, _ := ParseDeadLetterID(ids[4])
	if err := s.deadLetters.DeleteMsg(ctx, seq); err != nil {
		t.Fatal(err)
	}
	if got, _ := list(t, s, DeadLetterFilter{}, 2, 1<<20); !slices.Equal(got, pick(0, 1, 2)) {
		t.Errorf("after deleting the newest: %v, want %v", got, pick(0, 1, 2))
	}
}

// TestDeadLetterByID: a stored letter comes back with its id and replay mark; a malformed,
// unknown or deleted id is ErrNotFound.
func TestDeadLetterByID(t *testing.T) {
	s, _ := open(t)
	ctx := testContext(t)
	ids := storeLetters(t, s, letter{user: "a", reason: "R1"}, letter{user: "a", reason: "R2"})
	at := received.Add(time.Hour)
	if err := s.MarkReplayed(ctx, ids[0], at); err != nil {
		t.Fatal(err)
	}
	dl, err := s.DeadLetter(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if dl.GetId() != ids[0] || !dl.GetReplayed() || !dl.GetReplayTime().AsTime().Equal(at) || dl.GetProblems()[0].GetReason() != "R1" {
		t.Errorf("letter %v, want %s replayed at %v", dl, ids[0], at)
	}
	if dl, err := s.DeadLetter(ctx, ids[1]); err != nil || dl.GetReplayed() {
		t.Errorf("the other letter: %v, %v; want it not replayed", dl, err)
	}
	seq, _ := ParseDeadLetterID(ids[1])
	if err := s.deadLetters.DeleteMsg(ctx, seq); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"nope", "dl-0", DeadLetterID(99), ids[1]} {
		if _, err := s.DeadLetter(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("DeadLetter(%q) = %v, want ErrNotFound", id, err)
		}
	}
}

// TestListDeadLettersScansBoundedly: a page examines at most MaxScan positions and then
// returns, short, with where to go on; the letter the filter wants is found on a later page.
func TestListDeadLettersScansBoundedly(t *testing.T) {
	s, _ := open(t)
	letters := []letter{{user: "a", reason: "OLD"}}
	for range MaxScan + 10 {
		letters = append(letters, letter{user: "b", reason: "NEW"})
	}
	ids := storeLetters(t, s, letters...)
	ctx := testContext(t)
	page, next, err := s.ListDeadLetters(ctx, DeadLetterFilter{Reasons: []string{"OLD"}}, 0, 10, 1<<20)
	if err != nil || len(page) != 0 || next == 0 {
		t.Fatalf("the first page: %d letters, next %d, %v; want none yet and a next page", len(page), next, err)
	}
	if got, pages := list(t, s, DeadLetterFilter{Reasons: []string{"OLD"}}, 10, 1<<20); !slices.Equal(got, ids[:1]) || pages != 2 {
		t.Errorf("paging: %v in %d pages, want %v in 2", got, pages, ids[:1])
	}
}

// TestListDeadLettersOfOneSubjectReachesItsOldest: a customer with more than MaxScan letters
// has them all listed, also when the filter skips the newest MaxScan of them.
func TestListDeadLettersOfOneSubjectReachesItsOldest(t *testing.T) {
	s, _ := open(t)
	letters := []letter{{user: "a", reason: "OLD"}}
	for range MaxScan + 10 {
		letters = append(letters, letter{user: "a", reason: "NEW"})
	}
	ids := storeLetters(t, s, letters...)
	subject, _ := eventlog.DeadLetterSubject(eventlog.UserKey("a"))
	if got, _ := list(t, s, DeadLetterFilter{Subject: subject, Reasons: []string{"OLD"}}, 10, 1<<20); !slices.Equal(got, ids[:1]) {
		t.Errorf("a's OLD letters: %v, want %v", got, ids[:1])
	}
	if got, _ := list(t, s, DeadLetterFilter{Subject: subject}, 1000, 1<<20); len(got) != len(ids) {
		t.Errorf("every letter of a: %d, want %d", len(got), len(ids))
	}
}
