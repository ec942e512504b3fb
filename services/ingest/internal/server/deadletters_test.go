package server_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

func TestDeadLettersListAndReplay(t *testing.T) {
	e := newEnv(t)
	var events []*ingestv1.Event
	for i := range 5 {
		// Missing names: rejected, kept as dead letters.
		events = append(events, &ingestv1.Event{MessageId: fmt.Sprintf("n-%d", i), UserId: fmt.Sprintf("c-%d", i%2)})
	}
	events = append(events, &ingestv1.Event{MessageId: "q-1", UserId: "c-0", Name: "Order Completed",
		Properties: map[string]*commonv1.Value{"quantity": strv("two"), "email": strv("ana@example.com")}})
	resp, err := e.client.Track(e.ctx(10*time.Second), &ingestv1.TrackRequest{Events: events})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range resp.GetResults() {
		ids = append(ids, r.GetDeadLetterId())
	}

	// Page through everything, newest first, two at a time.
	var got []string
	req := &ingestv1.ListDeadLettersRequest{PageSize: 2}
	for pages := 0; ; pages++ {
		page, err := e.client.ListDeadLetters(e.ctx(10*time.Second), req)
		if err != nil {
			t.Fatal(err)
		}
		for _, dl := range page.GetDeadLetters() {
			got = append(got, dl.GetId())
		}
		if page.GetNextPageToken() == "" || pages > 10 {
			break
		}
		req.PageToken = page.GetNextPageToken()
	}
	want := slices.Clone(ids)
	slices.Reverse(want)
	if !slices.Equal(got, want) {
		t.Errorf("pages: %v, want %v", got, want)
	}

	// Filters.
	list := func(req *ingestv1.ListDeadLettersRequest) []string {
		t.Helper()
		page, err := e.client.ListDeadLetters(e.ctx(10*time.Second), req)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, dl := range page.GetDeadLetters() {
			out = append(out, dl.GetId())
		}
		return out
	}
	if got := list(&ingestv1.ListDeadLettersRequest{Reasons: []string{"WRONG_TYPE"}}); !slices.Equal(got, ids[5:6]) {
		t.Errorf("by reason: %v, want %v", got, ids[5:6])
	}
	if got, want := list(&ingestv1.ListDeadLettersRequest{UserId: "c-1"}), []string{ids[3], ids[1]}; !slices.Equal(got, want) {
		t.Errorf("by customer: %v, want %v", got, want)
	}
	if got := list(&ingestv1.ListDeadLettersRequest{Source: ingestv1.EventSource_EVENT_SOURCE_IMPORT}); len(got) != 0 {
		t.Errorf("by source IMPORT: %v, want none", got)
	}
	// The kept item has its personal property pseudonymised.
	page, err := e.client.ListDeadLetters(e.ctx(10*time.Second), &ingestv1.ListDeadLettersRequest{PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	dl := page.GetDeadLetters()[0]
	if v := dl.GetEvent().GetProperties()["email"].GetStringValue(); v != e.p.Pseudonymise("ana@example.com") || !slices.Contains(dl.GetPseudonymisedFields(), "properties.email") {
		t.Errorf("dead letter email %q, pseudonymised fields %v", v, dl.GetPseudonymisedFields())
	}
	// A token is bound to its filters.
	if _, err := e.client.ListDeadLetters(e.ctx(10*time.Second), &ingestv1.ListDeadLettersRequest{PageSize: 2, PageToken: page.GetNextPageToken(), UserId: "c-1"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("token with other filters: %v, want INVALID_ARGUMENT", err)
	}

	// Replays: a correction, one still wrong, an unknown id, an unchanged
	// item that is still wrong.
	fixed := proto.Clone(events[0]).(*ingestv1.Event)
	fixed.Name = "Product Viewed"
	fixed.MessageId = ""
	rep, err := e.client.ReplayDeadLetters(e.ctx(10*time.Second), &ingestv1.ReplayDeadLettersRequest{Replays: []*ingestv1.DeadLetterReplay{
		{DeadLetterId: ids[0], Correction: &ingestv1.DeadLetterReplay_Event{Event: fixed}},
		{DeadLetterId: ids[1], Correction: &ingestv1.DeadLetterReplay_Event{Event: events[1]}},
		{DeadLetterId: "dl-999"},
		{DeadLetterId: ids[2]},
		{DeadLetterId: ids[3], Correction: &ingestv1.DeadLetterReplay_TraitUpdate{TraitUpdate: &ingestv1.TraitUpdate{MessageId: "x", UserId: "c-1"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	for _, r := range rep.GetResults() {
		outcomes = append(outcomes, r.GetResult().GetStatus().String()+" "+fmt.Sprint(problemKeys(r.GetResult().GetProblems())))
	}
	wantOutcomes := []string{
		"EVENT_STATUS_ACCEPTED []",
		"EVENT_STATUS_REJECTED [replays[1].name:MISSING]",
		"EVENT_STATUS_REJECTED [replays[2].dead_letter_id:NOT_FOUND]",
		"EVENT_STATUS_REJECTED [replays[3].name:MISSING]",
		"EVENT_STATUS_REJECTED [replays[4].correction:WRONG_TYPE]",
	}
	if !slices.Equal(outcomes, wantOutcomes) {
		t.Errorf("replays:\n%q\nwant\n%q", outcomes, wantOutcomes)
	}
	// The replayed event is stored once, with the dead letter's message id
	// and id; replaying again is a duplicate.
	msgs := e.messages(eventlog.EventsStream)
	if len(msgs) != 1 {
		t.Fatalf("events stream holds %d records, want 1", len(msgs))
	}
	var st ingestv1.StoredEvent
	if err := proto.Unmarshal(msgs[0].data, &st); err != nil {
		t.Fatal(err)
	}
	if st.GetMessageId() != "n-0" || st.GetSource() != ingestv1.EventSource_EVENT_SOURCE_REPLAY || st.GetDeadLetterId() != ids[0] {
		t.Errorf("replayed record %v", &st)
	}
	rep, err = e.client.ReplayDeadLetters(e.ctx(10*time.Second), &ingestv1.ReplayDeadLettersRequest{Replays: []*ingestv1.DeadLetterReplay{{DeadLetterId: ids[0]}}})
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.GetResults()[0].GetResult().GetStatus(); s != ingestv1.EventStatus_EVENT_STATUS_DUPLICATE {
		t.Errorf("second replay: %s, want DUPLICATE", s)
	}
	// Replayed letters leave the default listing.
	if got := list(&ingestv1.ListDeadLettersRequest{}); slices.Contains(got, ids[0]) || len(got) != 5 {
		t.Errorf("after the replay: %v", got)
	}
	all, err := e.client.ListDeadLetters(e.ctx(10*time.Second), &ingestv1.ListDeadLettersRequest{IncludeReplayed: true})
	if err != nil {
		t.Fatal(err)
	}
	last := all.GetDeadLetters()[len(all.GetDeadLetters())-1]
	if last.GetId() != ids[0] || !last.GetReplayed() || last.GetReplayTime() == nil {
		t.Errorf("replayed letter listed as %v", last)
	}
}
