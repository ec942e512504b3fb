package featureset

import (
	"math"
	"sort"

	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
)

// onlineMemo is a profile's columns evaluated at the instant at, kept with
// the profile (profile.Memo). They hold for every instant in [at, until):
// no record enters or leaves a window before until.
type onlineMemo struct {
	set       *Set
	at, until int64
	outs      []Out
}

// Online is a profile's columns at one instant, as EvalOnline gives them.
// It shares the memo's storage: read it through Out, never change it.
type Online struct {
	outs []Out
	at   int64
}

// Out returns column i at the instant, with a value that moves with time
// (days since ...) brought up to it.
func (o Online) Out(i int) Out {
	out := o.outs[i]
	if out.Since {
		out.Value = SinceDays(out.Anchor, o.at)
	}
	return out
}

// Ref returns column i as remembered, without a copy: read only. When its
// Since is set, its value at the instant is SinceDays(Anchor, At()), not
// Value.
func (o Online) Ref(i int) *Out { return &o.outs[i] }

// At returns the instant the columns are of.
func (o Online) At() int64 { return o.at }

// EvalOnline is Eval for current values of the profile that load returns:
// its columns say exactly what Eval(p, now) says, but it reuses the columns
// memo holds from an earlier instant as long as no record can have entered
// or left any window since; Online.Out brings the columns that move with
// time up to now. A lookup then costs neither a decoding of the profile nor
// a pass over the customer's history, nor a copy. memo must belong to the
// version of the profile that load returns.
func (s *Set) EvalOnline(memo *profile.Memo, load func() (*profile.Profile, error), now int64) (Online, error) {
	if m, ok := memo.Load().(*onlineMemo); ok && m.set == s && m.at <= now && now < m.until {
		return Online{outs: m.outs, at: now}, nil
	}
	p, err := load()
	if err != nil {
		return Online{}, err
	}
	outs := make([]Out, len(s.Columns))
	s.Eval(p, now, outs)
	memo.Store(&onlineMemo{set: s, at: now, until: s.horizon(p, now), outs: outs})
	return Online{outs: outs, at: now}, nil
}

// horizon returns the first instant after at at which a column of p can
// change other than by moving with time: when a record dated at or after at
// starts to count (an instant counts the records strictly before it), or
// when an event leaves one of the set's windows.
func (s *Set) horizon(p *profile.Profile, at int64) int64 {
	until := int64(math.MaxInt64)
	take := func(t int64) {
		if t < until {
			until = t
		}
	}
	// The first event and trait update at or after at count from just after
	// their time.
	if i := sort.Search(len(p.Events), func(i int) bool { return p.Events[i].Time >= at }); i < len(p.Events) {
		take(p.Events[i].Time + 1)
	}
	if i := sort.Search(len(p.Traits), func(i int) bool { return p.Traits[i].Time >= at }); i < len(p.Traits) {
		take(p.Traits[i].Time + 1)
	}
	// A window [at-w, at) loses its oldest event e once at-w > e.Time.
	for _, w := range s.windows {
		if i := sort.Search(len(p.Events), func(i int) bool { return p.Events[i].Time >= at-w }); i < len(p.Events) {
			take(p.Events[i].Time + w + 1)
		}
	}
	return until
}
