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

// EvalOnline is Eval for current values of the profile that load returns:
// it gives exactly what Eval(p, now) gives, but reuses the columns memo
// holds from an earlier instant as long as no record can have entered or
// left any window since, bringing the columns that move with time (days
// since ...) up to now. A lookup then costs a copy instead of decoding the
// profile and a pass over the customer's history. memo must belong to the
// version of the profile that load returns. out must have len(s.Columns)
// entries.
func (s *Set) EvalOnline(memo *profile.Memo, load func() (*profile.Profile, error), now int64, out []Out) error {
	if m, ok := memo.Load().(*onlineMemo); ok && m.set == s && m.at <= now && now < m.until {
		copy(out, m.outs)
		for i := range out {
			if out[i].Since {
				out[i].Value = SinceDays(out[i].Anchor, now)
			}
		}
		return nil
	}
	p, err := load()
	if err != nil {
		return err
	}
	s.Eval(p, now, out)
	memo.Store(&onlineMemo{set: s, at: now, until: s.horizon(p, now), outs: append([]Out(nil), out...)})
	return nil
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
