package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/record"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/store"
)

// ReasonErased is the reason given for items of an erased customer. They
// are refused and not kept, not even as dead letters.
const ReasonErased = "ERASED"

// item is one item of a batch on its way to the event log.
type item struct {
	// orig is the item as received.
	orig        proto.Message
	messageID   string
	userID      string
	anonymousID string
	rec         record.Record
	problems    []*commonv1.Problem
	erased      bool
	// dead is the dead letter kept for a rejected item.
	dead        *ingestv1.DeadLetter
	deadSubject string
}

// Track stores a batch of behavioural events.
func (s *Server) Track(ctx context.Context, req *ingestv1.TrackRequest) (*ingestv1.TrackResponse, error) {
	if err := s.checkBatch("events", len(req.GetEvents())); err != nil {
		return nil, statuses.Status(ctx, s.logger, "Track", err)
	}
	now := time.Now().UTC()
	items := make([]item, len(req.GetEvents()))
	for i, ev := range req.GetEvents() {
		it := &items[i]
		it.orig, it.messageID, it.userID, it.anonymousID = ev, ev.GetMessageId(), ev.GetUserId(), ev.GetAnonymousId()
		it.rec, it.problems = s.builder.Event(ev, now, "")
		prefixProblems(it.problems, "events", i)
		if len(it.problems) > 0 {
			dead, paths := s.builder.DeadEvent(ev, now)
			key, ok := record.KeyOf(ev.GetUserId(), ev.GetAnonymousId())
			s.setDead(it, ingestv1.EventType_EVENT_TYPE_TRACK, ingestv1.EventSource_EVENT_SOURCE_TRACK, now, paths, key, ok, func(dl *ingestv1.DeadLetter) { dl.Item = &ingestv1.DeadLetter_Event{Event: dead} })
		}
	}
	results, counts, err := s.commit(ctx, "Track", items)
	if err != nil {
		return nil, statuses.Status(ctx, s.logger, "Track", err)
	}
	return &ingestv1.TrackResponse{Results: results, Counts: counts}, nil
}

// Identify stores a batch of trait updates.
func (s *Server) Identify(ctx context.Context, req *ingestv1.IdentifyRequest) (*ingestv1.IdentifyResponse, error) {
	if err := s.checkBatch("updates", len(req.GetUpdates())); err != nil {
		return nil, statuses.Status(ctx, s.logger, "Identify", err)
	}
	now := time.Now().UTC()
	items := make([]item, len(req.GetUpdates()))
	for i, u := range req.GetUpdates() {
		it := &items[i]
		it.orig, it.messageID, it.userID, it.anonymousID = u, u.GetMessageId(), u.GetUserId(), u.GetAnonymousId()
		it.rec, it.problems = s.builder.TraitUpdate(u, now, "")
		prefixProblems(it.problems, "updates", i)
		if len(it.problems) > 0 {
			dead, paths := s.builder.DeadTraitUpdate(u)
			key, ok := record.KeyOf(u.GetUserId(), u.GetAnonymousId())
			s.setDead(it, ingestv1.EventType_EVENT_TYPE_IDENTIFY, ingestv1.EventSource_EVENT_SOURCE_IDENTIFY, now, paths, key, ok, func(dl *ingestv1.DeadLetter) { dl.Item = &ingestv1.DeadLetter_TraitUpdate{TraitUpdate: dead} })
		}
	}
	results, counts, err := s.commit(ctx, "Identify", items)
	if err != nil {
		return nil, statuses.Status(ctx, s.logger, "Identify", err)
	}
	return &ingestv1.IdentifyResponse{Results: results, Counts: counts}, nil
}

