package dataset

import (
	"context"
	"math"
	"slices"
	"strings"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	"github.com/bullseye-ml/bullseye/pkg/values"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
)

// Interaction is one (user, item) pair's value.
type Interaction struct {
	// User and Item identify the pair.
	User, Item string
	// Value is the latest rating or the summed weights.
	Value float64
	// Time is the time of the pair's last contributing event.
	Time int64
	// Events is how many events contributed.
	Events int64
}

// InteractionsPlan is a validated ExportInteractionsRequest.
type InteractionsPlan struct {
	explicit        bool
	names           map[string]bool
	rating          string
	weights         map[string]float64
	from, to        int64
	includeObjected bool
}

// CompileInteractions validates a request.
func CompileInteractions(req *featurev1.ExportInteractionsRequest) (*InteractionsPlan, error) {
	var v fault.Violations
	bad := func(field, desc string) { v = append(v, fault.Violation{Field: field, Description: desc}) }
	p := &InteractionsPlan{from: math.MinInt64, to: math.MaxInt64, includeObjected: req.GetIncludeObjected()}
	switch m := req.GetMode().(type) {
	case *featurev1.ExportInteractionsRequest_Explicit:
		p.explicit = true
		p.names = map[string]bool{}
		for _, n := range m.Explicit.GetEventNames() {
			p.names[n] = true
		}
		if len(p.names) == 0 {
			bad("explicit.event_names", "are required: the names of rating events")
		}
		p.rating = m.Explicit.GetRatingProperty()
		if p.rating == "" {
			bad("explicit.rating_property", "is required: the property holding the rating")
		}
	case *featurev1.ExportInteractionsRequest_Implicit:
		p.weights = m.Implicit.GetEventWeights()
		if len(p.weights) == 0 {
			bad("implicit.event_weights", "are required: a weight per event name")
		}
		for name, w := range p.weights {
			if math.IsNaN(w) || math.IsInf(w, 0) {
				bad("implicit.event_weights["+name+"]", "must be a finite number")
			}
		}
	default:
		bad("mode", "is required: explicit or implicit")
	}
	if ts := req.GetStartTime(); ts != nil {
		p.from = values.UnixNanos(ts)
	}
	if ts := req.GetEndTime(); ts != nil {
		p.to = values.UnixNanos(ts)
	}
	if p.to < p.from {
		bad("end_time", "is before start_time")
	}
	if n := req.GetRowsPerMessage(); n < 0 || n > 10000 {
		bad("rows_per_message", "must be between 0 and 10000")
	}
	if len(v) > 0 {
		return nil, v
	}
	return p, nil
}

// Interactions passes every (user, item) interaction to emit, by user id
// then item id.
func (b *Builder) Interactions(ctx context.Context, plan *InteractionsPlan, emit func(Interaction) error) (uint64, error) {
	snap, err := b.load(ctx, plan.includeObjected, nil)
	if err != nil {
		return 0, err
	}
	ps := snap.profiles
	slices.SortFunc(ps, func(a, c *profile.Profile) int { return strings.Compare(a.ID, c.ID) })
	type acc struct {
		value   float64
		time    int64
		seq     uint64
		events  int64
		present bool
	}
	for _, p := range ps {
		if err := ctx.Err(); err != nil {
			return snap.seq, err
		}
		items := map[string]*acc{}
		for _, e := range p.EventsBefore(plan.from, plan.to) {
			if e.ItemID == "" {
				continue
			}
			a := items[e.ItemID]
			if a == nil {
				a = &acc{}
				items[e.ItemID] = a
			}
			if plan.explicit {
				if !plan.names[e.Name] {
					continue
				}
				r, ok := e.Prop(plan.rating).Float()
				if !ok {
					continue
				}
				if !a.present || e.Time > a.time || (e.Time == a.time && e.Seq > a.seq) {
					a.value = r
				}
			} else {
				w, ok := plan.weights[e.Name]
				if !ok {
					continue
				}
				a.value += w
			}
			a.present = true
			a.events++
			if e.Time > a.time || a.events == 1 {
				a.time, a.seq = e.Time, e.Seq
			}
		}
		ids := make([]string, 0, len(items))
		for id, a := range items {
			if a.present {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		for _, id := range ids {
			a := items[id]
			if err := emit(Interaction{User: p.ID, Item: id, Value: a.value, Time: a.time, Events: a.events}); err != nil {
				return snap.seq, err
			}
		}
	}
	return snap.seq, nil
}
