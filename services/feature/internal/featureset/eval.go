package featureset

import (
	"math"
	"time"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
)

// traitBlock is a trait feature: the trait's value as of the instant.
type traitBlock struct {
	trait string
	typ   commonv1.ValueType
}

func (b *traitBlock) width() int { return 1 }

func (b *traitBlock) eval(p *profile.Profile, at int64, out []Out) {
	v, t, found := p.TraitAt(b.trait, at)
	if !found || v.IsNull() {
		out[0] = Out{}
		return
	}
	out[0] = Out{Value: v.Convert(b.typ), Update: t, HasUpdate: true}
	if out[0].Value.IsNull() {
		out[0] = Out{}
	}
}

// aggBlock is an aggregate feature.
type aggBlock struct {
	agg    featurev1.Aggregation
	filter *Filter
	window int64
	get    func(*profile.Event) profile.Value
	loc    *time.Location
	typ    commonv1.ValueType
}

func (b *aggBlock) width() int { return 1 }

// changed returns when a windowed aggregate last changed: at its last
// matching event in the window, or when the last matching event before the
// window left it, whichever is later.
func changed(p *profile.Profile, f *Filter, start, window int64, lastIn int64, haveIn bool) (int64, bool) {
	t, ok := lastIn, haveIn
	if window == 0 {
		return t, ok
	}
	before := p.EventsBefore(math.MinInt64, start)
	for i := len(before) - 1; i >= 0; i-- {
		if f.Match(&before[i]) {
			if left := before[i].Time + window; !ok || left > t {
				t, ok = left, true
			}
			break
		}
	}
	return t, ok
}

func (b *aggBlock) eval(p *profile.Profile, at int64, out []Out) {
	start := windowStart(at, b.window)
	evs := p.EventsBefore(start, at)
	var (
		n            int64
		sum          float64
		set          int64
		best         profile.Value
		first, last  int64
		have         bool
		distinct     map[string]struct{}
		days         int64
		prevDay      int64
		countLike    = true
		resultIsNull bool
	)
	for i := range evs {
		e := &evs[i]
		if !b.filter.Match(e) {
			continue
		}
		if !have {
			first = e.Time
		}
		last, have = e.Time, true
		switch b.agg {
		case featurev1.Aggregation_AGGREGATION_COUNT:
			n++
		case featurev1.Aggregation_AGGREGATION_SUM, featurev1.Aggregation_AGGREGATION_MEAN:
			if f, ok := b.get(e).Float(); ok {
				sum += f
				set++
			}
		case featurev1.Aggregation_AGGREGATION_MIN, featurev1.Aggregation_AGGREGATION_MAX:
			v := b.get(e)
			if b.typ == commonv1.ValueType_VALUE_TYPE_TIME {
				if v.Kind != profile.Time {
					continue
				}
			} else if _, ok := v.Float(); !ok {
				continue
			}
			if best.IsNull() {
				best = v
				continue
			}
			c, _ := v.Compare(best)
			if (b.agg == featurev1.Aggregation_AGGREGATION_MIN && c < 0) || (b.agg == featurev1.Aggregation_AGGREGATION_MAX && c > 0) {
				best = v
			}
		case featurev1.Aggregation_AGGREGATION_DISTINCT_COUNT:
			v := b.get(e)
			if v.IsNull() {
				continue
			}
			if distinct == nil {
				distinct = map[string]struct{}{}
			}
			distinct[v.Key()] = struct{}{}
		case featurev1.Aggregation_AGGREGATION_DISTINCT_DAYS:
			d := dayStart(e.Time, b.loc)
			if days == 0 || d != prevDay {
				days++
				prevDay = d
			}
		}
	}
	var v profile.Value
	switch b.agg {
	case featurev1.Aggregation_AGGREGATION_COUNT:
		v = profile.IntValue(n)
	case featurev1.Aggregation_AGGREGATION_SUM:
		v = profile.NumberValue(sum)
	case featurev1.Aggregation_AGGREGATION_MEAN:
		if set == 0 {
			resultIsNull = true
		} else {
			v = profile.NumberValue(sum / float64(set))
		}
	case featurev1.Aggregation_AGGREGATION_MIN, featurev1.Aggregation_AGGREGATION_MAX:
		if best.IsNull() {
			resultIsNull = true
		} else {
			v = best.Convert(b.typ)
		}
	case featurev1.Aggregation_AGGREGATION_DISTINCT_COUNT:
		v = profile.IntValue(int64(len(distinct)))
	case featurev1.Aggregation_AGGREGATION_DISTINCT_DAYS:
		v = profile.IntValue(days)
	case featurev1.Aggregation_AGGREGATION_DAYS_SINCE_LAST:
		countLike = false
		if have {
			out[0] = Out{Value: SinceDays(last, at), Update: last, HasUpdate: true, Since: true, Anchor: last}
			return
		}
		resultIsNull = true
	case featurev1.Aggregation_AGGREGATION_DAYS_SINCE_FIRST:
		countLike = false
		if have {
			out[0] = Out{Value: SinceDays(first, at), Update: first, HasUpdate: true, Since: true, Anchor: first}
			return
		}
		resultIsNull = true
	}
	if resultIsNull || !countLike {
		out[0] = Out{}
		return
	}
	t, ok := changed(p, b.filter, start, b.window, last, have)
	out[0] = Out{Value: v, Update: t, HasUpdate: ok}
}

