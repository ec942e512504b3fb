package batch

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// task is a test task: its rows are ints, its end is recorded.
type task struct {
	ctx  context.Context
	rows int
	id   int

	mu   sync.Mutex
	err  error
	done chan struct{}
}

func newTask(ctx context.Context, id, rows int) *task {
	return &task{ctx: ctx, id: id, rows: rows, done: make(chan struct{})}
}

func (t *task) Context() context.Context { return t.ctx }
func (t *task) Size() int                { return t.rows }
func (t *task) Fail(err error)           { t.finish(err) }
func (t *task) finish(err error) {
	t.mu.Lock()
	t.err = err
	t.mu.Unlock()
	close(t.done)
}

// recorder is a processor that records its batches and can be held.
type recorder struct {
	mu       sync.Mutex
	batches  [][]int // task ids per computed batch
	hold     chan struct{}
	once     sync.Once
	entered  chan struct{}
	computed map[int]bool
}

func newRecorder(held bool) *recorder {
	r := &recorder{entered: make(chan struct{}, 100), computed: map[int]bool{}}
	if held {
		r.hold = make(chan struct{})
	}
	return r
}

func (r *recorder) process(b *Batch[*task]) {
	r.entered <- struct{}{}
	if r.hold != nil {
		<-r.hold
	}
	tasks := b.DropExpired()
	if len(tasks) == 0 {
		return
	}
	b.Compute(func() {
		r.mu.Lock()
		var ids []int
		for _, t := range tasks {
			ids = append(ids, t.id)
			r.computed[t.id] = true
		}
		r.batches = append(r.batches, ids)
		r.mu.Unlock()
	})
	for _, t := range tasks {
		t.finish(nil)
	}
}

func (r *recorder) release() {
	if r.hold != nil {
		r.once.Do(func() { close(r.hold) })
	}
}

func newQueue(t *testing.T, opts Options, r *recorder) (*Queue[*task], *Metrics) {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	q, err := NewQueue(NewPool(2), opts, m, Labels{Model: "m", Version: "1"}, r.process)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.release(); q.Close(); q.Wait() })
	return q, m
}

func wait(t *testing.T, tk *task) error {
	t.Helper()
	select {
	case <-tk.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("task %d not finished", tk.id)
	}
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return tk.err
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Options)
		ok   bool
	}{
		{"defaults", func(*Options) {}, true},
		{"zero batch", func(o *Options) { o.MaxBatchSize = 0 }, false},
		{"negative timeout", func(o *Options) { o.BatchTimeout = -time.Millisecond }, false},
		{"long timeout", func(o *Options) { o.BatchTimeout = 2 * time.Second }, false},
		{"zero queue", func(o *Options) { o.MaxQueue = 0 }, false},
		{"zero concurrency", func(o *Options) { o.MaxConcurrentBatches = 0 }, false},
		{"timeout", func(o *Options) { o.BatchTimeout = 2 * time.Millisecond }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := DefaultOptions()
			tt.mod(&o)
			if err := o.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// TestLoneTaskIsNotDelayed: with no batch timeout an idle queue computes a task at once.
func TestLoneTaskIsNotDelayed(t *testing.T) {
	r := newRecorder(false)
	q, _ := newQueue(t, DefaultOptions(), r)
	start := time.Now()
	tk := newTask(context.Background(), 1, 1)
	if err := q.Enqueue(tk); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, tk); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("a lone task took %v", d)
	}
}

