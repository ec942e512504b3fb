// Package batch is serving's batched prediction core (DESIGN §7): a queue per model version
// whose waiting tasks are taken in batches, and a pool of compute slots, one per core, shared
// by every queue.
//
// A queue forms a batch from what is waiting when it is free: with BatchTimeout 0 (the
// default) it never waits on an idle server, so a lone request is computed at once, and under
// load the requests that arrived while the previous batch was being computed make the next
// one. A task is taken whole; the caller splits a request larger than MaxBatchSize into tasks
// of at most MaxBatchSize rows. A full queue refuses new tasks at once (ErrQueueFull). Tasks
// whose context is done are dropped when a batch is formed and again, by the processor, right
// before the batch is computed (Batch.DropExpired): a request whose caller gave up or whose
// deadline passed is never computed.
package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Errors of the core; test for them with errors.Is.
var (
	// ErrQueueFull: the queue holds MaxQueue tasks already; retry with backoff.
	ErrQueueFull = errors.New("the model's queue is full")
	// ErrClosed: the queue no longer takes tasks (its model version was unloaded).
	ErrClosed = errors.New("the model's queue is closed")
	// ErrTooLarge: a task has more rows than MaxBatchSize; split it.
	ErrTooLarge = errors.New("the task is larger than the batch size")
	// ErrExpired wraps the context error of a task that was dropped before compute because
	// its deadline passed or its caller cancelled it.
	ErrExpired = errors.New("dropped before compute")
)

// Task is one unit of work in a queue: some rows of one request.
type Task interface {
	// Context is the request's context: the task is dropped once it is done.
	Context() context.Context
	// Size is the task's number of rows, at most Options.MaxBatchSize.
	Size() int
	// Fail ends the task with err without computing it. The core calls it at most once,
	// for a task it drops; the processor ends the tasks it computes itself.
	Fail(err error)
}

// Options are a queue's batching settings (after TensorFlow Serving and Triton).
type Options struct {
	// MaxBatchSize is the most rows in one batch.
	MaxBatchSize int
	// BatchTimeout is how long a batch that is not full may wait for more tasks, counted
	// from the arrival of its oldest task. 0 takes what is queued and never waits.
	BatchTimeout time.Duration
	// MaxQueue is the most tasks waiting in the queue; more are refused with ErrQueueFull.
	MaxQueue int
	// MaxConcurrentBatches is how many of the queue's batches may be in flight at once (in
	// their feature lookup or computing). 1 keeps one batch in flight, so the tasks that
	// arrive meanwhile make the next batch; raise it for models whose compute is heavy.
	MaxConcurrentBatches int
}

// DefaultOptions returns the defaults: batches of up to 256 rows, no batch timeout, up to
// 1,024 waiting tasks, one batch in flight.
func DefaultOptions() Options {
	return Options{MaxBatchSize: 256, MaxQueue: 1024, MaxConcurrentBatches: 1}
}

// Validate reports settings that cannot work.
func (o Options) Validate() error {
	var errs []error
	if o.MaxBatchSize < 1 || o.MaxBatchSize > 100_000 {
		errs = append(errs, fmt.Errorf("max batch size %d: want 1 to 100000", o.MaxBatchSize))
	}
	if o.BatchTimeout < 0 || o.BatchTimeout > time.Second {
		errs = append(errs, fmt.Errorf("batch timeout %v: want 0 to 1s", o.BatchTimeout))
	}
	if o.MaxQueue < 1 {
		errs = append(errs, fmt.Errorf("max queue %d: want at least 1", o.MaxQueue))
	}
	if o.MaxConcurrentBatches < 1 || o.MaxConcurrentBatches > 64 {
		errs = append(errs, fmt.Errorf("max concurrent batches %d: want 1 to 64", o.MaxConcurrentBatches))
	}
	return errors.Join(errs...)
}

// Pool is the compute slots shared by every queue: a batch computes only while it holds one,
// so at most Workers batches compute at once, whatever the number of models.
type Pool struct {
	slots chan struct{}
}

// NewPool returns a pool of workers compute slots (at least 1).
func NewPool(workers int) *Pool {
	return &Pool{slots: make(chan struct{}, max(workers, 1))}
}

// Workers returns the number of compute slots.
func (p *Pool) Workers() int { return cap(p.slots) }

// Labels name a queue in metrics.
type Labels struct {
	// Model and Version are the model version the queue serves.
	Model, Version string
}

// Queue is the queue of one model version. Enqueue tasks; its dispatchers form batches and
// hand them to the processor. It is safe for concurrent use.
type Queue[T Task] struct {
	pool    *Pool
	opts    Options
	process func(*Batch[T])
	obs     observers

	mu      sync.Mutex
	items   []entry[T] // items[head:] are waiting, oldest first
	head    int
	closed  bool
	wake    chan struct{} // a new task arrived, or the queue filled a batch
	closing chan struct{} // closed by Close
	done    sync.WaitGroup
}

type entry[T any] struct {
	task T
	at   time.Time
}

// NewQueue starts a queue with opts (validated), whose batches process handles. process
// must end every task of its batch: with its result, or through Batch.DropExpired. m may be
// nil (no metrics).
func NewQueue[T Task](pool *Pool, opts Options, m *Metrics, labels Labels, process func(*Batch[T])) (*Queue[T], error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	q := &Queue[T]{
		pool:    pool,
		opts:    opts,
		process: process,
		obs:     m.observers(labels),
		wake:    make(chan struct{}, 1),
		closing: make(chan struct{}),
	}
	q.done.Add(opts.MaxConcurrentBatches)
	for range opts.MaxConcurrentBatches {
		go q.dispatch()
	}
	return q, nil
}

