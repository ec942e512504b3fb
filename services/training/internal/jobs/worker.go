package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/services/training/internal/trainer"
)

// Defaults of a Worker.
const (
	DefaultLeaseTTL         = 10 * time.Second
	DefaultProgressInterval = 250 * time.Millisecond
	DefaultScanInterval     = 2 * time.Second
	// maxJobRecordBytes bounds a job record: beyond it the stored leaderboard loses its
	// per-fold results.
	maxJobRecordBytes = 1 << 20
)

// Why a job's context was cancelled.
var (
	errCancelled = errors.New("the job was cancelled")
	errLeaseLost = errors.New("the replica lost the job's lease")
	errShutdown  = errors.New("the replica is shutting down")
	errTimeout   = errors.New("the job ran out of time")
)

// Runner runs one job to its end. trainer.Trainer is the Runner of the service.
type Runner interface {
	Run(ctx context.Context, job *trainingv1.Job, rep trainer.Reporter) (*trainer.Outcome, error)
}

// Worker takes jobs from the queue, under this replica's etcd lease, and runs them.
type Worker struct {
	store    *Store
	etcd     *clientv3.Client
	runner   Runner
	name     string
	ttl      time.Duration
	capacity int
	interval time.Duration
	scanning time.Duration
	logger   *slog.Logger

	mu      sync.Mutex
	running map[string]context.CancelCauseFunc
	freed   chan struct{}
}

// WorkerOption configures a Worker.
type WorkerOption func(*Worker)

// WithName sets the replica's name in job records (Job.worker); the default is "training".
func WithName(name string) WorkerOption { return func(w *Worker) { w.name = name } }

// WithLeaseTTL sets the lease the replica holds its jobs under: a replica that dies loses
// its jobs to others after at most this long. The default is DefaultLeaseTTL; etcd rounds it
// up to whole seconds.
func WithLeaseTTL(d time.Duration) WorkerOption { return func(w *Worker) { w.ttl = d } }

// WithCapacity sets how many jobs the replica runs at once; the default is 1.
func WithCapacity(n int) WorkerOption { return func(w *Worker) { w.capacity = n } }

// WithProgressInterval sets how often a running job's progress is written; the default is
// DefaultProgressInterval. Stage changes and messages are written at once.
func WithProgressInterval(d time.Duration) WorkerOption { return func(w *Worker) { w.interval = d } }

// WithScanInterval sets how often the queue is scanned besides watching it; the default is
// DefaultScanInterval.
func WithScanInterval(d time.Duration) WorkerOption { return func(w *Worker) { w.scanning = d } }

// WithLogger sets the logger; the default is slog.Default().
func WithLogger(l *slog.Logger) WorkerOption { return func(w *Worker) { w.logger = l } }

// NewWorker returns a worker that runs the jobs of store with runner.
func NewWorker(store *Store, runner Runner, opts ...WorkerOption) *Worker {
	w := &Worker{store: store, etcd: store.etcd, runner: runner, name: "training", ttl: DefaultLeaseTTL, capacity: 1,
		interval: DefaultProgressInterval, scanning: DefaultScanInterval, logger: slog.Default(),
		running: map[string]context.CancelCauseFunc{}, freed: make(chan struct{}, 1)}
	for _, o := range opts {
		o(w)
	}
	return w
}

