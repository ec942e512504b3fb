package parallel

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Team keeps goroutines ready for a run of short loops, such as the thousands of
// histogram passes of one boosting fit, where starting goroutines for each loop would
// cost more than the loop: waking an idle goroutine can take tens of microseconds. Its
// workers poll for work for a while after each loop and only then sleep. A Team runs one
// loop at a time; Close it when the run is over.
type Team struct {
	workers []*teamWorker
	seq     atomic.Uint64 // counts the loops published, and Close
	loop    atomic.Pointer[teamLoop]
	closed  atomic.Bool
	wg      sync.WaitGroup
}

// teamLoop is one Split: its parts are claimed by whoever comes first, the caller
// included, so a worker that is slow to wake delays nothing.
type teamLoop struct {
	n, p    int
	f       func(part, lo, hi int)
	claimed atomic.Int64
	done    atomic.Int64
}

type teamWorker struct {
	asleep atomic.Bool
	wake   chan struct{}
}

// An idle worker polls spinPolls times before it sleeps (a few hundred microseconds, longer
// than the gaps between a fit's loops), yielding its thread every yieldEvery polls: a yield
// takes the scheduler's lock, so yielding at every poll would slow the loops down.
const (
	spinPolls  = 1 << 18
	yieldEvery = 1 << 10
)

// NewTeam returns a team of size goroutines counting the caller, so size−1 are started.
func NewTeam(size int) *Team {
	t := &Team{}
	for range size - 1 {
		w := &teamWorker{wake: make(chan struct{}, 1)}
		t.workers = append(t.workers, w)
		t.wg.Add(1)
		go t.work(w)
	}
	return t
}

// Size returns the number of goroutines that share a loop, the caller's included.
func (t *Team) Size() int { return len(t.workers) + 1 }

// Split runs f over p contiguous chunks [lo, hi) of [0, n), as parallel.Split does, and
// returns when all have finished. A chunk is the same whichever goroutine runs it.
func (t *Team) Split(n, p int, f func(part, lo, hi int)) {
	if p <= 1 || len(t.workers) == 0 {
		Split(n, min(p, 1), f)
		return
	}
	l := &teamLoop{n: n, p: p, f: f}
	t.loop.Store(l)
	t.seq.Add(1)
	for _, w := range t.workers {
		if w.asleep.Load() {
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
	l.run()
	for spins := 1; l.done.Load() < int64(p); spins++ {
		if spins%yieldEvery == 0 {
			runtime.Gosched()
		}
	}
}

func (l *teamLoop) run() {
	for {
		k := int(l.claimed.Add(1) - 1)
		if k >= l.p {
			return
		}
		l.f(k, k*l.n/l.p, (k+1)*l.n/l.p)
		l.done.Add(1)
	}
}

// Close stops the workers and waits for them to return.
func (t *Team) Close() {
	t.closed.Store(true)
	t.seq.Add(1)
	for _, w := range t.workers {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	t.wg.Wait()
}

func (t *Team) work(w *teamWorker) {
	defer t.wg.Done()
	var seen uint64
	for {
		s := t.await(w, seen)
		if t.closed.Load() {
			return
		}
		seen = s
		t.loop.Load().run()
	}
}

// await returns the loop count once it differs from seen, polling first and then asleep.
// Split stores the count before it looks whether a worker sleeps, and a worker says it
// sleeps before it looks at the count a last time, so one of them sees the other.
func (t *Team) await(w *teamWorker, seen uint64) uint64 {
	for i := 1; i <= spinPolls; i++ {
		if s := t.seq.Load(); s != seen {
			return s
		}
		if i%yieldEvery == 0 {
			runtime.Gosched()
		}
	}
	for {
		w.asleep.Store(true)
		if s := t.seq.Load(); s != seen {
			w.asleep.Store(false)
			return s
		}
		<-w.wake
		w.asleep.Store(false)
	}
}
