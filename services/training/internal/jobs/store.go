// Package jobs keeps training jobs in etcd and runs them on training replicas.
//
// Keys:
//
//	bullseye/jobs/<id>                  the Job (protobuf)
//	bullseye/job-requests/<request id>  the id of the job the request created (idempotency)
//	bullseye/job-queue/<id>             present while the job has not ended: what replicas scan;
//	                                    its value is the job's fairness group (the model name)
//	bullseye/job-locks/<id>             the replica working on the job, under its lease
//	bullseye/jobs-started/<group>       the last job of the group a replica took; its modification
//	                                    revision orders the groups of the fair queue
//
// A replica takes a job by creating its lock key under the replica's etcd lease (one
// compare-and-set); while it works, every write of the job record is fenced by that lock
// (the transaction checks the lock is still the replica's). When a replica dies its lease
// expires, the lock key disappears, and another replica takes the job and runs it again from
// the start. Job ids sort by creation time.
package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
)

// Key prefixes.
const (
	JobsPrefix     = "bullseye/jobs/"
	requestsPrefix = "bullseye/job-requests/"
	queuePrefix    = "bullseye/job-queue/"
	locksPrefix    = "bullseye/job-locks/"
	// startedPrefix is outside watchPrefix: taking a job does not wake the replicas.
	startedPrefix = "bullseye/jobs-started/"
	// watchPrefix covers the queue and the locks (and the requests), not the job records.
	watchPrefix = "bullseye/job-"
)

func jobKey(id string) string    { return JobsPrefix + id }
func requestKey(r string) string { return requestsPrefix + r }
func queueKey(id string) string  { return queuePrefix + id }
func lockKey(id string) string   { return locksPrefix + id }
func startedKey(g string) string { return startedPrefix + g }
func validID(id string) bool     { return jobIDRE.MatchString(id) }

// jobIDRE is the form of the ids newID makes.
var jobIDRE = regexp.MustCompile(`^[0-9]{8}-[0-9]{6}\.[0-9]{3}-[0-9a-f]{8}$`)

// ValidID reports whether id has the form of a job id (as StartTraining returns it).
func ValidID(id string) bool { return validID(id) }
func terminal(s trainingv1.JobState) bool {
	return s == trainingv1.JobState_JOB_STATE_SUCCEEDED || s == trainingv1.JobState_JOB_STATE_FAILED ||
		s == trainingv1.JobState_JOB_STATE_CANCELLED
}

// Terminal reports whether a job state is final.
func Terminal(s trainingv1.JobState) bool { return terminal(s) }

// Store reads and writes job records.
type Store struct {
	etcd *clientv3.Client
	now  func() time.Time
}

// NewStore returns a job store on etcd client cli.
func NewStore(cli *clientv3.Client) *Store { return &Store{etcd: cli, now: time.Now} }

// newID returns a job id that sorts by creation time: "20250301-101500.123-9f2c4e1a".
func newID(t time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format("20060102-150405.000") + "-" + hex.EncodeToString(b[:])
}

