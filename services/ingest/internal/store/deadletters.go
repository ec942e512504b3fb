package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

// DeadLetterFilter selects dead letters for ListDeadLetters.
type DeadLetterFilter struct {
	// Subject, when set, reads only that subject (one customer's letters).
	Subject string
	// Reasons keeps letters with at least one of these problem reasons.
	Reasons []string
	// Start and End keep letters received in [Start, End); zero is open.
	Start, End time.Time
	// ImportID keeps letters of that import.
	ImportID string
	// Source keeps letters that came through that API.
	Source ingestv1.EventSource
	// IncludeReplayed keeps letters already replayed.
	IncludeReplayed bool
}

func (f *DeadLetterFilter) match(dl *ingestv1.DeadLetter) bool {
	if len(f.Reasons) > 0 && !slices.ContainsFunc(dl.GetProblems(), func(p *commonv1.Problem) bool {
		return slices.Contains(f.Reasons, p.GetReason())
	}) {
		return false
	}
	t := dl.GetReceiveTime().AsTime()
	if !f.Start.IsZero() && t.Before(f.Start) {
		return false
	}
	if !f.End.IsZero() && !t.Before(f.End) {
		return false
	}
	if f.ImportID != "" && dl.GetImportId() != f.ImportID {
		return false
	}
	if f.Source != ingestv1.EventSource_EVENT_SOURCE_UNSPECIFIED && dl.GetSource() != f.Source {
		return false
	}
	return f.IncludeReplayed || !dl.GetReplayed()
}

// MaxScan is how many stream positions one ListDeadLetters call examines at
// most; a page may come back short (with a next position) when filters
// skip many letters.
const MaxScan = 5000

// ListDeadLetters returns up to limit dead letters matching f, newest
// first, among those stored before sequence before (0: all), and at most
// maxBytes of them encoded (at least one). next is the sequence to pass as
// before for the next page, 0 when there is none.
func (s *Store) ListDeadLetters(ctx context.Context, f DeadLetterFilter, before uint64, limit, maxBytes int) (letters []*ingestv1.DeadLetter, next uint64, err error) {
	info, err := s.deadLetters.Info(ctx)
	if err != nil {
		return nil, 0, unavailable(fmt.Errorf("reading dead-letter stream: %w", err))
	}
	first, last := info.State.FirstSeq, info.State.LastSeq
	if info.State.Msgs == 0 {
		return nil, 0, nil
	}
	top := last
	if before != 0 {
		if before <= first {
			return nil, 0, nil
		}
		top = min(before-1, last)
	}
	// The positions to read, newest first: every one from top down, or the
	// subject's.
	var seqs []uint64
	var older bool
	if f.Subject != "" {
		if seqs, older, err = s.subjectSeqs(ctx, f.Subject, first, top); err != nil {
			return nil, 0, err
		}
		slices.Reverse(seqs)
	}
	nextSeq := func(i int) (uint64, bool) {
		if f.Subject != "" {
			if i < len(seqs) {
				return seqs[i], true
			}
			return 0, false
		}
		if uint64(i) > top-first {
			return 0, false
		}
		return top - uint64(i), true
	}
	size := 0
	for i := 0; ; i++ {
		seq, ok := nextSeq(i)
		if !ok {
			if older {
				return letters, seqs[len(seqs)-1], nil
			}
			return letters, 0, nil
		}
		if len(letters) == limit || i == MaxScan {
			return letters, seq + 1, nil
		}
		dl, err := s.deadLetter(ctx, seq)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		if err := s.fillReplayed(ctx, dl); err != nil {
			return nil, 0, err
		}
		if !f.match(dl) {
			continue
		}
		n := proto.Size(dl)
		if len(letters) > 0 && size+n > maxBytes {
			return letters, seq + 1, nil
		}
		size += n
		letters = append(letters, dl)
	}
}

