package server

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/record"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/store"
)

// Page sizes of ListDeadLetters.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
	// maxPageBytes bounds a page's encoded size, below gRPC's default
	// message limit: a page of large dead letters comes back shorter.
	maxPageBytes = 3 << 20
)

// pageToken is what a next_page_token carries: where the next page starts
// and a fingerprint of the filters, which must not change between pages.
type pageToken struct {
	Before uint64 `json:"b"`
	Filter string `json:"f"`
}

func filterFingerprint(req *ingestv1.ListDeadLettersRequest) string {
	r := proto.Clone(req).(*ingestv1.ListDeadLettersRequest)
	r.PageToken, r.PageSize = "", 0
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// ListDeadLetters pages through dead letters, newest first.
func (s *Server) ListDeadLetters(ctx context.Context, req *ingestv1.ListDeadLettersRequest) (*ingestv1.ListDeadLettersResponse, error) {
	resp, err := s.listDeadLetters(ctx, req)
	if err != nil {
		return nil, statuses.Status(ctx, s.logger, "ListDeadLetters", err)
	}
	return resp, nil
}

// maxReasonFilters bounds ListDeadLettersRequest.reasons.
const maxReasonFilters = 100

func (s *Server) listDeadLetters(ctx context.Context, req *ingestv1.ListDeadLettersRequest) (*ingestv1.ListDeadLettersResponse, error) {
	var v fault.Violations
	if v.CheckMessage("", req); len(v) > 0 {
		return nil, v
	}
	if id := req.GetUserId(); id != "" {
		v.CheckID("user_id", id)
	}
	if id := req.GetImportId(); id != "" {
		v.CheckID("import_id", id)
	}
	if v.CheckLen("reasons", len(req.GetReasons()), maxReasonFilters) {
		for i, r := range req.GetReasons() {
			v.CheckName(fmt.Sprintf("reasons[%d]", i), r)
		}
	}
	if _, ok := ingestv1.EventSource_name[int32(req.GetSource())]; !ok {
		v.Add("source", "is not a known event source")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	switch {
	case size < 0 || size > maxPageSize:
		return nil, fault.Invalid("page_size", "must be between 0 and %d", maxPageSize)
	case size == 0:
		size = defaultPageSize
	}
	f := store.DeadLetterFilter{
		Reasons:         req.GetReasons(),
		ImportID:        req.GetImportId(),
		Source:          req.GetSource(),
		IncludeReplayed: req.GetIncludeReplayed(),
	}
	if t := req.GetStartTime(); t != nil {
		if t.CheckValid() != nil {
			return nil, fault.Invalid("start_time", "is not a valid timestamp")
		}
		f.Start = t.AsTime()
	}
	if t := req.GetEndTime(); t != nil {
		if t.CheckValid() != nil {
			return nil, fault.Invalid("end_time", "is not a valid timestamp")
		}
		f.End = t.AsTime()
	}
	if id := req.GetUserId(); id != "" {
		subj, err := eventlog.DeadLetterSubject(eventlog.UserKey(id))
		if err != nil {
			return nil, fault.Invalid("user_id", "is not a usable customer id")
		}
		f.Subject = subj
	}
	fp := filterFingerprint(req)
	var before uint64
	if tok := req.GetPageToken(); tok != "" {
		var pt pageToken
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err == nil {
			err = json.Unmarshal(b, &pt)
		}
		if err != nil || pt.Before == 0 {
			return nil, fault.Invalid("page_token", "is not a token this service issued")
		}
		if pt.Filter != fp {
			return nil, fault.Invalid("page_token", "was issued for other filters; keep the filters of the first page")
		}
		before = pt.Before
	}
	letters, next, err := s.store.ListDeadLetters(ctx, f, before, size, maxPageBytes)
	if err != nil {
		return nil, err
	}
	resp := &ingestv1.ListDeadLettersResponse{DeadLetters: letters}
	if next != 0 {
		b, _ := json.Marshal(pageToken{Before: next, Filter: fp})
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString(b)
	}
	return resp, nil
}

// Reasons of replay outcomes.
const (
	// ReasonNotFound: no dead letter has the id.
	ReasonNotFound = "NOT_FOUND"
	// ReasonNothingToRetry: the dead letter keeps no item and no correction
	// was sent.
	ReasonNothingToRetry = "NOTHING_TO_REPLAY"
	// ReasonPseudonymousID: the stored item's customer id is a pseudonym, so
	// it cannot be replayed unchanged.
	ReasonPseudonymousID = "PSEUDONYMISED_ID"
)

// ReplayDeadLetters re-submits dead letters, corrected or as stored.
func (s *Server) ReplayDeadLetters(ctx context.Context, req *ingestv1.ReplayDeadLettersRequest) (*ingestv1.ReplayDeadLettersResponse, error) {
	resp, err := s.replay(ctx, req)
	if err != nil {
		return nil, statuses.Status(ctx, s.logger, "ReplayDeadLetters", err)
	}
	return resp, nil
}

func (s *Server) replay(ctx context.Context, req *ingestv1.ReplayDeadLettersRequest) (*ingestv1.ReplayDeadLettersResponse, error) {
	if err := s.checkBatch("replays", len(req.GetReplays())); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	items := make([]item, len(req.GetReplays()))
	done := make([]*ingestv1.EventResult, len(items)) // answered without storing
	ids := make([]string, len(items))
	for i, rp := range req.GetReplays() {
		prefix := fmt.Sprintf("replays[%d]", i)
		ids[i] = rp.GetDeadLetterId()
		reject := func(field, reason, desc string) {
			done[i] = &ingestv1.EventResult{Status: ingestv1.EventStatus_EVENT_STATUS_REJECTED, DeadLetterId: ids[i],
				Problems: []*commonv1.Problem{record.Problem(prefix, field, reason, desc)}}
		}
		if !fault.ValidID(ids[i]) {
			// Not repeated in the reply: it may be long, or not text.
			ids[i] = ""
			reject("dead_letter_id", record.ReasonInvalid, fmt.Sprintf("dead_letter_id must be 1 to %d bytes of text without control characters, as ListDeadLetters gives it", fault.MaxIDBytes))
			continue
		}
		dl, err := s.store.DeadLetter(ctx, rp.GetDeadLetterId())
		if errors.Is(err, store.ErrNotFound) {
			reject("dead_letter_id", ReasonNotFound, "no dead letter has this id (it may have expired or been erased)")
			continue
		}
		if err != nil {
			return nil, err
		}
		if dl.GetReplayed() {
			done[i] = &ingestv1.EventResult{Status: ingestv1.EventStatus_EVENT_STATUS_DUPLICATE, DeadLetterId: dl.GetId()}
			continue
		}
		received := now
		if t := dl.GetReceiveTime(); t != nil && t.CheckValid() == nil {
			received = t.AsTime()
		}
		var already []string
		if rp.GetCorrection() == nil {
			already = dl.GetPseudonymisedFields()
			if slices.Contains(already, "user_id") || slices.Contains(already, "anonymous_id") {
				reject("correction", ReasonPseudonymousID, "the stored item's customer id was an email address or phone number and is kept only as a pseudonym; send a correction with the customer's opaque id")
				continue
			}
		}
		it := &items[i]
		var rec record.Record
		var probs []*commonv1.Problem
		switch dl.GetType() {
		case ingestv1.EventType_EVENT_TYPE_TRACK:
			ev := dl.GetEvent()
			if c := rp.GetCorrection(); c != nil {
				if ev = rp.GetEvent(); ev == nil {
					reject("correction", record.ReasonWrongType, "the dead letter holds an event; correct it with an event")
					continue
				}
			}
			if ev == nil {
				reject("correction", ReasonNothingToRetry, "the dead letter keeps no item; send a correction")
				continue
			}
			ev = proto.Clone(ev).(*ingestv1.Event)
			if ev.MessageId == "" && dl.GetEvent() != nil {
				ev.MessageId = dl.GetEvent().GetMessageId()
			}
			it.messageID, it.userID, it.anonymousID = ev.GetMessageId(), ev.GetUserId(), ev.GetAnonymousId()
			rec, probs = s.builder.Event(ev, received, prefix, already...)
		case ingestv1.EventType_EVENT_TYPE_IDENTIFY:
			u := dl.GetTraitUpdate()
			if c := rp.GetCorrection(); c != nil {
				if u = rp.GetTraitUpdate(); u == nil {
					reject("correction", record.ReasonWrongType, "the dead letter holds a trait update; correct it with a trait update")
					continue
				}
			}
			if u == nil {
				reject("correction", ReasonNothingToRetry, "the dead letter keeps no item; send a correction")
				continue
			}
			u = proto.Clone(u).(*ingestv1.TraitUpdate)
			if u.MessageId == "" && dl.GetTraitUpdate() != nil {
				u.MessageId = dl.GetTraitUpdate().GetMessageId()
			}
			it.messageID, it.userID, it.anonymousID = u.GetMessageId(), u.GetUserId(), u.GetAnonymousId()
			rec, probs = s.builder.TraitUpdate(u, received, prefix, already...)
		case ingestv1.EventType_EVENT_TYPE_CONSENT:
			c := dl.GetConsentChange()
			if corr := rp.GetCorrection(); corr != nil {
				if c = rp.GetConsentChange(); c == nil {
					reject("correction", record.ReasonWrongType, "the dead letter holds a consent change; correct it with a consent change")
					continue
				}
			}
			if c == nil {
				reject("correction", ReasonNothingToRetry, "the dead letter keeps no item; send a correction")
				continue
			}
			c = proto.Clone(c).(*ingestv1.ConsentChange)
			if c.MessageId == "" && dl.GetConsentChange() != nil {
				c.MessageId = dl.GetConsentChange().GetMessageId()
			}
			it.messageID, it.userID = c.GetMessageId(), c.GetUserId()
			rec, probs = s.builder.Consent(c, received, prefix)
		default:
			reject("correction", ReasonNothingToRetry, "the dead letter keeps no item; send a correction")
			continue
		}
		if len(probs) > 0 {
			// Still wrong: answered, not kept again.
			done[i] = &ingestv1.EventResult{MessageId: it.messageID, Status: ingestv1.EventStatus_EVENT_STATUS_REJECTED, Problems: probs, DeadLetterId: dl.GetId()}
			continue
		}
		rec.Event.Source = ingestv1.EventSource_EVENT_SOURCE_REPLAY
		rec.Event.DeadLetterId = dl.GetId()
		rec.Event.ImportId, rec.Event.RowNumber = dl.GetImportId(), dl.GetRowNumber()
		it.rec = rec
	}
	// Store the replays that are ready, in one batch.
	var ready []item
	var readyIdx []int
	for i := range items {
		if done[i] == nil {
			ready = append(ready, items[i])
			readyIdx = append(readyIdx, i)
		}
	}
	results, _, err := s.commit(ctx, "ReplayDeadLetters", ready)
	if err != nil {
		return nil, err
	}
	for j, r := range results {
		i := readyIdx[j]
		if r.GetStatus() != ingestv1.EventStatus_EVENT_STATUS_REJECTED {
			if err := s.store.MarkReplayed(ctx, ids[i], now); err != nil {
				return nil, err
			}
		}
		r.DeadLetterId = ids[i]
		done[i] = r
	}
	resp := &ingestv1.ReplayDeadLettersResponse{Counts: &ingestv1.StatusCounts{}}
	for i, r := range done {
		resp.Results = append(resp.Results, &ingestv1.ReplayResult{DeadLetterId: ids[i], Result: r})
		switch r.GetStatus() {
		case ingestv1.EventStatus_EVENT_STATUS_ACCEPTED:
			resp.Counts.Accepted++
		case ingestv1.EventStatus_EVENT_STATUS_DUPLICATE:
			resp.Counts.Duplicates++
		default:
			resp.Counts.Rejected++
		}
	}
	return resp, nil
}
