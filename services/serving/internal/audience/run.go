package audience

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/services/serving/internal/batch"
	"github.com/bullseye-ml/bullseye/services/serving/internal/features"
	"github.com/bullseye-ml/bullseye/services/serving/internal/models"
	"github.com/bullseye-ml/bullseye/services/serving/internal/scoring"
)

// ErrNoFeatureSet: the model has no feature set whose customers could be listed.
var ErrNoFeatureSet = errors.New("the model has no feature set to list customers from")

// Request is a checked ScoreAudience request.
type Request struct {
	// Filter selects the segment; nil means every customer.
	Filter *Filter
	// TopN keeps only the best N (0: all).
	TopN int64
	// MinScore, when set, keeps only rows whose ranking value is at least this.
	MinScore *float64
	// BatchSize is the most rows per streamed message.
	BatchSize int
}

// Runner scores audiences through the batched core.
type Runner struct {
	features *features.Client
	pageSize int
	inFlight int
}

// Option configures a Runner.
type Option func(*Runner)

// WithPageSize sets how many customers are listed and submitted at once; the default is 1,000.
func WithPageSize(n int) Option { return func(r *Runner) { r.pageSize = n } }

// WithInFlight sets how many pages are scored at once; the default is 2.
func WithInFlight(n int) Option { return func(r *Runner) { r.inFlight = n } }

// New returns a runner that lists customers through features.
func New(features *features.Client, opts ...Option) *Runner {
	r := &Runner{features: features}
	for _, o := range opts {
		o(r)
	}
	if r.pageSize <= 0 {
		r.pageSize = 1000
	}
	if r.inFlight <= 0 {
		r.inFlight = 2
	}
	return r
}

// page is one page of customers on its way through the core.
type page struct {
	ids    []string
	models []*scoring.Model
	out    []scoring.Outcome
	g      *scoring.Group
}

// Run scores every customer of the lease's model (the segment req.Filter selects), leaves out
// those who objected or were erased, and sends the kept rows in batches and then the
// summary through send, which is never called concurrently.
func (r *Runner) Run(ctx context.Context, lease *models.Lease, req Request, send func(*servingv1.ScoreAudienceResponse) error) error {
	start := time.Now()
	top := lease.Top()
	name, ver := top.FeatureSet()
	if name == "" {
		return ErrNoFeatureSet
	}
	set, err := r.features.Resolve(ctx, name, ver)
	if err != nil {
		return err
	}
	pageSize, inFlight := r.pageSize, r.inFlight
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	c := newCollector(req, top, send)
	pages := make(chan *page, inFlight)
	consumed := make(chan error, 1)
	go func() {
		var err error
		for p := range pages {
			if err != nil {
				<-p.g.Done()
				continue
			}
			select {
			case <-p.g.Done():
			case <-ctx.Done():
				<-p.g.Done()
			}
			if err = p.g.Err(); err == nil {
				err = c.page(p)
			}
			if err != nil {
				cancel(err)
			}
		}
		consumed <- err
	}()
	listErr := r.features.ListCustomers(ctx, set, pageSize, func(ids []string) error {
		p, err := submit(ctx, lease, req.Filter, ids)
		if err != nil {
			return err
		}
		select {
		case pages <- p:
			return nil
		case <-ctx.Done():
			<-p.g.Done()
			return context.Cause(ctx)
		}
	})
	close(pages)
	consumeErr := <-consumed
	if consumeErr != nil {
		return consumeErr
	}
	if listErr != nil {
		return listErr
	}
	return c.finish(time.Since(start))
}

// submit sends one page of customers into the core, each to the version that answers them,
// waiting while a queue is full (an audience yields to the online traffic).
func submit(ctx context.Context, lease *models.Lease, filter *Filter, ids []string) (*page, error) {
	p := &page{ids: ids, models: make([]*scoring.Model, len(ids)), out: make([]scoring.Outcome, len(ids))}
	type group struct {
		m   *scoring.Model
		idx []int
	}
	var groups []*group
	for i, id := range ids {
		m := lease.For(id)
		p.models[i] = m
		k := slices.IndexFunc(groups, func(g *group) bool { return g.m == m })
		if k < 0 {
			groups = append(groups, &group{m: m})
			k = len(groups) - 1
		}
		groups[k].idx = append(groups[k].idx, i)
	}
	type chunk struct {
		m    *scoring.Model
		task *scoring.Task
	}
	var chunks []chunk
	n := 0
	for _, g := range groups {
		n += (len(g.idx) + g.m.MaxBatchSize() - 1) / g.m.MaxBatchSize()
	}
	p.g = scoring.NewGroup(n)
	for _, g := range groups {
		size := g.m.MaxBatchSize()
		for start := 0; start < len(g.idx); start += size {
			idx := g.idx[start:min(len(g.idx), start+size)]
			rows := make([]scoring.Row, len(idx))
			out := make([]scoring.Outcome, len(idx))
			for j, i := range idx {
				rows[j].UserID = ids[i]
			}
			t := scoring.NewTask(ctx, p.g, rows, out)
			if filter != nil {
				t.Filter = filter
			}
			t.Done = func(t *scoring.Task, err error) {
				for j, i := range idx {
					p.out[i] = t.Out[j]
				}
			}
			chunks = append(chunks, chunk{g.m, t})
		}
	}
	for k, ch := range chunks {
		backoff := time.Millisecond
		for {
			err := ch.m.Submit(ch.task)
			if err == nil {
				break
			}
			if !errors.Is(err, batch.ErrQueueFull) {
				p.g.Abandon(len(chunks)-k, err)
				return p, nil
			}
			select {
			case <-ctx.Done():
				p.g.Abandon(len(chunks)-k, context.Cause(ctx))
				return p, nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 50*time.Millisecond)
		}
	}
	return p, nil
}