// Run takes and runs jobs until ctx is done. Then it stops its jobs, hands them back to the
// queue for other replicas (state PENDING) and returns.
func (w *Worker) Run(ctx context.Context) error {
	ttl := max(int(math.Ceil(w.ttl.Seconds())), 1)
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(w.etcd, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			w.logger.Warn("creating the job lease", "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		w.serve(ctx, sess)
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_, _ = w.etcd.Revoke(cctx, sess.Lease())
		cancel()
		sess.Orphan()
	}
	return nil
}

// serve runs jobs under one lease until ctx is done or the lease is lost.
func (w *Worker) serve(ctx context.Context, sess *concurrency.Session) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	ticker := time.NewTicker(w.scanning)
	defer ticker.Stop()
	watch := w.etcd.Watch(clientv3.WithRequireLeader(sctx), watchPrefix, clientv3.WithPrefix())
	w.scan(sctx, sess, &wg)
	for {
		select {
		case <-ctx.Done():
			w.stopAll(errShutdown)
			return
		case <-sess.Done():
			w.logger.Warn("lost the job lease; stopping this replica's jobs")
			w.stopAll(errLeaseLost)
			return
		case resp, ok := <-watch:
			if !ok || resp.Err() != nil {
				select {
				case <-ctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
				watch = w.etcd.Watch(clientv3.WithRequireLeader(sctx), watchPrefix, clientv3.WithPrefix())
				continue
			}
			for _, ev := range resp.Events {
				key := string(ev.Kv.Key)
				if ev.Type == clientv3.EventTypePut && strings.HasPrefix(key, queuePrefix) ||
					ev.Type == clientv3.EventTypeDelete && strings.HasPrefix(key, locksPrefix) {
					w.scan(sctx, sess, &wg)
					break
				}
			}
		case <-ticker.C:
			w.scan(sctx, sess, &wg)
		case <-w.freed:
			w.scan(sctx, sess, &wg)
		}
	}
}

func (w *Worker) stopAll(cause error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, cancel := range w.running {
		cancel(cause)
	}
}

// scan takes queued jobs while this replica has room, in fair order (fairOrder): the jobs of
// the group (model name) served least recently first, so that the jobs of different groups
// interleave and a short job does not wait behind another group's whole backlog.
func (w *Worker) scan(ctx context.Context, sess *concurrency.Session, wg *sync.WaitGroup) {
	w.mu.Lock()
	free := w.capacity - len(w.running)
	w.mu.Unlock()
	if free <= 0 || ctx.Err() != nil {
		return
	}
	// One snapshot of the queue, the locks and the groups' last starts.
	resp, err := w.etcd.Txn(ctx).Then(
		clientv3.OpGet(queuePrefix, clientv3.WithPrefix()),
		clientv3.OpGet(locksPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		clientv3.OpGet(startedPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		if ctx.Err() == nil {
			w.logger.Warn("scanning the job queue", "error", err)
		}
		return
	}
	locked := map[string]bool{}
	for _, kv := range resp.Responses[1].GetResponseRange().GetKvs() {
		locked[strings.TrimPrefix(string(kv.Key), locksPrefix)] = true
	}
	lastStart := map[string]int64{}
	for _, kv := range resp.Responses[2].GetResponseRange().GetKvs() {
		lastStart[strings.TrimPrefix(string(kv.Key), startedPrefix)] = kv.ModRevision
	}
	var pending []queued
	for _, kv := range resp.Responses[0].GetResponseRange().GetKvs() {
		id := strings.TrimPrefix(string(kv.Key), queuePrefix)
		w.mu.Lock()
		_, mine := w.running[id]
		w.mu.Unlock()
		if !mine && !locked[id] {
			pending = append(pending, queued{id: id, group: string(kv.Value)})
		}
	}
	for _, q := range fairOrder(pending, lastStart) {
		id := q.id
		tr, err := w.etcd.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(lockKey(id)), "=", 0)).
			Then(clientv3.OpPut(lockKey(id), w.name, clientv3.WithLease(sess.Lease())), clientv3.OpPut(startedKey(q.group), id)).
			Commit()
		if err != nil || !tr.Succeeded {
			continue
		}
		// Only the worker stops a job, with a cause (shutdown, lost lease, cancellation).
		jctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
		w.mu.Lock()
		w.running[id] = cancel
		w.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				cancel(nil)
				w.mu.Lock()
				delete(w.running, id)
				w.mu.Unlock()
				select {
				case w.freed <- struct{}{}:
				default:
				}
			}()
			w.runJob(jctx, cancel, id, tr.Header.Revision)
		}()
		if free--; free == 0 {
			return
		}
	}
}

// queued is a job waiting in the queue, with its fairness group.
type queued struct {
	id, group string
}

// fairOrder orders waiting jobs for taking: round-robin over their groups, the group whose
// last job was taken longest ago first (lastStart holds the etcd revisions of the groups'
// last takes; a group never served comes first), ties by the group's oldest job; within a
// group, oldest job first. Job ids sort by creation time.
func fairOrder(pending []queued, lastStart map[string]int64) []queued {
	byGroup := map[string][]queued{}
	var groups []string
	for _, q := range pending {
		if byGroup[q.group] == nil {
			groups = append(groups, q.group)
		}
		byGroup[q.group] = append(byGroup[q.group], q)
	}
	for _, g := range groups {
		slices.SortFunc(byGroup[g], func(a, b queued) int { return strings.Compare(a.id, b.id) })
	}
	slices.SortFunc(groups, func(a, b string) int {
		if lastStart[a] != lastStart[b] {
			return cmp.Compare(lastStart[a], lastStart[b])
		}
		return strings.Compare(byGroup[a][0].id, byGroup[b][0].id)
	})
	out := make([]queued, 0, len(pending))
	for round := 0; len(out) < len(pending); round++ {
		for _, g := range groups {
			if round < len(byGroup[g]) {
				out = append(out, byGroup[g][round])
			}
		}
	}
	return out
}