// dayStart returns the first instant of the calendar day (in loc) of t.
func dayStart(t int64, loc *time.Location) int64 {
	if loc == time.UTC {
		d := t / Day * Day
		if t < 0 && t%Day != 0 {
			d -= Day
		}
		return d
	}
	y, m, d := time.Unix(0, t).In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc).UnixNano()
}

// rfmBlock is an RFM group.
type rfmBlock struct {
	filter *Filter
	window int64
	loc    *time.Location
	btyd   bool
}

func (b *rfmBlock) width() int {
	if b.btyd {
		return 5
	}
	return 4
}

func (b *rfmBlock) eval(p *profile.Profile, at int64, out []Out) {
	start := windowStart(at, b.window)
	evs := p.EventsBefore(start, at)
	var (
		n, valued      int64
		total          float64
		first, last    int64
		have           bool
		dayCount       int64
		curDay         int64
		dayTotals      float64 // sum of every day's total
		firstDayTotal  float64
		firstDay, lDay int64
	)
	for i := range evs {
		e := &evs[i]
		if !b.filter.Match(e) {
			continue
		}
		if !have {
			first = e.Time
		}
		last, have = e.Time, true
		n++
		val := 0.0
		if e.HasValue {
			val = e.Value
			valued++
		}
		total += val
		if b.btyd {
			d := dayStart(e.Time, b.loc)
			if dayCount == 0 || d != curDay {
				dayCount++
				curDay = d
				if dayCount == 1 {
					firstDay = d
				}
				lDay = d
			}
			if dayCount == 1 {
				firstDayTotal += val
			}
			dayTotals += val
		}
	}
	if !have {
		for i := range out {
			out[i] = Out{}
		}
		return
	}
	_ = first
	t, ok := changed(p, b.filter, start, b.window, last, have)
	set := func(i int, v profile.Value) { out[i] = Out{Value: v, Update: t, HasUpdate: ok} }
	if !b.btyd {
		out[0] = Out{Value: SinceDays(last, at), Update: t, HasUpdate: ok, Since: true, Anchor: last}
		set(1, profile.IntValue(n))
		set(2, profile.NumberValue(total))
		if valued > 0 {
			set(3, profile.NumberValue(total/float64(valued)))
		} else {
			out[3] = Out{}
		}
		return
	}
	freq := dayCount - 1
	set(0, profile.IntValue(freq))
	set(1, profile.NumberValue(float64(lDay-firstDay)/float64(Day)))
	out[2] = Out{Value: SinceDays(firstDay, at), Update: t, HasUpdate: ok, Since: true, Anchor: firstDay}
	set(3, profile.NumberValue(dayTotals/float64(dayCount)))
	if freq == 0 {
		set(4, profile.NumberValue(0))
	} else {
		set(4, profile.NumberValue((dayTotals-firstDayTotal)/float64(freq)))
	}
}
