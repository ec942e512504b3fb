package profile

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

// MaxAppends is how many times an encoding is added to by appending before
// an Appender rewrites it whole (each append repeats the last sequence).
const MaxAppends = 16

// Appender applies records to an encoded profile without decoding it: a
// record is encoded and appended, and a new last sequence after it. In the
// protobuf wire format repeated fields may come in any order and the last
// value of a scalar field wins, so the result is an encoding of the profile
// with the records applied. A customer's new records then cost the same
// whatever the length of their history, where decoding and encoding it
// again costs in proportion.
//
// The records of an encoding stay in (Time, Seq) order, as Encode writes
// them and as any reader of the format may expect: a record dated before
// the latest one of its kind (a late event, an import) has the profile
// written whole instead. So has an encoding appended to MaxAppends times,
// which also drops the repeated last sequences.
type Appender struct {
	base    []byte // the stored encoding, read only
	delta   []byte // the records applied since, encoded
	tmp     []byte
	lastSeq uint64
	p       *Profile // when rewriting whole (a new or much appended profile)
	// latest is the latest (time, seq) of each kind of record (events,
	// trait updates, consents) in the encoding; whole is set once a record
	// came before it, so the encoding must be written whole.
	latest [3]at
	has    [3]bool
	whole  bool
}

// at is a record's place in the (Time, Seq) order.
type at struct {
	time int64
	seq  uint64
}

// NewAppender returns an Appender that adds to base, the stored encoding
// of the profile of key (empty when there is none).
func NewAppender(key eventlog.Key, base []byte) (*Appender, error) {
	a := &Appender{base: base}
	if len(base) == 0 {
		a.p = New(key)
		return a, nil
	}
	appends := 0
	err := walk(base, func(num protowire.Number, _ protowire.Type, v uint64, data []byte) error {
		switch num {
		case 4:
			a.lastSeq = v
			appends++
		case 5, 6, 7:
			r, err := placeOf(data)
			if err != nil {
				return fmt.Errorf("record of field %d: %w", num, err)
			}
			if k := num - 5; !a.has[k] || after(r.time, r.seq, a.latest[k].time, a.latest[k].seq) {
				a.latest[k], a.has[k] = r, true
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("decoding profile: %w", err)
	}
	if appends > MaxAppends {
		if a.p, err = Decode(base, nil); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// LastSeq returns the last sequence applied.
func (a *Appender) LastSeq() uint64 {
	if a.p != nil {
		return a.p.LastSeq
	}
	return a.lastSeq
}

// Apply is Profile.Apply on the encoding: it applies the record at seq
// unless seq is not after the last applied sequence (a redelivery), and
// reports whether it did.
func (a *Appender) Apply(seq uint64, r *ingestv1.StoredEvent) bool {
	if a.p != nil {
		return a.p.Apply(seq, r)
	}
	if seq <= a.lastSeq {
		return false
	}
	a.lastSeq = seq
	switch r.GetType() {
	case ingestv1.EventType_EVENT_TYPE_TRACK:
		e := eventOf(seq, r)
		a.order(0, e.Time, seq)
		a.delta, a.tmp = appendEventField(a.delta, a.tmp, &e)
	case ingestv1.EventType_EVENT_TYPE_IDENTIFY:
		u := traitsOf(seq, r)
		a.order(1, u.Time, seq)
		a.delta, a.tmp = appendTraitsField(a.delta, a.tmp, &u)
	case ingestv1.EventType_EVENT_TYPE_CONSENT:
		c := consentOf(seq, r)
		a.order(2, c.Time, seq)
		a.delta, a.tmp = appendConsentField(a.delta, a.tmp, &c)
	}
	return true
}

// placeOf returns the (time, seq) of an encoded record (Event,
// TraitUpdate or Consent: fields 1 and 2 of each).
func placeOf(record []byte) (at, error) {
	var r at
	err := walk(record, func(num protowire.Number, _ protowire.Type, v uint64, _ []byte) error {
		switch num {
		case 1:
			r.seq = v
		case 2:
			r.time = protowire.DecodeZigZag(v)
		}
		return nil
	})
	return r, err
}

// order notes a record of kind k at (t, seq): the latest of its kind, or
// one that makes the encoding be written whole.
func (a *Appender) order(k int, t int64, seq uint64) {
	if !a.has[k] || after(t, seq, a.latest[k].time, a.latest[k].seq) {
		a.latest[k], a.has[k] = at{t, seq}, true
	} else {
		a.whole = true
	}
}

// Bytes returns the encoding with every applied record, in a new slice.
func (a *Appender) Bytes() []byte {
	if a.p != nil {
		return Encode(nil, a.p)
	}
	b := make([]byte, 0, len(a.base)+len(a.delta)+protowire.SizeTag(4)+protowire.SizeVarint(a.lastSeq))
	b = append(b, a.base...)
	b = append(b, a.delta...)
	b = appendUint(b, 4, a.lastSeq)
	if a.whole {
		// Decode puts the records in order; Encode writes them so.
		if p, err := Decode(b, nil); err == nil {
			return Encode(b[:0], p)
		}
	}
	return b
}