// subjectSeqs returns the sequences of the messages on subject between
// first and top, oldest first: the newest MaxScan of them, older saying
// whether there were more.
func (s *Store) subjectSeqs(ctx context.Context, subject string, first, top uint64) (seqs []uint64, older bool, err error) {
	for seq := first; seq <= top; {
		m, err := s.deadLetters.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, false, unavailable(fmt.Errorf("reading dead letters: %w", err))
		}
		if m.Sequence > top {
			break
		}
		seqs = append(seqs, m.Sequence)
		seq = m.Sequence + 1
		if len(seqs) > MaxScan {
			seqs, older = seqs[1:], true // keep the newest
		}
	}
	return seqs, older, nil
}

// deadLetter reads the dead letter stored at seq.
func (s *Store) deadLetter(ctx context.Context, seq uint64) (*ingestv1.DeadLetter, error) {
	m, err := s.deadLetters.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("dead letter %d: %w", seq, ErrNotFound)
	}
	if err != nil {
		return nil, unavailable(fmt.Errorf("reading dead letter %d: %w", seq, err))
	}
	dl := new(ingestv1.DeadLetter)
	if err := proto.Unmarshal(m.Data, dl); err != nil {
		return nil, fmt.Errorf("decoding dead letter %d: %w", seq, err)
	}
	dl.Id = DeadLetterID(seq)
	return dl, nil
}

// DeadLetter returns the dead letter with the given id, with its replay
// mark, and the subject it is stored on.
func (s *Store) DeadLetter(ctx context.Context, id string) (*ingestv1.DeadLetter, error) {
	seq, ok := ParseDeadLetterID(id)
	if !ok {
		return nil, fmt.Errorf("dead letter %q: %w", id, ErrNotFound)
	}
	dl, err := s.deadLetter(ctx, seq)
	if err != nil {
		return nil, err
	}
	if err := s.fillReplayed(ctx, dl); err != nil {
		return nil, err
	}
	return dl, nil
}

func (s *Store) fillReplayed(ctx context.Context, dl *ingestv1.DeadLetter) error {
	e, err := s.replays.Get(ctx, dl.GetId())
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return unavailable(fmt.Errorf("reading replay mark of %s: %w", dl.GetId(), err))
	}
	t, err := time.Parse(time.RFC3339Nano, string(e.Value()))
	if err != nil {
		return fmt.Errorf("reading replay mark of %s: %w", dl.GetId(), err)
	}
	dl.Replayed = true
	dl.ReplayTime = timestamppb.New(t)
	return nil
}

// MarkReplayed records that a dead letter was replayed and accepted.
func (s *Store) MarkReplayed(ctx context.Context, id string, t time.Time) error {
	if _, err := s.replays.Put(ctx, id, []byte(t.UTC().Format(time.RFC3339Nano))); err != nil {
		return unavailable(fmt.Errorf("marking %s replayed: %w", id, err))
	}
	return nil
}

// DeadLetterSubject returns where a dead letter of an item with these ids
// is kept: the customer's (or visitor's) subject, or the unidentified one.
func DeadLetterSubject(key eventlog.Key, ok bool) string {
	if ok {
		if subj, err := eventlog.DeadLetterSubject(key); err == nil {
			return subj
		}
	}
	return eventlog.UnidentifiedDeadLetters
}

// GetImport returns the stored progress of an import by its key (the
// importer's: the file's digest and the mapping's hash), with the entry's
// revision; found is false for a new import.
func (s *Store) GetImport(ctx context.Context, key string) (value []byte, revision uint64, found bool, err error) {
	e, err := s.imports.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, unavailable(fmt.Errorf("reading import progress: %w", err))
	}
	return e.Value(), e.Revision(), true, nil
}

// PutImport stores an import's progress if the entry is still at revision
// (0: does not exist yet), and returns the new revision. Losing to another
// writer is ErrConflict.
func (s *Store) PutImport(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	var (
		rev uint64
		err error
	)
	if revision == 0 {
		rev, err = s.imports.Create(ctx, key, value)
	} else {
		rev, err = s.imports.Update(ctx, key, value, revision)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, fmt.Errorf("recording import progress: %w", ErrConflict)
	}
	if err != nil {
		return 0, unavailable(fmt.Errorf("recording import progress: %w", err))
	}
	return rev, nil
}