// Create creates a PENDING job for a request, or returns the job an earlier request with the
// same id created (created false). A different spec under the same request id fails with
// fault.ErrAlreadyExists (reason REQUEST_ID_REUSED).
func (s *Store) Create(ctx context.Context, requestID string, spec *trainingv1.TrainingSpec) (*trainingv1.Job, bool, error) {
	now := s.now()
	id := newID(now)
	job := &trainingv1.Job{
		JobId:      id,
		RequestId:  requestID,
		Spec:       spec,
		State:      trainingv1.JobState_JOB_STATE_PENDING,
		CreateTime: timestamppb.New(now),
		ModelName:  spec.GetModelName(),
		Progress: &trainingv1.JobProgress{JobId: id, State: trainingv1.JobState_JOB_STATE_PENDING,
			UpdateTime: timestamppb.New(now), Sequence: 1},
	}
	val, err := proto.Marshal(job)
	if err != nil {
		return nil, false, fmt.Errorf("creating a job: %w", err)
	}
	var existing *trainingv1.Job
	for attempt := 0; existing == nil; attempt++ {
		resp, err := s.etcd.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(requestKey(requestID)), "=", 0)).
			Then(clientv3.OpPut(requestKey(requestID), id), clientv3.OpPut(jobKey(id), string(val)), clientv3.OpPut(queueKey(id), spec.GetModelName())).
			Else(clientv3.OpGet(requestKey(requestID))).
			Commit()
		if err != nil {
			return nil, false, fmt.Errorf("creating a job: %w", err)
		}
		if resp.Succeeded {
			return job, true, nil
		}
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) > 0 {
			existing, _, err = s.Get(ctx, string(kvs[0].Value))
		}
		switch {
		case err == nil && existing != nil:
		case (len(kvs) == 0 || errors.Is(err, fault.ErrNotFound)) && attempt < 2:
			// Pruned between the two reads, with its request key: the
			// request id is free again.
			existing = nil
		case err != nil:
			return nil, false, err
		default:
			return nil, false, errors.New("creating a job: the request's record vanished")
		}
	}
	if !proto.Equal(existing.GetSpec(), spec) {
		return nil, false, &fault.Coded{Kind: fault.ErrAlreadyExists, Reason: "REQUEST_ID_REUSED",
			Message:  fmt.Sprintf("request id %q already created job %s with a different spec", requestID, existing.GetJobId()),
			Metadata: map[string]string{"job_id": existing.GetJobId()}}
	}
	return existing, false, nil
}

// Get returns a job and its record's etcd modification revision.
func (s *Store) Get(ctx context.Context, id string) (*trainingv1.Job, int64, error) {
	if !validID(id) {
		return nil, 0, fault.Invalid("job_id", "must be a job id as StartTraining returns it")
	}
	resp, err := s.etcd.Get(ctx, jobKey(id))
	if err != nil {
		return nil, 0, fmt.Errorf("reading job %s: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, fault.New(fault.ErrNotFound, "JOB_NOT_FOUND", "no job %s", fault.Quote(id))
	}
	job := &trainingv1.Job{}
	if err := proto.Unmarshal(resp.Kvs[0].Value, job); err != nil {
		return nil, 0, fmt.Errorf("reading job %s: %w", id, err)
	}
	return job, resp.Kvs[0].ModRevision, nil
}

// ListOptions select jobs.
type ListOptions struct {
	// PageSize bounds the page; Token is the previous page's next token.
	PageSize int
	Token    string
	// States and Model filter; empty means any.
	States []trainingv1.JobState
	Model  string
}

// List returns a page of jobs, newest first, and the next page's token ("" at the end).
func (s *Store) List(ctx context.Context, o ListOptions) ([]*trainingv1.Job, string, error) {
	if o.Token != "" && !validID(o.Token) {
		return nil, "", fault.Invalid("page_token", "not a token of a previous page")
	}
	end := clientv3.GetPrefixRangeEnd(JobsPrefix)
	if o.Token != "" {
		end = jobKey(o.Token)
	}
	var out []*trainingv1.Job
	for {
		resp, err := s.etcd.Get(ctx, JobsPrefix, clientv3.WithRange(end),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(int64(max(o.PageSize, 50))))
		if err != nil {
			return nil, "", fmt.Errorf("listing jobs: %w", err)
		}
		for i, kv := range resp.Kvs {
			end = string(kv.Key)
			job := &trainingv1.Job{}
			if err := proto.Unmarshal(kv.Value, job); err != nil {
				return nil, "", fmt.Errorf("listing jobs: %s: %w", kv.Key, err)
			}
			if len(o.States) > 0 && !slices.Contains(o.States, job.GetState()) || o.Model != "" && job.GetModelName() != o.Model {
				continue
			}
			out = append(out, job)
			if len(out) == o.PageSize {
				if i < len(resp.Kvs)-1 || resp.More {
					return out, job.GetJobId(), nil
				}
				return out, "", nil
			}
		}
		if !resp.More {
			return out, "", nil
		}
	}
}

// Cancel asks a job to stop: a job that has not started is CANCELLED at once; a running one
// moves to CANCELLING, and its replica stops it. A job that has ended is returned as it is.
//
// A running job's replica rewrites the record as it makes progress, so each attempt takes the
// record as a failed write returns it rather than reading it again: one round trip in which the
// record can change, not three.
func (s *Store) Cancel(ctx context.Context, id, reason string) (*trainingv1.Job, error) {
	job, rev, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	// current decodes the record a failed transaction read back.
	current := func(kvs []*mvccpb.KeyValue) error {
		if len(kvs) == 0 {
			return fault.New(fault.ErrNotFound, "JOB_NOT_FOUND", "no job %s", fault.Quote(id))
		}
		job = &trainingv1.Job{}
		if err := proto.Unmarshal(kvs[0].Value, job); err != nil {
			return fmt.Errorf("cancelling job %s: %w", id, err)
		}
		rev = kvs[0].ModRevision
		return nil
	}
	for {
		if terminal(job.GetState()) || job.GetState() == trainingv1.JobState_JOB_STATE_CANCELLING {
			return job, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		now := s.now()
		text := "cancellation requested"
		if reason != "" {
			text += ": " + reason
		}
		asked := proto.Clone(job).(*trainingv1.Job)
		asked.Messages = append(asked.Messages, &trainingv1.JobMessage{Time: timestamppb.New(now),
			Severity: trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_INFO, Code: "JOB_CANCEL_REQUESTED", Text: text})
		// Nobody holds the job: cancel it here, in one step.
		unheld := proto.Clone(asked).(*trainingv1.Job)
		finish(unheld, trainingv1.JobState_JOB_STATE_CANCELLED, now)
		val, err := proto.Marshal(unheld)
		if err != nil {
			return nil, err
		}
		resp, err := s.etcd.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(jobKey(id)), "=", rev),
				clientv3.Compare(clientv3.CreateRevision(lockKey(id)), "=", 0)).
			Then(clientv3.OpPut(jobKey(id), string(val)), clientv3.OpDelete(queueKey(id))).
			Else(clientv3.OpGet(jobKey(id))).
			Commit()
		if err != nil {
			return nil, fmt.Errorf("cancelling job %s: %w", id, err)
		}
		if resp.Succeeded {
			return unheld, nil
		}
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) == 0 || kvs[0].ModRevision != rev {
			if err := current(kvs); err != nil {
				return nil, err
			}
			continue // the record changed: look at it again
		}
		// A replica holds it: ask it to stop.
		asked.State = trainingv1.JobState_JOB_STATE_CANCELLING
		asked.Progress.State = asked.State
		bump(asked, now)
		if val, err = proto.Marshal(asked); err != nil {
			return nil, err
		}
		resp, err = s.etcd.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(jobKey(id)), "=", rev)).
			Then(clientv3.OpPut(jobKey(id), string(val))).
			Else(clientv3.OpGet(jobKey(id))).
			Commit()
		if err != nil {
			return nil, fmt.Errorf("cancelling job %s: %w", id, err)
		}
		if resp.Succeeded {
			return asked, nil
		}
		if err := current(resp.Responses[0].GetResponseRange().GetKvs()); err != nil {
			return nil, err
		}
	}
}

