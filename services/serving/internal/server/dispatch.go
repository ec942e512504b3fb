package server

import (
	"context"

	"github.com/bullseye-ml/bullseye/services/serving/internal/models"
	"github.com/bullseye-ml/bullseye/services/serving/internal/scoring"
)

// group is the rows of a request one model version answers.
type group struct {
	m   *scoring.Model
	idx []int // row indexes in the request
}

// fanout groups a request's rows by the version that answers them.
type fanout struct {
	groups []*group
}

func (f *fanout) add(m *scoring.Model, i int) {
	for _, g := range f.groups {
		if g.m == m {
			g.idx = append(g.idx, i)
			return
		}
	}
	f.groups = append(f.groups, &group{m: m, idx: []int{i}})
}

// flight is a request's tasks in the core, holding its lease.
type flight struct {
	lease  *models.Lease
	ctx    context.Context
	cancel context.CancelFunc
	g      *scoring.Group
}

// dispatch queues the rows of f as tasks of at most each version's batch size: rowsOf builds
// the rows of a version's indexes, setup (optional) completes each task; outcomes land in
// out at the rows' indexes. On a refusal (a full queue) the tasks already queued are
// cancelled and the error is returned; the flight must still be ended with wait or abandon.
func dispatch(ctx context.Context, lease *models.Lease, f *fanout, out []scoring.Outcome,
	rowsOf func(m *scoring.Model, idx []int) []scoring.Row, setup func(*scoring.Task)) (*flight, error) {
	n := 0
	for _, g := range f.groups {
		size := g.m.MaxBatchSize()
		n += (len(g.idx) + size - 1) / size
	}
	fl := &flight{lease: lease, g: scoring.NewGroup(n)}
	fl.ctx, fl.cancel = context.WithCancel(ctx)
	submitted := 0
	for _, g := range f.groups {
		rows := rowsOf(g.m, g.idx)
		size := g.m.MaxBatchSize()
		var tasks []*scoring.Task
		for start := 0; start < len(g.idx); start += size {
			end := min(len(g.idx), start+size)
			idx := g.idx[start:end]
			var t *scoring.Task
			if idx[len(idx)-1]-idx[0] == len(idx)-1 {
				// Contiguous rows: outcomes go straight to their place.
				t = scoring.NewTask(fl.ctx, fl.g, rows[start:end], out[idx[0]:idx[0]+len(idx)])
			} else {
				t = scoring.NewTask(fl.ctx, fl.g, rows[start:end], make([]scoring.Outcome, len(idx)))
				t.Done = func(t *scoring.Task, err error) {
					for j, i := range idx {
						out[i] = t.Out[j]
					}
				}
			}
			if setup != nil {
				setup(t)
			}
			tasks = append(tasks, t)
		}
		if err := g.m.Submit(tasks...); err != nil {
			fl.cancel()
			fl.g.Abandon(n-submitted, err)
			return fl, err
		}
		submitted += len(tasks)
	}
	return fl, nil
}

// wait waits for the flight's tasks, or for ctx: then the lease is released once the tasks
// have ended, in the background. It returns the first task error.
func (fl *flight) wait(ctx context.Context) error {
	select {
	case <-fl.g.Done():
		fl.cancel()
		fl.lease.Release()
		return fl.g.Err()
	case <-ctx.Done():
		fl.abandon()
		return ctx.Err()
	}
}

// abandon cancels the flight's tasks and releases its lease once they have ended.
func (fl *flight) abandon() {
	fl.cancel()
	go func() {
		<-fl.g.Done()
		fl.lease.Release()
	}()
}