// SetConsent stores a batch of consent changes.
func (s *Server) SetConsent(ctx context.Context, req *ingestv1.SetConsentRequest) (*ingestv1.SetConsentResponse, error) {
	if err := s.checkBatch("changes", len(req.GetChanges())); err != nil {
		return nil, statuses.Status(ctx, s.logger, "SetConsent", err)
	}
	now := time.Now().UTC()
	items := make([]item, len(req.GetChanges()))
	for i, c := range req.GetChanges() {
		it := &items[i]
		it.orig, it.messageID, it.userID = c, c.GetMessageId(), c.GetUserId()
		it.rec, it.problems = s.builder.Consent(c, now, "")
		prefixProblems(it.problems, "changes", i)
		if len(it.problems) > 0 {
			dead, paths := s.builder.DeadConsent(c)
			key, ok := record.KeyOf(c.GetUserId(), "")
			s.setDead(it, ingestv1.EventType_EVENT_TYPE_CONSENT, ingestv1.EventSource_EVENT_SOURCE_SET_CONSENT, now, paths, key, ok, func(dl *ingestv1.DeadLetter) { dl.Item = &ingestv1.DeadLetter_ConsentChange{ConsentChange: dead} })
		}
	}
	results, counts, err := s.commit(ctx, "SetConsent", items)
	if err != nil {
		return nil, statuses.Status(ctx, s.logger, "SetConsent", err)
	}
	return &ingestv1.SetConsentResponse{Results: results, Counts: counts}, nil
}

// prefixProblems puts the item's path, such as "events[3]", before the
// fields of its problems (built only for the rare rejected item).
func prefixProblems(ps []*commonv1.Problem, list string, i int) {
	if len(ps) == 0 {
		return
	}
	prefix := list + "[" + strconv.Itoa(i) + "]"
	for _, p := range ps {
		if p.Field == "" {
			p.Field = prefix
		} else {
			p.Field = prefix + "." + p.Field
		}
	}
}

func (s *Server) checkBatch(field string, n int) error {
	if n > s.maxBatch {
		return fault.Invalid(field, "holds %d items, more than the limit of %d per call; split the batch", n, s.maxBatch)
	}
	return nil
}

// setDead prepares the dead letter of a rejected item. An item too large
// to keep whole loses its maps and context (and says so).
func (s *Server) setDead(it *item, typ ingestv1.EventType, src ingestv1.EventSource, now time.Time, paths []string, key eventlog.Key, keyOK bool, setItem func(*ingestv1.DeadLetter)) {
	dl := &ingestv1.DeadLetter{Type: typ, Source: src, ReceiveTime: timestamppb.New(now), Problems: it.problems, PseudonymisedFields: paths}
	setItem(dl)
	if proto.Size(dl) > maxDeadLetterItemBytes {
		switch x := dl.Item.(type) {
		case *ingestv1.DeadLetter_Event:
			x.Event.Properties, x.Event.Context = nil, nil
		case *ingestv1.DeadLetter_TraitUpdate:
			x.TraitUpdate.Traits, x.TraitUpdate.Context = nil, nil
		}
		dl.Problems = append(dl.Problems, &commonv1.Problem{Reason: "DROPPED", Description: "the item was too large to keep whole: its properties, traits and context were dropped from this dead letter"})
		if proto.Size(dl) > maxDeadLetterItemBytes {
			dl.Item = nil
		}
	}
	it.dead = dl
	it.deadSubject = store.DeadLetterSubject(key, keyOK)
}

// erased reports whether an item's customer (or visitor) was erased.
func (s *Server) erased(userID, anonymousID string) bool {
	l := s.store.Erasures()
	if l.Len() == 0 {
		return false
	}
	p := s.builder.Pseudonymiser()
	return (userID != "" && l.Contains(p.SubjectHash(userID))) || (anonymousID != "" && l.Contains(p.SubjectHash(anonymousID)))
}

// deadMsgID is the de-duplication id of a dead letter: the same item
// refused for the same reasons is kept once, so retrying a batch does not
// repeat its dead letters.
func deadMsgID(source ingestv1.EventSource, item proto.Message, problems []*commonv1.Problem) string {
	h := sha256.New()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(item)
	if err != nil {
		// Rejected for a string that is not UTF-8, which cannot be encoded
		// as it is.
		b, _ = proto.MarshalOptions{Deterministic: true}.Marshal(record.DigestText(item))
	}
	h.Write(b)
	for _, p := range problems {
		fmt.Fprintf(h, "\x00%s\x00%s", p.GetField(), p.GetReason())
	}
	return fmt.Sprintf("dl-%d-%s", source, hex.EncodeToString(h.Sum(nil)[:16]))
}