// collector keeps the rows an audience asks for and sends them.
type collector struct {
	req    Request
	send   func(*servingv1.ScoreAudienceResponse) error
	prob   bool
	sum    *servingv1.AudienceSummary
	buf    []*servingv1.AudienceRow
	best   rowHeap
	byVers map[int64]int64
}

func newCollector(req Request, top *scoring.Model, send func(*servingv1.ScoreAudienceResponse) error) *collector {
	return &collector{
		req:    req,
		send:   send,
		prob:   top.HasProbability,
		sum:    &servingv1.AudienceSummary{ModelName: top.Name},
		byVers: map[int64]int64{},
	}
}

func (c *collector) page(p *page) error {
	for i, o := range p.out {
		switch o.Status {
		case scoring.StatusFiltered, scoring.StatusNotFound:
			continue
		case scoring.StatusSuppressed:
			c.sum.Matched++
			c.sum.Suppressed++
			continue
		case scoring.StatusInvalid:
			c.sum.Matched++
			c.sum.Invalid++
			continue
		case scoring.StatusOK:
		default:
			return fmt.Errorf("audience row %s has no outcome", p.ids[i])
		}
		c.sum.Matched++
		c.sum.Scored++
		row := &servingv1.AudienceRow{EntityId: p.ids[i], Score: o.Score, ModelVersion: p.models[i].Version}
		rank := o.Score
		if p.models[i].HasProbability {
			prob := o.Probability
			row.Probability = &prob
			rank = prob
		}
		if c.req.MinScore != nil && rank < *c.req.MinScore {
			c.sum.BelowCutoff++
			continue
		}
		if c.req.TopN > 0 {
			heap.Push(&c.best, ranked{row, rank})
			if int64(c.best.Len()) > c.req.TopN {
				heap.Pop(&c.best)
				c.sum.BelowCutoff++
			}
			continue
		}
		if err := c.emit(row); err != nil {
			return err
		}
	}
	return nil
}

func (c *collector) emit(row *servingv1.AudienceRow) error {
	c.buf = append(c.buf, row)
	c.sum.Returned++
	c.byVers[row.GetModelVersion()]++
	if len(c.buf) >= c.req.BatchSize {
		return c.flush()
	}
	return nil
}

func (c *collector) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	err := c.send(&servingv1.ScoreAudienceResponse{Kind: &servingv1.ScoreAudienceResponse_Batch{Batch: &servingv1.AudienceBatch{Rows: c.buf}}})
	c.buf = nil
	return err
}

func (c *collector) finish(elapsed time.Duration) error {
	if c.req.TopN > 0 {
		rows := make([]ranked, c.best.Len())
		for i := len(rows) - 1; i >= 0; i-- {
			rows[i] = heap.Pop(&c.best).(ranked)
		}
		for _, r := range rows {
			if err := c.emit(r.row); err != nil {
				return err
			}
		}
	}
	if err := c.flush(); err != nil {
		return err
	}
	c.sum.ReturnedByVersion = c.byVers
	c.sum.Elapsed = durationpb.New(elapsed)
	return c.send(&servingv1.ScoreAudienceResponse{Kind: &servingv1.ScoreAudienceResponse_Summary{Summary: c.sum}})
}

// ranked is a row with its ranking value.
type ranked struct {
	row  *servingv1.AudienceRow
	rank float64
}

// rowHeap is a min-heap of the best rows so far: the worst on top. Ties rank the larger
// entity id worse, so the result does not depend on arrival order.
type rowHeap []ranked

func (h rowHeap) Len() int { return len(h) }
func (h rowHeap) Less(i, j int) bool {
	if h[i].rank != h[j].rank {
		return h[i].rank < h[j].rank
	}
	return h[i].row.GetEntityId() > h[j].row.GetEntityId()
}
func (h rowHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *rowHeap) Push(x any)   { *h = append(*h, x.(ranked)) }
func (h *rowHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