// runJob runs a job this replica has just locked (its lock key created at lockRev).
func (w *Worker) runJob(ctx context.Context, cancel context.CancelCauseFunc, id string, lockRev int64) {
	log := w.logger.With("job_id", id)
	job, rev, err := w.store.Get(ctx, id)
	if err != nil {
		log.Warn("reading a taken job", "error", err)
		w.dropLock(id, lockRev)
		return
	}
	p := &progress{w: w, id: id, lockRev: lockRev, job: job, rev: rev, flushed: len(job.GetMessages()),
		urgent: make(chan struct{}, 1), cancel: cancel}
	now := w.store.now()
	switch {
	case terminal(job.GetState()):
		_ = p.commit(context.WithoutCancel(ctx), true)
		return
	case job.GetState() == trainingv1.JobState_JOB_STATE_CANCELLING:
		p.end(context.WithoutCancel(ctx), trainingv1.JobState_JOB_STATE_CANCELLED, nil, nil)
		return
	}
	job.State = trainingv1.JobState_JOB_STATE_RUNNING
	job.Worker = w.name
	job.Attempt++
	if job.StartTime == nil {
		job.StartTime = timestamppb.New(now)
	}
	if job.Attempt > 1 {
		p.add(&trainingv1.JobMessage{Time: timestamppb.New(now), Severity: trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_WARNING,
			Code: "JOB_TAKEN_OVER", Text: fmt.Sprintf("replica %s took the job over (attempt %d) and runs it again from the start", w.name, job.Attempt)})
	}
	if err := p.commit(ctx, false); err != nil {
		log.Warn("starting a job", "error", err)
		return
	}
	log.Info("running a training job", "attempt", job.GetAttempt(), "model", job.GetModelName())
	if t := job.GetSpec().GetResources().GetTimeout(); t != nil {
		var stop context.CancelFunc
		ctx, stop = context.WithDeadlineCause(ctx, job.GetStartTime().AsTime().Add(t.AsDuration()), errTimeout)
		defer stop()
	}
	var bg sync.WaitGroup
	bgCtx, stopBG := context.WithCancel(ctx)
	bg.Add(2)
	go func() { defer bg.Done(); p.flusher(bgCtx) }()
	go func() { defer bg.Done(); w.watchCancel(bgCtx, cancel, id, p.revision()) }()
	out, err := w.runner.Run(ctx, proto.Clone(job).(*trainingv1.Job), p)
	stopBG()
	bg.Wait()
	final := context.WithoutCancel(ctx)
	cause := context.Cause(ctx)
	switch {
	case err == nil:
		p.end(final, trainingv1.JobState_JOB_STATE_SUCCEEDED, out, nil)
		log.Info("training job succeeded", "model", out.Version.GetModelName(), "version", out.Version.GetVersion())
	case errors.Is(cause, errLeaseLost):
		log.Warn("stopped a job whose lease was lost; another replica takes it over")
	case errors.Is(cause, errShutdown):
		p.release(final)
		log.Info("handed a job back to the queue on shutdown")
	case errors.Is(cause, errCancelled):
		p.end(final, trainingv1.JobState_JOB_STATE_CANCELLED, nil, nil)
		log.Info("training job cancelled")
	case errors.Is(cause, errTimeout):
		p.end(final, trainingv1.JobState_JOB_STATE_FAILED, nil, &commonv1.Problem{Reason: trainer.ReasonTimeout,
			Description: fmt.Sprintf("the job ran longer than its timeout of %v", job.GetSpec().GetResources().GetTimeout().AsDuration())})
		log.Info("training job timed out")
	default:
		p.end(final, trainingv1.JobState_JOB_STATE_FAILED, nil, trainer.ErrorProblem(err))
		log.Info("training job failed", "error", err)
	}
}

