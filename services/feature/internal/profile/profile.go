package profile

import (
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/pkg/values"
)

// Prop is one named value: an event property or a trait.
type Prop struct {
	// Name is the property's or trait's name.
	Name string
	// Value is its value; null clears a trait.
	Value Value
}

// Event is one behavioural event of a customer.
type Event struct {
	// Seq is the record's sequence in the events stream.
	Seq uint64
	// Time is the event time, Unix nanoseconds.
	Time int64
	// MessageID is the record's message id.
	MessageID string
	// Name is the event's name, e.g. "Order Completed".
	Name string
	// ItemID is the item the event is about, or empty.
	ItemID string
	// HasValue says whether Value is set.
	HasValue bool
	// Value is the event's value, when HasValue.
	Value float64
	// Currency is the ISO 4217 code of Value's currency, or empty.
	Currency string
	// Channel is the context's channel, or empty.
	Channel string
	// Campaign is the context's campaign id, or empty.
	Campaign string
	// Props are the event's properties, in name order.
	Props []Prop
	// ImportID is the import the record came from, or empty.
	ImportID string
	// Row is the record's row number in that import.
	Row int64
}

// Prop returns the named property, or null.
func (e *Event) Prop(name string) Value {
	for i := range e.Props {
		if e.Props[i].Name == name {
			return e.Props[i].Value
		}
	}
	return Value{}
}

// TraitUpdate is one update of a customer's traits.
type TraitUpdate struct {
	// Seq is the record's sequence in the events stream.
	Seq uint64
	// Time is when the traits took these values, Unix nanoseconds.
	Time int64
	// MessageID is the record's message id.
	MessageID string
	// Traits are the traits set (a null value clears one), in name order.
	Traits []Prop
	// ImportID is the import the record came from, or empty.
	ImportID string
	// Row is the record's row number in that import.
	Row int64
}

// Consent is one consent change of a customer.
type Consent struct {
	// Seq is the record's sequence in the events stream.
	Seq uint64
	// Time is when the customer expressed it, Unix nanoseconds.
	Time int64
	// State is the new state.
	State commonv1.ConsentState
}

// Profile is the state of one customer (or anonymous visitor): every
// record applied to it, in event-time order, so that any instant's view can
// be computed. A Profile that has been shared (put in a cache or handed to
// readers) is never modified: Apply works on a Clone.
type Profile struct {
	// ID is the customer's (or visitor's) id.
	ID string
	// Kind says whether ID is a customer or an anonymous id.
	Kind eventlog.Kind
	// LastSeq is the stream sequence of the last record applied.
	LastSeq uint64
	// Events are the behavioural events, by (Time, Seq).
	Events []Event
	// Traits are the trait updates, by (Time, Seq).
	Traits []TraitUpdate
	// Consents are the consent changes, by (Time, Seq).
	Consents []Consent
	// Dropped counts, per event name, the oldest events dropped by the
	// retention (the cap on a profile's size), in name order.
	Dropped []Dropped
}

// Dropped is how many events of one name a profile dropped by retention,
// and the latest time among them: aggregates over windows reaching back
// to that time undercount.
type Dropped struct {
	// Name is the events' name.
	Name string
	// Count is how many were dropped.
	Count int64
	// Latest is the latest event time among them, Unix nanoseconds.
	Latest int64
}

// DropOldest drops the oldest n events and counts them in Dropped.
func (p *Profile) DropOldest(n int) {
	n = min(n, len(p.Events))
	for _, e := range p.Events[:n] {
		i, found := slices.BinarySearchFunc(p.Dropped, e.Name, func(d Dropped, name string) int { return strings.Compare(d.Name, name) })
		if !found {
			p.Dropped = slices.Insert(p.Dropped, i, Dropped{Name: e.Name})
		}
		d := &p.Dropped[i]
		d.Count++
		d.Latest = max(d.Latest, e.Time)
	}
	p.Events = slices.Delete(p.Events, 0, n)
}

// DroppedEvents returns how many events the profile dropped by retention.
func (p *Profile) DroppedEvents() int64 {
	var n int64
	for _, d := range p.Dropped {
		n += d.Count
	}
	return n
}

// Memo keeps a value derived from one stored version of a profile (feature
// values evaluated online) with that version: a stored version never
// changes, so what a reader derived from it stays true of it, and a new
// version starts without a memo. The zero Memo is empty; it is safe for
// concurrent use.
type Memo struct{ p atomic.Pointer[memoBox] }

type memoBox struct{ v any }