// Prune deletes the records of jobs that ended before cutoff, with their
// request keys, and returns how many it deleted. A job that has not ended
// is kept whatever its age. Each deletion is conditional on the record
// being unchanged, so replicas may prune at the same time. Once a job is
// pruned, its request id may create a new job.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (int, error) {
	start, end := JobsPrefix, clientv3.GetPrefixRangeEnd(JobsPrefix)
	pruned := 0
	var unreadable []error // reported at the end: the others are pruned all the same
	for {
		resp, err := s.etcd.Get(ctx, start, clientv3.WithRange(end), clientv3.WithLimit(500))
		if err != nil {
			return pruned, fmt.Errorf("pruning jobs: %w", err)
		}
		for _, kv := range resp.Kvs {
			job := &trainingv1.Job{}
			if err := proto.Unmarshal(kv.Value, job); err != nil {
				unreadable = append(unreadable, fmt.Errorf("pruning jobs: %s: %w", kv.Key, err))
				continue
			}
			if !terminal(job.GetState()) || job.GetEndTime() == nil || !job.GetEndTime().AsTime().Before(cutoff) {
				continue
			}
			ops := []clientv3.Op{clientv3.OpDelete(string(kv.Key))}
			if r := job.GetRequestId(); r != "" {
				// The request key names this job unless a later job took it.
				ops = append(ops, clientv3.OpTxn(
					[]clientv3.Cmp{clientv3.Compare(clientv3.Value(requestKey(r)), "=", job.GetJobId())},
					[]clientv3.Op{clientv3.OpDelete(requestKey(r))}, nil))
			}
			txn, err := s.etcd.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)).Then(ops...).Commit()
			if err != nil {
				return pruned, fmt.Errorf("pruning job %s: %w", job.GetJobId(), err)
			}
			if txn.Succeeded {
				pruned++
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return pruned, errors.Join(unreadable...)
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// PruneEvery prunes the jobs that ended more than retention ago, now and
// then every interval, until ctx ends. Failures are logged and tried again
// at the next interval.
func (s *Store) PruneEvery(ctx context.Context, retention, interval time.Duration, logger *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.Prune(ctx, s.now().Add(-retention))
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Warn("pruning ended jobs", slog.Any("error", err))
		case n > 0:
			logger.Info("pruned ended jobs", slog.Int("jobs", n), slog.Duration("retention", retention))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// bump marks a job record changed.
func bump(job *trainingv1.Job, now time.Time) {
	p := job.GetProgress()
	if p == nil {
		p = &trainingv1.JobProgress{JobId: job.GetJobId()}
		job.Progress = p
	}
	p.Sequence++
	p.UpdateTime = timestamppb.New(now)
	p.State = job.GetState()
	if st := job.GetStartTime(); st != nil {
		p.Elapsed = durationSince(st.AsTime(), now)
	}
}

// finish moves a job to a terminal state.
func finish(job *trainingv1.Job, state trainingv1.JobState, now time.Time) {
	job.State = state
	job.EndTime = timestamppb.New(now)
	if job.Progress == nil {
		job.Progress = &trainingv1.JobProgress{JobId: job.GetJobId()}
	}
	job.Progress.Stage = trainingv1.JobStage_JOB_STAGE_UNSPECIFIED
	job.Progress.Fold, job.Progress.CandidateIndex = 0, 0
	if state == trainingv1.JobState_JOB_STATE_SUCCEEDED {
		job.Progress.Percent = 100
	}
	bump(job, now)
	if st := job.GetStartTime(); st != nil {
		job.Progress.Elapsed = durationSince(st.AsTime(), now)
	}
}

func durationSince(start, now time.Time) *durationpb.Duration {
	return durationpb.New(max(now.Sub(start), 0))
}

// Watch sends the job's record each time it changes, starting with its current state, and
// closes the channel after a terminal state or when ctx is done. A read error ends it early;
// Err, after the channel is closed, says why.
func (s *Store) Watch(ctx context.Context, id string) (*Watcher, error) {
	job, rev, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	w := &Watcher{C: make(chan *trainingv1.Job, 1)}
	w.C <- job
	if terminal(job.GetState()) {
		close(w.C)
		return w, nil
	}
	go func() {
		defer close(w.C)
		for ctx.Err() == nil {
			wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
			ch := s.etcd.Watch(wctx, jobKey(id), clientv3.WithRev(rev+1))
			for resp := range ch {
				if err := resp.Err(); err != nil {
					break
				}
				for _, ev := range resp.Events {
					if ev.Type != clientv3.EventTypePut {
						continue
					}
					j := &trainingv1.Job{}
					if err := proto.Unmarshal(ev.Kv.Value, j); err != nil {
						continue
					}
					rev = ev.Kv.ModRevision
					select {
					case w.C <- j:
					case <-ctx.Done():
						cancel()
						return
					}
					if terminal(j.GetState()) {
						cancel()
						return
					}
				}
			}
			cancel()
			// The watch broke (compaction, lost leader): read the record again and go on.
			j, r, err := s.Get(ctx, id)
			if err != nil {
				w.err = err
				return
			}
			if r > rev {
				rev = r
				select {
				case w.C <- j:
				case <-ctx.Done():
					return
				}
				if terminal(j.GetState()) {
					return
				}
			}
		}
	}()
	return w, nil
}

// Watcher delivers a job's records.
type Watcher struct {
	// C receives the records.
	C   chan *trainingv1.Job
	err error
}

// Err returns why the watch ended early, after C is closed.
func (w *Watcher) Err() error { return w.err }