// watchCancel cancels the job's context when its record moves to CANCELLING.
func (w *Worker) watchCancel(ctx context.Context, cancel context.CancelCauseFunc, id string, rev int64) {
	for ctx.Err() == nil {
		for resp := range w.etcd.Watch(clientv3.WithRequireLeader(ctx), jobKey(id), clientv3.WithRev(rev+1)) {
			if resp.Err() != nil {
				break
			}
			for _, ev := range resp.Events {
				rev = ev.Kv.ModRevision
				j := &trainingv1.Job{}
				if ev.Type == clientv3.EventTypePut && proto.Unmarshal(ev.Kv.Value, j) == nil &&
					j.GetState() == trainingv1.JobState_JOB_STATE_CANCELLING {
					cancel(errCancelled)
					return
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// dropLock deletes this replica's lock of a job.
func (w *Worker) dropLock(id string, lockRev int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = w.etcd.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(lockKey(id)), "=", lockRev)).
		Then(clientv3.OpDelete(lockKey(id))).Commit()
}

// progress is a running job's record, written to etcd as the job goes; it implements
// trainer.Reporter. Writes are fenced by the job's lock: a replica that lost the lock
// writes nothing more.
type progress struct {
	w       *Worker
	id      string
	lockRev int64
	cancel  context.CancelCauseFunc
	urgent  chan struct{}

	mu      sync.Mutex
	job     *trainingv1.Job
	rev     int64 // the record's modification revision as last read or written
	flushed int   // messages in the stored record
	gen     int   // changes made
	written int   // gen at the last write
	lost    bool
}

// Stage implements trainer.Reporter.
func (p *progress) Stage(s trainingv1.JobStage) {
	p.mu.Lock()
	p.progress().Stage = s
	p.gen++
	p.mu.Unlock()
	p.kick()
}

// Update implements trainer.Reporter.
func (p *progress) Update(f func(*trainingv1.JobProgress)) {
	p.mu.Lock()
	f(p.progress())
	p.gen++
	p.mu.Unlock()
}

// Message implements trainer.Reporter.
func (p *progress) Message(m *trainingv1.JobMessage) {
	p.add(m)
	p.kick()
}

func (p *progress) add(m *trainingv1.JobMessage) {
	p.mu.Lock()
	if m.Stage == trainingv1.JobStage_JOB_STAGE_UNSPECIFIED {
		m.Stage = p.progress().GetStage()
	}
	p.job.Messages = append(p.job.Messages, m)
	p.gen++
	p.mu.Unlock()
}

func (p *progress) progress() *trainingv1.JobProgress {
	if p.job.Progress == nil {
		p.job.Progress = &trainingv1.JobProgress{JobId: p.id}
	}
	return p.job.Progress
}

func (p *progress) revision() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rev
}

func (p *progress) kick() {
	select {
	case p.urgent <- struct{}{}:
	default:
	}
}

// flusher writes the record when it changed: at once after a stage change or a message,
// else every progress interval.
func (p *progress) flusher(ctx context.Context) {
	t := time.NewTicker(p.w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.urgent:
		case <-t.C:
		}
		p.mu.Lock()
		dirty := p.gen != p.written
		p.mu.Unlock()
		if dirty {
			if err := p.commit(ctx, false); err != nil && ctx.Err() == nil {
				p.w.logger.Warn("writing a job's progress", "job_id", p.id, "error", err)
			}
		}
	}
}

// commit writes the record, fenced by the lock; with release it also deletes the lock (and,
// for a terminal state, the queue entry). A record changed by someone else (CancelJob) is
// merged and the write retried.
func (p *progress) commit(ctx context.Context, release bool) error {
	for attempt := 0; attempt < 20; attempt++ {
		p.mu.Lock()
		if p.lost {
			p.mu.Unlock()
			return errLeaseLost
		}
		bump(p.job, p.w.store.now())
		rec := proto.Clone(p.job).(*trainingv1.Job)
		gen, rev, msgs := p.gen, p.rev, len(p.job.Messages)
		p.mu.Unlock()
		rec.Progress.Messages = nil
		fitRecord(rec)
		val, err := proto.Marshal(rec)
		if err != nil {
			return fmt.Errorf("writing job %s: %w", p.id, err)
		}
		ops := []clientv3.Op{clientv3.OpPut(jobKey(p.id), string(val))}
		if release {
			ops = append(ops, clientv3.OpDelete(lockKey(p.id)))
			if terminal(rec.GetState()) {
				ops = append(ops, clientv3.OpDelete(queueKey(p.id)))
			}
		}
		resp, err := p.w.etcd.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(lockKey(p.id)), "=", p.lockRev),
				clientv3.Compare(clientv3.ModRevision(jobKey(p.id)), "=", rev)).
			Then(ops...).
			Else(clientv3.OpGet(lockKey(p.id)), clientv3.OpGet(jobKey(p.id))).
			Commit()
		if err != nil {
			return fmt.Errorf("writing job %s: %w", p.id, err)
		}
		if resp.Succeeded {
			p.mu.Lock()
			p.rev, p.written, p.flushed = resp.Header.Revision, gen, msgs
			p.mu.Unlock()
			return nil
		}
		lock := resp.Responses[0].GetResponseRange().GetKvs()
		if len(lock) == 0 || lock[0].CreateRevision != p.lockRev {
			p.mu.Lock()
			p.lost = true
			p.mu.Unlock()
			p.cancel(errLeaseLost)
			return errLeaseLost
		}
		kvs := resp.Responses[1].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			return fmt.Errorf("writing job %s: the record vanished", p.id)
		}
		stored := &trainingv1.Job{}
		if err := proto.Unmarshal(kvs[0].Value, stored); err != nil {
			return fmt.Errorf("writing job %s: %w", p.id, err)
		}
		p.merge(stored, kvs[0].ModRevision)
	}
	return fmt.Errorf("writing job %s: the record kept changing", p.id)
}