// Load returns the value last stored, or nil.
func (m *Memo) Load() any {
	if b := m.p.Load(); b != nil {
		return b.v
	}
	return nil
}

// Store keeps v, replacing any earlier value.
func (m *Memo) Store(v any) { m.p.Store(&memoBox{v}) }

// New returns the empty state of key.
func New(key eventlog.Key) *Profile {
	return &Profile{ID: key.ID, Kind: key.Kind}
}

// Key returns the profile's subject key.
func (p *Profile) Key() eventlog.Key { return eventlog.Key{Kind: p.Kind, ID: p.ID} }

// Apply applies the record stored at seq to p and reports whether it
// changed p. A record at or below LastSeq was applied already and is
// ignored, so redelivery is harmless. Erasure records are not applied here:
// the caller deletes the state.
func (p *Profile) Apply(seq uint64, r *ingestv1.StoredEvent) bool {
	if seq <= p.LastSeq {
		return false
	}
	p.LastSeq = seq
	switch r.GetType() {
	case ingestv1.EventType_EVENT_TYPE_TRACK:
		e := eventOf(seq, r)
		i := sort.Search(len(p.Events), func(i int) bool { return after(p.Events[i].Time, p.Events[i].Seq, e.Time, seq) })
		p.Events = slices.Insert(p.Events, i, e)
	case ingestv1.EventType_EVENT_TYPE_IDENTIFY:
		u := traitsOf(seq, r)
		i := sort.Search(len(p.Traits), func(i int) bool { return after(p.Traits[i].Time, p.Traits[i].Seq, u.Time, seq) })
		p.Traits = slices.Insert(p.Traits, i, u)
	case ingestv1.EventType_EVENT_TYPE_CONSENT:
		c := consentOf(seq, r)
		i := sort.Search(len(p.Consents), func(i int) bool { return after(p.Consents[i].Time, p.Consents[i].Seq, c.Time, seq) })
		p.Consents = slices.Insert(p.Consents, i, c)
	}
	return true
}

// eventOf, traitsOf and consentOf turn the record at seq into what a
// profile keeps of it.
func eventOf(seq uint64, r *ingestv1.StoredEvent) Event {
	return Event{
		Seq:       seq,
		Time:      values.UnixNanos(r.GetEventTime()),
		MessageID: r.GetMessageId(),
		Name:      r.GetName(),
		ItemID:    r.GetItemId(),
		HasValue:  r.Value != nil,
		Value:     r.GetValue(),
		Currency:  r.GetCurrency(),
		Channel:   r.GetContext().GetChannel(),
		Campaign:  r.GetContext().GetCampaign().GetId(),
		Props:     props(r.GetProperties()),
		ImportID:  r.GetImportId(),
		Row:       r.GetRowNumber(),
	}
}

func traitsOf(seq uint64, r *ingestv1.StoredEvent) TraitUpdate {
	return TraitUpdate{
		Seq:       seq,
		Time:      values.UnixNanos(r.GetEventTime()),
		MessageID: r.GetMessageId(),
		Traits:    props(r.GetTraits()),
		ImportID:  r.GetImportId(),
		Row:       r.GetRowNumber(),
	}
}

func consentOf(seq uint64, r *ingestv1.StoredEvent) Consent {
	return Consent{Seq: seq, Time: values.UnixNanos(r.GetEventTime()), State: r.GetConsentState()}
}

// after reports whether (t1, s1) comes after (t2, s2).
func after(t1 int64, s1 uint64, t2 int64, s2 uint64) bool {
	return t1 > t2 || (t1 == t2 && s1 > s2)
}