// Options returns the queue's settings.
func (q *Queue[T]) Options() Options { return q.opts }

// Enqueue adds tasks to the queue, all of them or none: ErrQueueFull when they do not fit
// (counted as rejected), ErrClosed after Close, ErrTooLarge for a task of more than
// MaxBatchSize rows.
func (q *Queue[T]) Enqueue(tasks ...T) error {
	for _, t := range tasks {
		if t.Size() > q.opts.MaxBatchSize {
			return fmt.Errorf("%w: %d rows, at most %d", ErrTooLarge, t.Size(), q.opts.MaxBatchSize)
		}
	}
	now := time.Now()
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	if len(q.items)-q.head+len(tasks) > q.opts.MaxQueue {
		q.mu.Unlock()
		q.obs.rejected.Add(float64(len(tasks)))
		return ErrQueueFull
	}
	for _, t := range tasks {
		q.items = append(q.items, entry[T]{task: t, at: now})
	}
	q.obs.queued.Set(float64(len(q.items) - q.head))
	q.mu.Unlock()
	q.signal()
	return nil
}

// Len returns the number of waiting tasks.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}

// Close stops the queue taking tasks. What is queued is still processed; Wait waits for it.
func (q *Queue[T]) Close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.closing)
	}
	q.mu.Unlock()
}

// Wait waits, after Close, until every queued task is processed and the dispatchers have
// stopped.
func (q *Queue[T]) Wait() { q.done.Wait() }

func (q *Queue[T]) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *Queue[T]) dispatch() {
	defer q.done.Done()
	for {
		b, ok := q.next()
		if !ok {
			return
		}
		if len(b.tasks) > 0 {
			q.process(b)
		}
	}
}

// next waits for the next batch; ok is false once the queue is closed and empty.
func (q *Queue[T]) next() (*Batch[T], bool) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	q.mu.Lock()
	for {
		waiting := len(q.items) - q.head
		if waiting > 0 {
			if q.opts.BatchTimeout > 0 && !q.closed && q.rowsLocked() < q.opts.MaxBatchSize {
				wait := time.Until(q.items[q.head].at.Add(q.opts.BatchTimeout))
				if wait > 0 {
					q.mu.Unlock()
					if timer == nil {
						timer = time.NewTimer(wait)
					} else {
						timer.Reset(wait)
					}
					select {
					case <-q.wake:
					case <-timer.C:
					case <-q.closing:
					}
					q.mu.Lock()
					continue
				}
			}
			b, expired := q.takeLocked()
			more := len(q.items) > q.head
			q.mu.Unlock()
			if more {
				q.signal()
			}
			for _, t := range expired {
				q.fail(t)
			}
			return b, true
		}
		if q.closed {
			q.mu.Unlock()
			return nil, false
		}
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-q.closing:
		}
		q.mu.Lock()
	}
}

func (q *Queue[T]) rowsLocked() int {
	n := 0
	for _, e := range q.items[q.head:] {
		n += e.task.Size()
		if n >= q.opts.MaxBatchSize {
			break
		}
	}
	return n
}

// takeLocked removes the next batch from the queue, and the expired tasks before it.
func (q *Queue[T]) takeLocked() (*Batch[T], []T) {
	now := time.Now()
	b := &Batch[T]{q: q, formed: now}
	var expired []T
	rows := 0
	for q.head < len(q.items) {
		e := q.items[q.head]
		if e.task.Context().Err() != nil {
			expired = append(expired, e.task)
		} else {
			if rows+e.task.Size() > q.opts.MaxBatchSize && rows > 0 {
				break
			}
			rows += e.task.Size()
			b.tasks = append(b.tasks, e.task)
			q.obs.queueTime.Observe(now.Sub(e.at).Seconds())
		}
		var zero entry[T]
		q.items[q.head] = zero
		q.head++
	}
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 1024 && q.head > len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.obs.queued.Set(float64(len(q.items) - q.head))
	b.rows = rows
	return b, expired
}

func (q *Queue[T]) fail(t T) {
	err := t.Context().Err()
	if errors.Is(err, context.DeadlineExceeded) {
		q.obs.expired.Inc()
	} else {
		q.obs.cancelled.Inc()
	}
	t.Fail(fmt.Errorf("%w: %w", ErrExpired, err))
}

// Batch is a batch of tasks handed to a queue's processor.
type Batch[T Task] struct {
	q      *Queue[T]
	tasks  []T
	rows   int
	formed time.Time
}

// Tasks returns the batch's tasks that are still to be computed.
func (b *Batch[T]) Tasks() []T { return b.tasks }

// Rows returns the number of rows of the batch's tasks.
func (b *Batch[T]) Rows() int { return b.rows }

// DropExpired ends, with an error wrapping ErrExpired, the tasks whose context is done, and
// returns the others. The processor calls it right before computing.
func (b *Batch[T]) DropExpired() []T {
	kept := b.tasks[:0]
	for _, t := range b.tasks {
		if t.Context().Err() != nil {
			b.rows -= t.Size()
			b.q.fail(t)
			continue
		}
		kept = append(kept, t)
	}
	clear(b.tasks[len(kept):])
	b.tasks = kept
	return kept
}

// Compute runs f while holding one of the pool's compute slots, and records the batch's size
// and compute time.
func (b *Batch[T]) Compute(f func()) {
	b.q.pool.slots <- struct{}{}
	start := time.Now()
	defer func() {
		<-b.q.pool.slots
		b.q.obs.computeTime.Observe(time.Since(start).Seconds())
		b.q.obs.batchSize.Observe(float64(b.rows))
	}()
	f()
}