// merge takes in what others wrote to the record since this replica's last write: a
// cancellation request and its message.
func (p *progress) merge(stored *trainingv1.Job, rev int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.flushed <= len(stored.GetMessages()) {
		foreign := slices.Clone(stored.GetMessages()[p.flushed:])
		local := p.job.Messages[p.flushed:]
		p.job.Messages = append(append(slices.Clone(p.job.Messages[:p.flushed]), foreign...), local...)
		p.flushed += len(foreign)
	}
	if seq := stored.GetProgress().GetSequence(); seq > p.progress().GetSequence() {
		p.progress().Sequence = seq
	}
	cancelling := stored.GetState() == trainingv1.JobState_JOB_STATE_CANCELLING && !terminal(p.job.GetState())
	if cancelling {
		p.job.State = trainingv1.JobState_JOB_STATE_CANCELLING
	}
	p.rev = rev
	if cancelling {
		go p.cancel(errCancelled)
	}
}

// end writes a terminal state and releases the job.
func (p *progress) end(ctx context.Context, state trainingv1.JobState, out *trainer.Outcome, problem *commonv1.Problem) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	now := p.w.store.now()
	p.mu.Lock()
	finish(p.job, state, now)
	p.job.Progress.Sequence-- // commit bumps it again
	switch state {
	case trainingv1.JobState_JOB_STATE_SUCCEEDED:
		p.job.ModelVersion = out.Version.GetVersion()
		p.job.Metrics = out.Metrics
	case trainingv1.JobState_JOB_STATE_FAILED:
		p.job.Error = problem
		p.job.Messages = append(p.job.Messages, &trainingv1.JobMessage{Time: timestamppb.New(now),
			Severity: trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_ERROR, Code: "JOB_FAILED",
			Text: problem.GetReason() + ": " + problem.GetDescription()})
	case trainingv1.JobState_JOB_STATE_CANCELLED:
		p.job.Messages = append(p.job.Messages, &trainingv1.JobMessage{Time: timestamppb.New(now),
			Severity: trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_INFO, Code: "JOB_CANCELLED", Text: "the job stopped; no model was registered"})
	}
	p.gen++
	p.mu.Unlock()
	if err := p.commit(ctx, true); err != nil {
		p.w.logger.Warn("writing a job's end", "job_id", p.id, "state", state, "error", err)
	}
}

// release hands a job back to the queue: PENDING, lock deleted.
func (p *progress) release(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p.mu.Lock()
	if p.job.State == trainingv1.JobState_JOB_STATE_RUNNING {
		p.job.State = trainingv1.JobState_JOB_STATE_PENDING
	}
	p.job.Messages = append(p.job.Messages, &trainingv1.JobMessage{Time: timestamppb.Now(),
		Severity: trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_INFO, Code: "JOB_RELEASED",
		Text: fmt.Sprintf("replica %s stopped and handed the job back to the queue", p.w.name)})
	p.progress().Stage = trainingv1.JobStage_JOB_STAGE_UNSPECIFIED
	p.gen++
	p.mu.Unlock()
	if err := p.commit(ctx, true); err != nil {
		p.w.logger.Warn("handing a job back", "job_id", p.id, "error", err)
	}
}

// fitRecord trims a job record's leaderboard until the record fits in an etcd value.
func fitRecord(j *trainingv1.Job) {
	if proto.Size(j) <= maxJobRecordBytes {
		return
	}
	for _, e := range j.GetProgress().GetLeaderboard() {
		e.Folds = nil
	}
	if lb := j.GetProgress().GetLeaderboard(); proto.Size(j) > maxJobRecordBytes && len(lb) > 100 {
		j.Progress.Leaderboard = lb[:100]
	}
}