func props(m map[string]*commonv1.Value) []Prop {
	if len(m) == 0 {
		return nil
	}
	out := make([]Prop, 0, len(m))
	for k, v := range m {
		out = append(out, Prop{Name: k, Value: FromProto(v)})
	}
	slices.SortFunc(out, func(a, b Prop) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// EventsBefore returns the events with time in [from, to), in time order;
// from = math.MinInt64 means no lower bound.
func (p *Profile) EventsBefore(from, to int64) []Event {
	lo := sort.Search(len(p.Events), func(i int) bool { return p.Events[i].Time >= from })
	hi := sort.Search(len(p.Events), func(i int) bool { return p.Events[i].Time >= to })
	if hi < lo {
		hi = lo
	}
	return p.Events[lo:hi]
}

// TraitAt returns the value of a trait as of the instant before (updates
// strictly before it) and the time of the update that set it; found is
// false when no update before that instant set or cleared it.
func (p *Profile) TraitAt(name string, before int64) (v Value, t int64, found bool) {
	hi := sort.Search(len(p.Traits), func(i int) bool { return p.Traits[i].Time >= before })
	for i := hi - 1; i >= 0; i-- {
		u := &p.Traits[i]
		for j := range u.Traits {
			if u.Traits[j].Name == name {
				return u.Traits[j].Value, u.Time, true
			}
		}
	}
	return Value{}, 0, false
}

// ConsentAt returns the consent state as of the instant before (changes
// strictly before it), and CONSENT_STATE_UNSPECIFIED when there is none.
func (p *Profile) ConsentAt(before int64) commonv1.ConsentState {
	hi := sort.Search(len(p.Consents), func(i int) bool { return p.Consents[i].Time >= before })
	if hi == 0 {
		return commonv1.ConsentState_CONSENT_STATE_UNSPECIFIED
	}
	return p.Consents[hi-1].State
}

// Consent returns the latest consent state.
func (p *Profile) Consent() commonv1.ConsentState {
	if len(p.Consents) == 0 {
		return commonv1.ConsentState_CONSENT_STATE_UNSPECIFIED
	}
	return p.Consents[len(p.Consents)-1].State
}

// FirstTime returns the earliest time of any record, and false when the
// profile holds none.
func (p *Profile) FirstTime() (int64, bool) {
	first, ok := int64(0), false
	take := func(t int64) {
		if !ok || t < first {
			first, ok = t, true
		}
	}
	if len(p.Events) > 0 {
		take(p.Events[0].Time)
	}
	if len(p.Traits) > 0 {
		take(p.Traits[0].Time)
	}
	if len(p.Consents) > 0 {
		take(p.Consents[0].Time)
	}
	return first, ok
}

// LastTime returns the latest time of any record, and false when the
// profile holds none.
func (p *Profile) LastTime() (int64, bool) {
	last, ok := int64(0), false
	take := func(t int64) {
		if !ok || t > last {
			last, ok = t, true
		}
	}
	if n := len(p.Events); n > 0 {
		take(p.Events[n-1].Time)
	}
	if n := len(p.Traits); n > 0 {
		take(p.Traits[n-1].Time)
	}
	if n := len(p.Consents); n > 0 {
		take(p.Consents[n-1].Time)
	}
	return last, ok
}

// Empty reports whether the profile holds no record.
func (p *Profile) Empty() bool {
	return len(p.Events) == 0 && len(p.Traits) == 0 && len(p.Consents) == 0
}

// UpTo returns the view of p that holds only the records stored at or
// before seq, sharing p's memory when nothing is left out.
func (p *Profile) UpTo(seq uint64) *Profile {
	if p.LastSeq <= seq {
		return p
	}
	c := &Profile{ID: p.ID, Kind: p.Kind, LastSeq: seq, Dropped: p.Dropped}
	for _, e := range p.Events {
		if e.Seq <= seq {
			c.Events = append(c.Events, e)
		}
	}
	for _, u := range p.Traits {
		if u.Seq <= seq {
			c.Traits = append(c.Traits, u)
		}
	}
	for _, x := range p.Consents {
		if x.Seq <= seq {
			c.Consents = append(c.Consents, x)
		}
	}
	return c
}

// ImportRow returns the entity's row in an import: the row of its latest
// trait update from the import, or its first row when the import gave it
// only events. With importID empty, the import is the one that set the
// entity's traits most recently (or, failing that, the first import that
// gave it an event). ok is false when no record came from an import.
func (p *Profile) ImportRow(importID string) (id string, row int64, ok bool) {
	for i := len(p.Traits) - 1; i >= 0; i-- {
		u := &p.Traits[i]
		if u.ImportID != "" && (importID == "" || u.ImportID == importID) {
			return u.ImportID, u.Row, true
		}
	}
	for i := range p.Events {
		e := &p.Events[i]
		if e.ImportID == "" || (importID != "" && e.ImportID != importID) {
			continue
		}
		if !ok || e.Row < row && e.ImportID == id {
			id, row, ok = e.ImportID, e.Row, true
		}
	}
	return id, row, ok
}

// HasImport reports whether any record came from the import.
func (p *Profile) HasImport(importID string) bool {
	for i := range p.Traits {
		if p.Traits[i].ImportID == importID {
			return true
		}
	}
	for i := range p.Events {
		if p.Events[i].ImportID == importID {
			return true
		}
	}
	return false
}
