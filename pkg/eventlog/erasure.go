package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErasureRecord is the value of an erasure-list entry (ErasuresBucket, key
// SubjectHash). It names the customer only by the keyed hash.
type ErasureRecord struct {
	// ErasureID is the id of the first erasure of the customer.
	ErasureID string `json:"erasure_id"`
	// EraseTime is when the customer was first erased.
	EraseTime time.Time `json:"erase_time"`
	// SubjectHash is the keyed hash of the customer id (the entry's key).
	SubjectHash string `json:"subject_hash"`
	// KeyID is the id of the HMAC key SubjectHash was made with.
	KeyID string `json:"key_id"`
}

// AuditRecord is written to AuditRequestedSubject(ErasureID) on every
// ForgetUser call. It names the customer only by the keyed hash.
type AuditRecord struct {
	// ErasureID is the erasure's id (the first erasure's on repeated calls).
	ErasureID string `json:"erasure_id"`
	// SubjectHash is the keyed hash of the customer id.
	SubjectHash string `json:"subject_hash"`
	// KeyID is the id of the HMAC key SubjectHash was made with.
	KeyID string `json:"key_id"`
	// EraseTime is when the customer was first erased.
	EraseTime time.Time `json:"erase_time"`
	// RequestTime is when this call was made.
	RequestTime time.Time `json:"request_time"`
	// Reason is the caller's reason, free of personal data by contract.
	Reason string `json:"reason,omitempty"`
	// AnonymousIDs is how many anonymous ids were erased with the customer
	// (their values are not recorded).
	AnonymousIDs int `json:"anonymous_ids,omitempty"`
	// AlreadyErased is true when the customer had been erased before.
	AlreadyErased bool `json:"already_erased"`
	// Purged counts the records this call removed, by store
	// ("events", "traits", "consent_records", "dead_letters", "feature_state").
	Purged map[string]int64 `json:"purged"`
	// FeatureStatePending is true when the feature service had not yet
	// confirmed (ErasureApplied) when the call answered; it will apply the
	// erasure record when it consumes it.
	FeatureStatePending bool `json:"feature_state_pending,omitempty"`
}

// ErasureApplied is what the feature service publishes on
// AuditAppliedSubject(ErasureID) once it has deleted the state of an
// erasure record's customer and the erasure record itself.
type ErasureApplied struct {
	// ErasureID is the erasure record's erasure_id.
	ErasureID string `json:"erasure_id"`
	// SubjectHash is the erasure record's subject_hash.
	SubjectHash string `json:"subject_hash"`
	// EventSequence is the erasure record's sequence in EventsStream.
	EventSequence uint64 `json:"event_sequence"`
	// KeysDeleted is how many keys of online state (and history) were
	// deleted.
	KeysDeleted int64 `json:"keys_deleted"`
	// AppliedTime is when the state was deleted.
	AppliedTime time.Time `json:"applied_time"`
	// Instance names the replica that applied it.
	Instance string `json:"instance,omitempty"`
}

// ErasureList is an in-memory copy of the erasure list, kept current by a
// watch on ErasuresBucket: every service consults it before it uses a
// customer's data. It is safe for concurrent use.
type ErasureList struct {
	kv      jetstream.KeyValue
	watcher jetstream.KeyWatcher
	done    chan struct{}

	mu     sync.RWMutex
	hashes map[string]struct{}
}

// WatchErasures loads the erasure list and keeps it current until Stop. It
// returns once the entries present at the call are loaded, or when ctx ends.
func WatchErasures(ctx context.Context, js jetstream.JetStream) (*ErasureList, error) {
	var kv jetstream.KeyValue
	err := Retry(ctx, func(ctx context.Context) (err error) {
		kv, err = js.KeyValue(ctx, ErasuresBucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening the erasure list: %w", err)
	}
	// The watch outlives ctx: it ends with Stop.
	w, err := kv.WatchAll(context.WithoutCancel(ctx), jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("watching the erasure list: %w", err)
	}
	l := &ErasureList{kv: kv, watcher: w, done: make(chan struct{}), hashes: make(map[string]struct{})}
	loaded := make(chan struct{})
	go l.run(loaded)
	select {
	case <-loaded:
		return l, nil
	case <-ctx.Done():
		l.Stop()
		return nil, fmt.Errorf("loading the erasure list: %w", ctx.Err())
	}
}

func (l *ErasureList) run(loaded chan struct{}) {
	defer close(l.done)
	for e := range l.watcher.Updates() {
		if e == nil {
			if loaded != nil {
				close(loaded)
				loaded = nil
			}
			continue
		}
		l.mu.Lock()
		if e.Operation() == jetstream.KeyValuePut {
			l.hashes[e.Key()] = struct{}{}
		}
		l.mu.Unlock()
	}
}

// Contains reports whether the customer with this SubjectHash was erased.
func (l *ErasureList) Contains(subjectHash string) bool {
	l.mu.RLock()
	_, ok := l.hashes[subjectHash]
	l.mu.RUnlock()
	return ok
}

// Add puts a hash on the in-memory copy at once, ahead of the watch; the
// caller has written it to the bucket.
func (l *ErasureList) Add(subjectHash string) {
	l.mu.Lock()
	l.hashes[subjectHash] = struct{}{}
	l.mu.Unlock()
}

// Len returns how many customers are on the list.
func (l *ErasureList) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.hashes)
}

// Get returns the erasure-list entry of a subject hash from the bucket
// (not the in-memory copy); found is false when the customer is not erased.
func (l *ErasureList) Get(ctx context.Context, subjectHash string) (rec ErasureRecord, revision uint64, found bool, err error) {
	e, err := l.kv.Get(ctx, subjectHash)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return ErasureRecord{}, 0, false, nil
	}
	if err != nil {
		return ErasureRecord{}, 0, false, fmt.Errorf("reading the erasure list: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return ErasureRecord{}, 0, false, fmt.Errorf("reading erasure-list entry: %w", err)
	}
	return rec, e.Revision(), true, nil
}

// Create adds an entry to the bucket and to the in-memory copy. If another
// caller created the entry first, it returns that entry and created false.
func (l *ErasureList) Create(ctx context.Context, rec ErasureRecord) (stored ErasureRecord, created bool, err error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return ErasureRecord{}, false, err
	}
	_, err = l.kv.Create(ctx, rec.SubjectHash, b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		prev, _, found, gerr := l.Get(ctx, rec.SubjectHash)
		if gerr != nil {
			return ErasureRecord{}, false, gerr
		}
		if found {
			l.Add(rec.SubjectHash)
			return prev, false, nil
		}
	}
	if err != nil {
		return ErasureRecord{}, false, fmt.Errorf("adding to the erasure list: %w", err)
	}
	l.Add(rec.SubjectHash)
	return rec, true, nil
}

// Stop ends the watch and waits for it to end.
func (l *ErasureList) Stop() {
	_ = l.watcher.Stop()
	<-l.done
}