// commit stores the accepted items and the dead letters of the rejected
// ones, awaits every ack, and returns the per-item results.
func (s *Server) commit(ctx context.Context, method string, items []item) ([]*ingestv1.EventResult, *ingestv1.StatusCounts, error) {
	ctx, span := s.tracer.Start(ctx, "ingest.store", trace.WithAttributes(attribute.String("rpc.method", method), attribute.Int("bullseye.items", len(items))))
	defer span.End()
	msgs := make([]store.Message, 0, len(items))
	at := make([]int, len(items))
	// One buffer holds every encoded record of the batch: one allocation
	// instead of one per record.
	buf := make([]byte, 0, 384*len(items))
	for i := range items {
		it := &items[i]
		at[i] = -1
		if s.erased(it.userID, it.anonymousID) {
			it.erased = true
			it.problems = []*commonv1.Problem{{Reason: ReasonErased, Description: "the customer was erased (ForgetUser); their data is not taken in again"}}
		}
		switch {
		case it.erased:
		case len(it.problems) == 0:
			start := len(buf)
			var err error
			if buf, err = (proto.MarshalOptions{}).MarshalAppend(buf, it.rec.Event); err != nil {
				return nil, nil, fmt.Errorf("encoding item %d: %w", i, err)
			}
			data := buf[start:len(buf):len(buf)]
			subj, err := eventlog.EventSubject(it.rec.Key, it.rec.Type)
			if err != nil {
				return nil, nil, fmt.Errorf("subject of item %d: %w", i, err)
			}
			at[i] = len(msgs)
			msgs = append(msgs, store.Message{Subject: subj, MsgID: it.messageID, Type: it.rec.Type, Data: data})
		case it.dead != nil:
			data, err := proto.Marshal(it.dead)
			if err != nil {
				return nil, nil, fmt.Errorf("encoding the dead letter of item %d: %w", i, err)
			}
			at[i] = len(msgs)
			msgs = append(msgs, store.Message{Subject: it.deadSubject, MsgID: deadMsgID(it.dead.GetSource(), it.orig, it.problems), Data: data})
		}
	}
	acks, err := s.store.Publish(ctx, msgs).Wait(ctx)
	if err != nil {
		span.SetAttributes(attribute.Bool("bullseye.unavailable", true))
		return nil, nil, err
	}
	results := make([]*ingestv1.EventResult, len(items))
	counts := &ingestv1.StatusCounts{}
	reasons := map[string]int{}
	for i := range items {
		it := &items[i]
		r := &ingestv1.EventResult{}
		if fault.ValidID(it.messageID) {
			// A bad one is not repeated: it may be long, or not text.
			r.MessageId = it.messageID
		}
		switch {
		case len(it.problems) > 0:
			r.Status, r.Problems = ingestv1.EventStatus_EVENT_STATUS_REJECTED, it.problems
			if at[i] >= 0 {
				r.DeadLetterId = store.DeadLetterID(acks[at[i]].Seq)
			}
			counts.Rejected++
			for _, p := range it.problems {
				reasons[p.GetReason()]++
			}
		case acks[at[i]].Duplicate:
			r.Status = ingestv1.EventStatus_EVENT_STATUS_DUPLICATE
			counts.Duplicates++
		default:
			r.Status = ingestv1.EventStatus_EVENT_STATUS_ACCEPTED
			counts.Accepted++
		}
		results[i] = r
	}
	span.SetAttributes(
		attribute.Int64("bullseye.accepted", counts.Accepted),
		attribute.Int64("bullseye.duplicates", counts.Duplicates),
		attribute.Int64("bullseye.rejected", counts.Rejected),
	)
	if counts.Rejected > 0 {
		s.logger.DebugContext(ctx, "items rejected", "method", method, "rejected", counts.Rejected, "reasons", reasons)
	}
	return results, counts, nil
}
