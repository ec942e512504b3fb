package training_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
)

// logisticGrid is logistic regression over n values of C, log-spaced: a job long enough to
// interrupt.
func logisticGrid(n int) *trainingv1.CandidateSpec {
	return candidate(modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION, map[string]*trainingv1.HyperparameterDomain{
		"c": {Domain: &trainingv1.HyperparameterDomain_Range{Range: &trainingv1.HyperparameterRange{
			Min: 0.001, Max: 100, Scale: trainingv1.RangeScale_RANGE_SCALE_LOG, GridPoints: int32(n)}}}})
}

// waitProgress watches a job until cond holds for an update.
func waitProgress(t *testing.T, c trainingv1.TrainingServiceClient, id string, cond func(*trainingv1.JobProgress) bool) *trainingv1.JobProgress {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := c.WatchJob(ctx, &trainingv1.WatchJobRequest{JobId: id})
	if err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("watching job %s: %v", id, err)
		}
		if cond(resp.GetProgress()) {
			return resp.GetProgress()
		}
	}
}

func crossValidating(p *trainingv1.JobProgress) bool {
	return p.GetStage() == trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING && p.GetCandidatesDone() >= 1
}

// TestCancelJob cancels a running job in the middle of cross-validation: it is CANCELLING at
// once and then CANCELLED, long before its 40 candidates could have finished, and registers
// nothing (how long it takes is logged, not asserted: it depends on the machine's load). A
// job still waiting for a replica is cancelled at once, and cancelling an ended job changes
// nothing.
func TestCancelJob(t *testing.T) {
	e := newEnv(t, bankFull)
	tr := e.startTraining("trainer-a")
	ctx := context.Background()
	running := start(t, tr.client, "long", bankSpec("bank-cancel", true, logisticGrid(40)))
	waiting := start(t, tr.client, "waiting", bankSpec("bank-cancel", true, logisticC(1)))
	p := waitProgress(t, tr.client, running.GetJobId(), crossValidating)
	t.Logf("cancelling at %.0f%%, %d of %d candidates done", p.GetPercent(), p.GetCandidatesDone(), p.GetCandidateCount())

	began := time.Now()
	resp, err := tr.client.CancelJob(ctx, &trainingv1.CancelJobRequest{JobId: running.GetJobId(), Reason: "wrong campaign"})
	if err != nil {
		t.Fatal(err)
	}
	if s := resp.GetJob().GetState(); s != trainingv1.JobState_JOB_STATE_CANCELLING {
		t.Fatalf("CancelJob returned state %v, want CANCELLING", s)
	}
	job := finished(t, tr.client, running.GetJobId(), 10*time.Second)
	took := time.Since(began)
	t.Logf("CANCELLED %v after CancelJob", took.Round(time.Millisecond))
	if job.GetState() != trainingv1.JobState_JOB_STATE_CANCELLED || job.GetModelVersion() != 0 ||
		!hasCode(job.GetMessages(), "JOB_CANCEL_REQUESTED") || !hasCode(job.GetMessages(), "JOB_CANCELLED") {
		t.Fatalf("job = %v, messages:\n%s", job.GetState(), describe(job))
	}

	// The second job was taken once the replica was free; cancel it in turn, or find it
	// ended already.
	_, err = tr.client.CancelJob(ctx, &trainingv1.CancelJobRequest{JobId: waiting.GetJobId()})
	if err != nil {
		t.Fatal(err)
	}
	w := finished(t, tr.client, waiting.GetJobId(), 30*time.Second)
	if w.GetState() == trainingv1.JobState_JOB_STATE_SUCCEEDED {
		t.Logf("the waiting job ended before it was cancelled")
	} else if w.GetState() != trainingv1.JobState_JOB_STATE_CANCELLED {
		t.Errorf("waiting job = %v", w.GetState())
	}
	again, err := tr.client.CancelJob(ctx, &trainingv1.CancelJobRequest{JobId: running.GetJobId()})
	if err != nil || again.GetJob().GetState() != trainingv1.JobState_JOB_STATE_CANCELLED || len(again.GetJob().GetMessages()) != len(job.GetMessages()) {
		t.Errorf("cancelling an ended job: %v, %v", again.GetJob().GetState(), err)
	}
	if w.GetState() == trainingv1.JobState_JOB_STATE_CANCELLED {
		if _, err := tr.client.GetModel(ctx, &trainingv1.GetModelRequest{Model: &commonv1.ModelRef{Name: "bank-cancel",
			Selector: &commonv1.ModelRef_Version{Version: 1}}}); status.Code(err) != codes.NotFound {
			t.Errorf("a cancelled job registered a model: %v", err)
		}
	}
}