// TestTasksArrivingDuringABatchMakeTheNext: while a batch is in flight the queue fills; the
// next batch takes what waits, up to MaxBatchSize rows, without splitting a task.
func TestTasksArrivingDuringABatchMakeTheNext(t *testing.T) {
	r := newRecorder(true)
	opts := DefaultOptions()
	opts.MaxBatchSize = 10
	q, m := newQueue(t, opts, r)
	first := newTask(context.Background(), 0, 1)
	if err := q.Enqueue(first); err != nil {
		t.Fatal(err)
	}
	<-r.entered // the first batch is in flight, holding the only dispatcher
	var tasks []*task
	for i := 1; i <= 7; i++ {
		tk := newTask(context.Background(), i, 3)
		tasks = append(tasks, tk)
		if err := q.Enqueue(tk); err != nil {
			t.Fatal(err)
		}
	}
	r.release()
	for _, tk := range append(tasks, first) {
		if err := wait(t, tk); err != nil {
			t.Fatal(err)
		}
	}
	r.mu.Lock()
	got := r.batches
	r.mu.Unlock()
	want := [][]int{{0}, {1, 2, 3}, {4, 5, 6}, {7}}
	if len(got) != len(want) {
		t.Fatalf("batches %v, want %v", got, want)
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("batches %v, want %v", got, want)
		}
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Fatalf("batches %v, want %v", got, want)
			}
		}
	}
	if n := testutil.CollectAndCount(m.batchSize); n != 1 {
		t.Errorf("batch size series = %d", n)
	}
}

// TestFullQueueRejectsAtOnce: beyond MaxQueue waiting tasks, Enqueue fails at once with
// ErrQueueFull, all or nothing, and counts the rejection.
func TestFullQueueRejectsAtOnce(t *testing.T) {
	r := newRecorder(true)
	opts := DefaultOptions()
	opts.MaxQueue = 3
	q, m := newQueue(t, opts, r)
	if err := q.Enqueue(newTask(context.Background(), 0, 1)); err != nil {
		t.Fatal(err)
	}
	<-r.entered
	for i := 1; i <= 3; i++ {
		if err := q.Enqueue(newTask(context.Background(), i, 1)); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	err := q.Enqueue(newTask(context.Background(), 4, 1))
	if !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Enqueue = %v, want ErrQueueFull", err)
	}
	if d := time.Since(start); d > 10*time.Millisecond {
		t.Errorf("refusal took %v", d)
	}
	if err := q.Enqueue(newTask(context.Background(), 5, 1), newTask(context.Background(), 6, 1)); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Enqueue of two = %v", err)
	}
	if q.Len() != 3 {
		t.Errorf("Len = %d after refusals, want 3", q.Len())
	}
	if got := testutil.ToFloat64(m.rejected.WithLabelValues("m", "1")); got != 3 {
		t.Errorf("rejected = %v, want 3", got)
	}
	if err := q.Enqueue(newTask(context.Background(), 7, 200000)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Enqueue of a huge task = %v, want ErrTooLarge", err)
	}
}

