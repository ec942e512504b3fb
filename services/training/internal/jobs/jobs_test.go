package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/services/training/internal/jobs"
	"github.com/bullseye-ml/bullseye/services/training/internal/trainer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, embeddedtest.GoleakOptions()...) }

func spec(model string) *trainingv1.TrainingSpec {
	return &trainingv1.TrainingSpec{ModelName: model, Task: modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION}
}

func TestCreateAndList(t *testing.T) {
	ctx := context.Background()
	s := jobs.NewStore(embeddedtest.Etcd(t))
	var ids []string
	for i := range 7 {
		model := "a"
		if i%2 == 1 {
			model = "b"
		}
		j, created, err := s.Create(ctx, fmt.Sprintf("req-%d", i), spec(model))
		if err != nil || !created {
			t.Fatal(err, created)
		}
		ids = append(ids, j.GetJobId())
		time.Sleep(2 * time.Millisecond) // distinct creation times
	}
	j, created, err := s.Create(ctx, "req-3", spec("b"))
	if err != nil || created || j.GetJobId() != ids[3] {
		t.Fatalf("repeat: %v, created %v, %v", j.GetJobId(), created, err)
	}
	if _, _, err := s.Create(ctx, "req-3", spec("c")); !errors.Is(err, fault.ErrAlreadyExists) {
		t.Fatalf("reused request id: %v", err)
	}
	var got []string
	token := ""
	for {
		page, next, err := s.List(ctx, jobs.ListOptions{PageSize: 3, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range page {
			got = append(got, j.GetJobId())
		}
		if next == "" {
			break
		}
		token = next
	}
	for i := range ids {
		if got[i] != ids[len(ids)-1-i] {
			t.Fatalf("listed %v, want newest first %v", got, ids)
		}
	}
	page, _, err := s.List(ctx, jobs.ListOptions{PageSize: 10, Model: "b"})
	if err != nil || len(page) != 3 {
		t.Errorf("jobs of model b: %d, %v; want 3", len(page), err)
	}
	// Nobody holds the jobs: cancelling one ends it at once.
	c, err := s.Cancel(ctx, ids[0], "test")
	if err != nil || c.GetState() != trainingv1.JobState_JOB_STATE_CANCELLED || c.GetEndTime() == nil {
		t.Errorf("Cancel: %v, %v", c.GetState(), err)
	}
}

// runner is a job that reports progress until released, or until its context ends.
type runner struct {
	mu      sync.Mutex
	started []string
	release chan struct{}
	stopped chan error
}

func (r *runner) Run(ctx context.Context, job *trainingv1.Job, rep trainer.Reporter) (*trainer.Outcome, error) {
	r.mu.Lock()
	r.started = append(r.started, job.GetWorker())
	r.mu.Unlock()
	rep.Stage(trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.stopped <- context.Cause(ctx)
			return nil, ctx.Err()
		case <-r.release:
			return &trainer.Outcome{Version: &modelv1.ModelVersion{Version: 7}}, nil
		case <-t.C:
			rep.Update(func(p *trainingv1.JobProgress) { p.Percent++ })
		}
	}
}

func waitFor(t *testing.T, s *jobs.Store, id string, cond func(*trainingv1.Job) bool) *trainingv1.Job {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		j, _, err := s.Get(context.Background(), id)
		if err == nil && cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: condition not met; last %v, %v", id, j.GetState(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLostLockStopsWriting takes a job's lock away from the replica running it, as a lease
// expiry would: the replica stops the job at its next fenced write, and the job is taken
// again (here by the same replica, the only one) and completes as attempt 2.
func TestLostLockStopsWriting(t *testing.T) {
	cli := embeddedtest.Etcd(t)
	s := jobs.NewStore(cli)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := &runner{release: make(chan struct{}), stopped: make(chan error, 2)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	a := jobs.NewWorker(s, r, jobs.WithName("a"), jobs.WithLeaseTTL(time.Second), jobs.WithProgressInterval(20*time.Millisecond),
		jobs.WithScanInterval(100*time.Millisecond), jobs.WithLogger(quiet))
	wg.Add(1)
	go func() { defer wg.Done(); _ = a.Run(ctx) }()
	job, _, err := s.Create(ctx, "r", spec("m"))
	if err != nil {
		t.Fatal(err)
	}
	id := job.GetJobId()
	waitFor(t, s, id, func(j *trainingv1.Job) bool { return j.GetProgress().GetPercent() > 2 })

	// The lock disappears, as when the lease expires.
	if _, err := cli.Delete(ctx, "bullseye/job-locks/"+id); err != nil {
		t.Fatal(err)
	}
	select {
	case cause := <-r.stopped:
		if cause == nil || cause.Error() != "the replica lost the job's lease" {
			t.Errorf("the job stopped with cause %v, want the lost lease", cause)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the replica kept running a job whose lock it lost")
	}
	// The job is taken again (by a, the only replica, with a new lock) and completes.
	close(r.release)
	done := waitFor(t, s, id, func(j *trainingv1.Job) bool { return jobs.Terminal(j.GetState()) })
	if done.GetState() != trainingv1.JobState_JOB_STATE_SUCCEEDED || done.GetAttempt() != 2 || done.GetModelVersion() != 7 {
		t.Errorf("job %v, attempt %d, version %d", done.GetState(), done.GetAttempt(), done.GetModelVersion())
	}
	if resp, err := cli.Get(ctx, "bullseye/job-", clientv3.WithPrefix(), clientv3.WithKeysOnly()); err != nil || len(resp.Kvs) != 1 {
		t.Errorf("keys left: %v, %v; want only the request", resp.Kvs, err)
	}
}

// TestPrune checks that only jobs that ended before the cutoff are pruned,
// with their request keys (the request id may then create a new job), and
// that a job that has not ended is kept whatever its age.
func TestPrune(t *testing.T) {
	ctx := context.Background()
	cli := embeddedtest.Etcd(t)
	s := jobs.NewStore(cli)
	// An unreadable record, sorting first, does not stop the pruning of the others.
	if _, err := cli.Put(ctx, jobs.JobsPrefix+"0-unreadable", "\xff not a job"); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 3 {
		j, _, err := s.Create(ctx, fmt.Sprintf("prune-%d", i), spec("m"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.GetJobId())
	}
	for _, id := range ids[:2] {
		if j, err := s.Cancel(ctx, id, "done with it"); err != nil || j.GetState() != trainingv1.JobState_JOB_STATE_CANCELLED {
			t.Fatalf("cancel %s: %v %v", id, j.GetState(), err)
		}
	}
	if n, err := s.Prune(ctx, time.Now().Add(-time.Hour)); n != 0 || err == nil || !strings.Contains(err.Error(), "0-unreadable") {
		t.Fatalf("pruning what ended before an hour ago: %d, %v; want none, and the unreadable record named", n, err)
	}
	if n, _ := s.Prune(ctx, time.Now().Add(time.Hour)); n != 2 {
		t.Fatalf("pruning what ended before an hour from now: %d; want the 2 cancelled", n)
	}
	if _, err := cli.Delete(ctx, jobs.JobsPrefix+"0-unreadable"); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[:2] {
		if _, _, err := s.Get(ctx, id); !errors.Is(err, fault.ErrNotFound) {
			t.Errorf("pruned job %s: %v, want not found", id, err)
		}
	}
	if j, _, err := s.Get(ctx, ids[2]); err != nil || j.GetState() != trainingv1.JobState_JOB_STATE_PENDING {
		t.Errorf("the pending job: %v, %v; want kept", j.GetState(), err)
	}
	listed, _, err := s.List(ctx, jobs.ListOptions{PageSize: 10})
	if err != nil || len(listed) != 1 || listed[0].GetJobId() != ids[2] {
		t.Errorf("List after pruning: %d jobs, %v; want only %s", len(listed), err, ids[2])
	}
	j, created, err := s.Create(ctx, "prune-0", spec("m"))
	if err != nil || !created || j.GetJobId() == ids[0] {
		t.Errorf("the pruned job's request id again: %v created %v, %v; want a new job", j.GetJobId(), created, err)
	}
	if n, err := s.Prune(ctx, time.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Errorf("pruning again: %d, %v; want nothing more", n, err)
	}
}

// gate is a job runner whose jobs run until the test releases them, recording the order in
// which the jobs started.
type gate struct {
	mu      sync.Mutex
	started []string
	release map[string]chan struct{}
	begun   chan string
}

func newGate() *gate { return &gate{release: map[string]chan struct{}{}, begun: make(chan string, 16)} }

func (g *gate) ch(id string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.release[id] == nil {
		g.release[id] = make(chan struct{})
	}
	return g.release[id]
}

func (g *gate) Run(ctx context.Context, job *trainingv1.Job, rep trainer.Reporter) (*trainer.Outcome, error) {
	g.mu.Lock()
	g.started = append(g.started, job.GetModelName())
	g.mu.Unlock()
	g.begun <- job.GetModelName()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-g.ch(job.GetJobId()):
		return &trainer.Outcome{Version: &modelv1.ModelVersion{Version: 1}}, nil
	}
}

// TestFairQueue runs a replica with room for one job: while model "long" runs, a second
// "long" job and then a "short" one wait. When the first ends, the short one, of the group
// not served yet, goes before the older job of the group just served.
func TestFairQueue(t *testing.T) {
	cli := embeddedtest.Etcd(t)
	s := jobs.NewStore(cli)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	g := newGate()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	w := jobs.NewWorker(s, g, jobs.WithName("a"), jobs.WithCapacity(1), jobs.WithProgressInterval(20*time.Millisecond),
		jobs.WithScanInterval(100*time.Millisecond), jobs.WithLogger(quiet))
	wg.Add(1)
	go func() { defer wg.Done(); _ = w.Run(ctx) }()
	create := func(req, model string) string {
		j, _, err := s.Create(ctx, req, spec(model))
		if err != nil {
			t.Fatal(err)
		}
		return j.GetJobId()
	}
	next := func() string {
		select {
		case m := <-g.begun:
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no job started within 10s")
			return ""
		}
	}
	first := create("l1", "long")
	if m := next(); m != "long" {
		t.Fatalf("first job: %s", m)
	}
	second := create("l2", "long")
	time.Sleep(5 * time.Millisecond)
	short := create("s", "short")
	time.Sleep(300 * time.Millisecond) // the replica, full, sees both and takes neither
	close(g.ch(first))
	if m := next(); m != "short" {
		t.Errorf("after the first long job, %q started; want the short one", m)
	}
	close(g.ch(short))
	if m := next(); m != "long" {
		t.Errorf("then %q started; want the second long job", m)
	}
	close(g.ch(second))
	waitFor(t, s, second, func(j *trainingv1.Job) bool { return jobs.Terminal(j.GetState()) })
}
