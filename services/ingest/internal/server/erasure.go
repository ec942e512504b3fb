package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/store"
)

// Limits of ForgetUser.
const (
	maxAnonymousIDs = 100
	maxReasonBytes  = 512
)

// ForgetUser erases a customer.
func (s *Server) ForgetUser(ctx context.Context, req *ingestv1.ForgetUserRequest) (*ingestv1.ForgetUserResponse, error) {
	receipt, err := s.forget(ctx, req)
	if err != nil {
		return nil, statuses.Status(ctx, s.logger, "ForgetUser", err)
	}
	return &ingestv1.ForgetUserResponse{Receipt: receipt}, nil
}

func newID(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func (s *Server) forget(ctx context.Context, req *ingestv1.ForgetUserRequest) (*ingestv1.ErasureReceipt, error) {
	userID := req.GetUserId()
	var v fault.Violations
	v.CheckID("user_id", userID)
	if v.CheckLen("anonymous_ids", len(req.GetAnonymousIds()), maxAnonymousIDs) {
		for i, a := range req.GetAnonymousIds() {
			v.CheckID(fmt.Sprintf("anonymous_ids[%d]", i), a)
		}
	}
	v.CheckString("reason", req.GetReason(), maxReasonBytes, false)
	if err := v.Err(); err != nil {
		return nil, err
	}
	keys := []eventlog.Key{eventlog.UserKey(userID)}
	for _, a := range req.GetAnonymousIds() {
		keys = append(keys, eventlog.AnonymousKey(a))
	}
	for _, k := range keys {
		// Short ids would match ordinary text; longer ones must not appear.
		if len(k.ID) >= 6 && strings.Contains(req.GetReason(), k.ID) {
			return nil, fault.Invalid("reason", "holds the customer's id; the reason is kept in the audit record, which must not hold personal data")
		}
	}
	ctx, span := s.tracer.Start(ctx, "ingest.forget_user")
	defer span.End()
	p := s.builder.Pseudonymiser()
	now := time.Now().UTC()
	hash := p.SubjectHash(userID)
	entry, created, err := s.store.Erasures().Create(ctx, eventlog.ErasureRecord{ErasureID: newID("er-"), EraseTime: now, SubjectHash: hash, KeyID: p.KeyID()})
	if err != nil {
		return nil, storeErr(err)
	}
	// Anonymous ids go on the list too, so their later events are refused.
	for _, k := range keys[1:] {
		if _, _, err := s.store.Erasures().Create(ctx, eventlog.ErasureRecord{ErasureID: entry.ErasureID, EraseTime: entry.EraseTime, SubjectHash: p.SubjectHash(k.ID), KeyID: p.KeyID()}); err != nil {
			return nil, storeErr(err)
		}
	}
	span.SetAttributes(attribute.String("bullseye.erasure_id", entry.ErasureID), attribute.Bool("bullseye.already_erased", !created))

	// Purge the customer's records and dead letters.
	purged := map[ingestv1.ErasureTarget]int64{}
	targets := map[eventlog.Type]ingestv1.ErasureTarget{
		eventlog.TypeTrack:    ingestv1.ErasureTarget_ERASURE_TARGET_EVENTS,
		eventlog.TypeIdentify: ingestv1.ErasureTarget_ERASURE_TARGET_TRAITS,
		eventlog.TypeConsent:  ingestv1.ErasureTarget_ERASURE_TARGET_CONSENT_RECORDS,
	}
	for _, k := range keys {
		for _, t := range eventlog.DataTypes {
			subj, err := eventlog.EventSubject(k, t)
			if err != nil {
				return nil, err
			}
			n, err := s.store.Purge(ctx, eventlog.EventsStream, subj)
			if err != nil {
				return nil, err
			}
			purged[targets[t]] += n
		}
		subj, err := eventlog.DeadLetterSubject(k)
		if err != nil {
			return nil, err
		}
		n, err := s.store.Purge(ctx, eventlog.DeadLettersStream, subj)
		if err != nil {
			return nil, err
		}
		purged[ingestv1.ErasureTarget_ERASURE_TARGET_DEAD_LETTERS] += n
	}

	// Tell the feature service, after the purge, and wait a little for it.
	nc := s.store.JetStream().Conn()
	applied := make(chan *nats.Msg, len(keys))
	sub, err := nc.ChanSubscribe(eventlog.AuditAppliedSubject(entry.ErasureID), applied)
	if err != nil {
		return nil, storeErr(fmt.Errorf("subscribing to erasure confirmations: %w", err))
	}
	defer func() { _ = sub.Unsubscribe() }()
	seqs := map[uint64]bool{}
	for _, k := range keys {
		ev := &ingestv1.StoredEvent{
			Type:           ingestv1.EventType_EVENT_TYPE_ERASURE,
			MessageId:      newID("erasure-"),
			EventTime:      timestamppb.New(now),
			ReceivedAt:     timestamppb.New(now),
			Source:         ingestv1.EventSource_EVENT_SOURCE_FORGET_USER,
			ErasureId:      entry.ErasureID,
			SubjectHash:    hash,
			PseudonymKeyId: p.KeyID(),
		}
		if k.Kind == eventlog.KindUser {
			ev.UserId = k.ID
		} else {
			ev.AnonymousId = k.ID
		}
		data, err := proto.Marshal(ev)
		if err != nil {
			return nil, err
		}
		subj, err := eventlog.EventSubject(k, eventlog.TypeErasure)
		if err != nil {
			return nil, err
		}
		ack, err := s.store.PublishSync(ctx, store.Message{Subject: subj, MsgID: ev.MessageId, Type: eventlog.TypeErasure, Data: data})
		if err != nil {
			return nil, err
		}
		seqs[ack.Seq] = true
	}
	deadline := time.Now().Add(s.erasureWait)
	keysDeleted, confirmed := s.awaitApplied(ctx, applied, maps.Clone(seqs), deadline)
	if confirmed {
		confirmed = s.awaitRemoved(ctx, slices.Collect(maps.Keys(seqs)), deadline)
	}

	receipt := &ingestv1.ErasureReceipt{
		ErasureId:     entry.ErasureID,
		EraseTime:     timestamppb.New(entry.EraseTime),
		SubjectHash:   hash,
		KeyId:         p.KeyID(),
		AlreadyErased: !created,
	}
	audit := eventlog.AuditRecord{
		ErasureID:           entry.ErasureID,
		SubjectHash:         hash,
		KeyID:               p.KeyID(),
		EraseTime:           entry.EraseTime,
		RequestTime:         now,
		Reason:              req.GetReason(),
		AnonymousIDs:        len(keys) - 1,
		AlreadyErased:       !created,
		Purged:              map[string]int64{},
		FeatureStatePending: !confirmed,
	}
	for _, t := range []ingestv1.ErasureTarget{
		ingestv1.ErasureTarget_ERASURE_TARGET_EVENTS,
		ingestv1.ErasureTarget_ERASURE_TARGET_TRAITS,
		ingestv1.ErasureTarget_ERASURE_TARGET_CONSENT_RECORDS,
		ingestv1.ErasureTarget_ERASURE_TARGET_DEAD_LETTERS,
	} {
		receipt.Purged = append(receipt.Purged, &ingestv1.PurgeCount{Target: t, Count: purged[t]})
		audit.Purged[auditName(t)] = purged[t]
	}
	if confirmed {
		t := ingestv1.ErasureTarget_ERASURE_TARGET_FEATURE_STATE
		receipt.Purged = append(receipt.Purged, &ingestv1.PurgeCount{Target: t, Count: keysDeleted})
		audit.Purged[auditName(t)] = keysDeleted
	}
	data, err := json.Marshal(audit)
	if err != nil {
		return nil, err
	}
	if _, err := s.store.PublishSync(ctx, store.Message{Subject: eventlog.AuditRequestedSubject(entry.ErasureID), MsgID: newID("audit-"), Data: data}); err != nil {
		return nil, err
	}
	s.logger.InfoContext(ctx, "customer erased", "erasure_id", entry.ErasureID, "subject_hash", hash,
		"already_erased", !created, "feature_state_confirmed", confirmed)
	return receipt, nil
}

// waitBudget is how long to wait until deadline, leaving half of ctx's
// remaining time for the rest of the call.
func waitBudget(ctx context.Context, deadline time.Time) time.Duration {
	wait := time.Until(deadline)
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d)/2)
	}
	return wait
}