// TestCancelPendingJob cancels a job no replica has taken: it is CANCELLED at once.
func TestCancelPendingJob(t *testing.T) {
	e := newEnv(t, bankSmall)
	tr := e.startTraining("trainer-a")
	e.features.SetMessageDelay(200 * time.Millisecond)
	busy := start(t, tr.client, "busy", bankSpec("bank-small", true, logisticC(1)))
	waitProgress(t, tr.client, busy.GetJobId(), func(p *trainingv1.JobProgress) bool {
		return p.GetState() == trainingv1.JobState_JOB_STATE_RUNNING
	})
	pending := start(t, tr.client, "pending", bankSpec("bank-small", true, logisticC(1)))
	resp, err := tr.client.CancelJob(context.Background(), &trainingv1.CancelJobRequest{JobId: pending.GetJobId()})
	if err != nil {
		t.Fatal(err)
	}
	if s := resp.GetJob().GetState(); s != trainingv1.JobState_JOB_STATE_CANCELLED {
		t.Errorf("cancelling a pending job: state %v, want CANCELLED at once", s)
	}
	succeeded(t, finished(t, tr.client, busy.GetJobId(), time.Minute))
	if j := finished(t, tr.client, pending.GetJobId(), time.Second); j.GetState() != trainingv1.JobState_JOB_STATE_CANCELLED || j.GetAttempt() != 0 {
		t.Errorf("pending job = %v after %d attempts", j.GetState(), j.GetAttempt())
	}
}

// TestRestartHandsJobBack stops a training replica while its job loads data: its WatchJob
// stream ends with UNAVAILABLE (the server is draining), the job goes back to the queue, and a
// replica started afterwards takes it and completes it.
func TestRestartHandsJobBack(t *testing.T) {
	e := newEnv(t, bankSmall)
	a := e.startTraining("trainer-a")
	e.features.SetMessageDelay(300 * time.Millisecond)
	job := start(t, a.client, "restart", bankSpec("bank-small", true, logisticC(1)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := a.client.WatchJob(ctx, &trainingv1.WatchJobRequest{JobId: job.GetJobId()})
	if err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetProgress().GetStage() == trainingv1.JobStage_JOB_STAGE_LOADING_DATA {
			break
		}
	}
	stopped := make(chan struct{})
	go func() { a.stop(); close(stopped) }()
	var werr error
	for werr == nil {
		_, werr = stream.Recv()
	}
	if status.Code(werr) != codes.Unavailable {
		t.Errorf("WatchJob ended with %v, want UNAVAILABLE", werr)
	}
	<-stopped
	e.features.SetMessageDelay(0)
	b := e.startTraining("trainer-b")
	done := finished(t, b.client, job.GetJobId(), time.Minute)
	succeeded(t, done)
	if done.GetWorker() != "trainer-b" || done.GetAttempt() != 2 || !hasCode(done.GetMessages(), "JOB_RELEASED") || !hasCode(done.GetMessages(), "JOB_TAKEN_OVER") {
		t.Errorf("job: worker %s, attempt %d, messages:\n%s", done.GetWorker(), done.GetAttempt(), describe(done))
	}
}

// process is a bullseye-training process.
type process struct {
	cmd    *exec.Cmd
	out    *logBuffer
	done   chan struct{}
	worker string
}

// buildTrainer builds the bullseye-training command into a temporary directory.
func buildTrainer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bullseye-training")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/bullseye-training")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func (e *env) startProcess(t *testing.T, bin, worker string) *process {
	t.Helper()
	cfg := e.config(worker)
	p := &process{out: &logBuffer{}, done: make(chan struct{}), worker: worker}
	p.cmd = exec.Command(bin,
		"--etcd-endpoints", strings.Join(cfg.EtcdEndpoints, ","),
		"--nats-url", cfg.NATSURL,
		"--insecure",
		"--listen", "127.0.0.1:0",
		"--data-dir", cfg.DataDir,
		"--lease-ttl", "2s",
		"--worker", worker,
		"--job-lease-ttl", "2s",
		"--progress-interval", "50ms",
		"--scan-interval", "300ms",
	)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("output of %s:\n%s", worker, p.out)
		}
	})
	return p
}