// TestExpiredTasksAreNotComputed: a task whose deadline passes while queued, or whose caller
// cancels, is failed with ErrExpired and never reaches compute; so is one that expires while
// its batch waits for its lookup (DropExpired).
func TestExpiredTasksAreNotComputed(t *testing.T) {
	r := newRecorder(true)
	q, m := newQueue(t, DefaultOptions(), r)
	blocker := newTask(context.Background(), 0, 1)
	if err := q.Enqueue(blocker); err != nil {
		t.Fatal(err)
	}
	<-r.entered
	short, cancelShort := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancelShort()
	expiring := newTask(short, 1, 1)
	cctx, cancel := context.WithCancel(context.Background())
	cancelled := newTask(cctx, 2, 1)
	alive := newTask(context.Background(), 3, 1)
	for _, tk := range []*task{expiring, cancelled, alive} {
		if err := q.Enqueue(tk); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	<-short.Done()
	r.release()
	if err := wait(t, expiring); !errors.Is(err, ErrExpired) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("expired task: %v", err)
	}
	if err := wait(t, cancelled); !errors.Is(err, ErrExpired) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled task: %v", err)
	}
	if err := wait(t, alive); err != nil {
		t.Errorf("live task: %v", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.computed[1] || r.computed[2] || !r.computed[3] {
		t.Errorf("computed %v, want only 0 and 3", r.computed)
	}
	if got := testutil.ToFloat64(m.expired.WithLabelValues("m", "1", "deadline")); got != 1 {
		t.Errorf("expired count = %v", got)
	}
	if got := testutil.ToFloat64(m.expired.WithLabelValues("m", "1", "cancelled")); got != 1 {
		t.Errorf("cancelled count = %v", got)
	}
}

// TestDropExpiredBeforeCompute: a task that expires after its batch formed (during the
// lookup) is dropped by DropExpired.
func TestDropExpiredBeforeCompute(t *testing.T) {
	r := newRecorder(true)
	q, _ := newQueue(t, DefaultOptions(), r)
	ctx, cancel := context.WithCancel(context.Background())
	tk := newTask(ctx, 1, 1)
	if err := q.Enqueue(tk); err != nil {
		t.Fatal(err)
	}
	<-r.entered // formed, now "looking up"
	cancel()
	r.release()
	if err := wait(t, tk); !errors.Is(err, ErrExpired) {
		t.Fatalf("err = %v", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.batches) != 0 {
		t.Errorf("computed %v", r.batches)
	}
}

// TestBatchTimeoutWaitsForMore: with a batch timeout, a batch that is not full waits for more
// tasks up to the timeout, and a full one goes at once.
func TestBatchTimeoutWaitsForMore(t *testing.T) {
	r := newRecorder(false)
	opts := DefaultOptions()
	opts.BatchTimeout = 100 * time.Millisecond
	opts.MaxBatchSize = 4
	q, _ := newQueue(t, opts, r)
	a, b := newTask(context.Background(), 1, 1), newTask(context.Background(), 2, 1)
	start := time.Now()
	if err := q.Enqueue(a); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if err := q.Enqueue(b); err != nil {
		t.Fatal(err)
	}
	wait(t, a)
	wait(t, b)
	if d := time.Since(start); d < 90*time.Millisecond {
		t.Errorf("a partial batch went after %v, before its timeout", d)
	}
	full := []*task{newTask(context.Background(), 3, 2), newTask(context.Background(), 4, 2)}
	start = time.Now()
	if err := q.Enqueue(full...); err != nil {
		t.Fatal(err)
	}
	wait(t, full[0])
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("a full batch waited %v", d)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.batches) != 2 || len(r.batches[0]) != 2 || len(r.batches[1]) != 2 {
		t.Errorf("batches %v", r.batches)
	}
}

// TestCloseDrains: Close stops new tasks; queued ones are still processed.
func TestCloseDrains(t *testing.T) {
	r := newRecorder(true)
	q, _ := newQueue(t, DefaultOptions(), r)
	tasks := []*task{newTask(context.Background(), 0, 1), newTask(context.Background(), 1, 1)}
	if err := q.Enqueue(tasks[0]); err != nil {
		t.Fatal(err)
	}
	<-r.entered
	if err := q.Enqueue(tasks[1]); err != nil {
		t.Fatal(err)
	}
	q.Close()
	if err := q.Enqueue(newTask(context.Background(), 2, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after Close = %v", err)
	}
	r.release()
	q.Wait()
	for _, tk := range tasks {
		if err := wait(t, tk); err != nil {
			t.Error(err)
		}
	}
}

// TestComputeSlotsAreShared: two queues on a one-slot pool never compute at once.
func TestComputeSlotsAreShared(t *testing.T) {
	pool := NewPool(1)
	var mu sync.Mutex
	inside, most := 0, 0
	proc := func(b *Batch[*task]) {
		tasks := b.DropExpired()
		b.Compute(func() {
			mu.Lock()
			inside++
			most = max(most, inside)
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
			mu.Lock()
			inside--
			mu.Unlock()
		})
		for _, tk := range tasks {
			tk.finish(nil)
		}
	}
	var queues []*Queue[*task]
	for i := range 2 {
		opts := DefaultOptions()
		opts.MaxConcurrentBatches = 2
		q, err := NewQueue(pool, opts, nil, Labels{Model: "m", Version: string(rune('1' + i))}, proc)
		if err != nil {
			t.Fatal(err)
		}
		queues = append(queues, q)
	}
	var all []*task
	for i := range 20 {
		tk := newTask(context.Background(), i, 1)
		all = append(all, tk)
		if err := queues[i%2].Enqueue(tk); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Microsecond)
	}
	for _, tk := range all {
		wait(t, tk)
	}
	for _, q := range queues {
		q.Close()
		q.Wait()
	}
	if most != 1 {
		t.Errorf("%d batches computed at once on a one-slot pool", most)
	}
}