// awaitApplied waits for the feature service's confirmations of the
// erasure records at seqs, until deadline (and within ctx's). It returns
// the keys deleted and whether every record was confirmed.
func (s *Server) awaitApplied(ctx context.Context, applied <-chan *nats.Msg, seqs map[uint64]bool, deadline time.Time) (int64, bool) {
	wait := waitBudget(ctx, deadline)
	if wait <= 0 {
		return 0, false
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var keys int64
	for len(seqs) > 0 {
		select {
		case m := <-applied:
			var a eventlog.ErasureApplied
			if json.Unmarshal(m.Data, &a) != nil || !seqs[a.EventSequence] {
				continue
			}
			delete(seqs, a.EventSequence)
			keys += a.KeysDeleted
		case <-timer.C:
			return keys, false
		case <-ctx.Done():
			return keys, false
		}
	}
	return keys, true
}

// awaitRemoved waits until the feature service has deleted the erasure
// records at seqs (they name the customer), until deadline.
func (s *Server) awaitRemoved(ctx context.Context, seqs []uint64, deadline time.Time) bool {
	ctx, cancel := context.WithTimeout(ctx, max(waitBudget(ctx, deadline), 0))
	defer cancel()
	for _, seq := range seqs {
		for {
			_, err := s.store.EventsStream().GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if ctx.Err() != nil {
				return false
			}
			select {
			case <-ctx.Done():
				return false
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return true
}

func auditName(t ingestv1.ErasureTarget) string {
	return strings.ToLower(strings.TrimPrefix(t.String(), "ERASURE_TARGET_"))
}

// storeErr marks an error of the erasure list as unavailability.
func storeErr(err error) error {
	return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
}