// TestKilledTrainerJobFinishesElsewhere runs two real bullseye-training processes with a
// 2-second job lease, SIGKILLs the one running a job in the middle of cross-validation, and
// checks that the other takes the job over and completes it.
func TestKilledTrainerJobFinishesElsewhere(t *testing.T) {
	e := newEnv(t, bankFull)
	bin := buildTrainer(t)
	procs := map[string]*process{}
	for _, w := range []string{"trainer-a", "trainer-b"} {
		procs[w] = e.startProcess(t, bin, w)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := mesh.NewDiscovery(e.cli).Dial(ctx, "training", mesh.WithTLS(mesh.TLSConfig{Insecure: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := trainingv1.NewTrainingServiceClient(conn)
	var job *trainingv1.Job
	for job == nil {
		resp, err := c.StartTraining(ctx, &trainingv1.StartTrainingRequest{RequestId: "survivor",
			Spec: func() *trainingv1.TrainingSpec {
				s := bankSpec("bank-survivor", true, logisticGrid(20))
				s.CrossValidation = &trainingv1.CrossValidationSpec{Folds: proto.Int32(3)}
				return s
			}()})
		switch {
		case err == nil:
			job = resp.GetJob()
		case ctx.Err() != nil:
			t.Fatalf("StartTraining: %v", err)
		default:
			time.Sleep(100 * time.Millisecond) // the processes are still starting
		}
	}
	p := waitProgress(t, c, job.GetJobId(), crossValidating)
	running, err := c.GetJob(ctx, &trainingv1.GetJobRequest{JobId: job.GetJobId()})
	if err != nil {
		t.Fatal(err)
	}
	victim := running.GetJob().GetWorker()
	t.Logf("SIGKILL %s at %.0f%% (%d of %d candidates done)", victim, p.GetPercent(), p.GetCandidatesDone(), p.GetCandidateCount())
	killed := time.Now()
	if err := procs[victim].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-procs[victim].done

	var done *trainingv1.Job
	for done == nil {
		resp, err := c.GetJob(ctx, &trainingv1.GetJobRequest{JobId: job.GetJobId()})
		if err == nil && resp.GetJob().GetState() == trainingv1.JobState_JOB_STATE_SUCCEEDED ||
			err == nil && resp.GetJob().GetState() == trainingv1.JobState_JOB_STATE_FAILED {
			done = resp.GetJob()
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the job did not finish after the kill: %v, %v", resp.GetJob().GetState(), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("finished on %s %v after the kill", done.GetWorker(), time.Since(killed).Round(time.Millisecond))
	succeeded(t, done)
	if done.GetWorker() == victim || done.GetAttempt() != 2 || !hasCode(done.GetMessages(), "JOB_TAKEN_OVER") || done.GetModelVersion() != 1 {
		t.Errorf("job: worker %s (killed %s), attempt %d, version %d, messages:\n%s", done.GetWorker(), victim, done.GetAttempt(),
			done.GetModelVersion(), describe(done))
	}
	models, err := c.ListModels(ctx, &trainingv1.ListModelsRequest{})
	if err != nil || len(models.GetModels()) != 1 || len(models.GetModels()[0].GetVersions()) != 1 {
		t.Errorf("models after the takeover: %v, %v; want one version", models, err)
	}
}

// TestJobTimeout checks ResourceLimits.timeout: a job running longer fails with reason
// TIMEOUT.
func TestJobTimeout(t *testing.T) {
	e := newEnv(t, bankSmall)
	tr := e.startTraining("trainer-a")
	e.features.SetMessageDelay(time.Second)
	s := bankSpec("bank-small", true, logisticC(1))
	s.Resources = &trainingv1.ResourceLimits{Timeout: durationpb.New(300 * time.Millisecond)}
	job := finished(t, tr.client, start(t, tr.client, "slow", s).GetJobId(), 10*time.Second)
	if job.GetState() != trainingv1.JobState_JOB_STATE_FAILED || job.GetError().GetReason() != "TIMEOUT" {
		t.Errorf("job %v with error %v, want FAILED with reason TIMEOUT", job.GetState(), job.GetError())
	}
}
