package profile

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
)

// The encoding is the protobuf wire format of these messages (field numbers
// fixed; unknown fields are skipped, so fields can be added):
//
//	message Profile { uint32 format = 1; string id = 2; uint32 kind = 3; // 0 user, 1 anonymous
//	  uint64 last_seq = 4; repeated Event events = 5; repeated TraitUpdate traits = 6;
//	  repeated Consent consents = 7; repeated Dropped dropped = 8; }
//	message Event { uint64 seq = 1; sint64 time = 2; string message_id = 3; string name = 4;
//	  string item_id = 5; optional double value = 6; string currency = 7; string channel = 8;
//	  string campaign = 9; repeated Prop props = 10; string import_id = 11; int64 row = 12; }
//	message TraitUpdate { uint64 seq = 1; sint64 time = 2; string message_id = 3;
//	  repeated Prop traits = 4; string import_id = 5; int64 row = 6; }
//	message Consent { uint64 seq = 1; sint64 time = 2; int32 state = 3; }
//	message Prop { string name = 1; bullseye.common.v1.Value value = 2; }
//	message Dropped { string name = 1; int64 count = 2; sint64 latest = 3; }
//
// Times are Unix nanoseconds; a Value is encoded as bullseye.common.v1.Value.

const formatVersion = 1

// Encode appends the encoding of p to b.
func Encode(b []byte, p *Profile) []byte {
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, formatVersion)
	b = appendString(b, 2, p.ID)
	if p.Kind == eventlog.KindAnonymous {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	b = appendUint(b, 4, p.LastSeq)
	var tmp []byte
	for i := range p.Events {
		b, tmp = appendEventField(b, tmp, &p.Events[i])
	}
	for i := range p.Traits {
		b, tmp = appendTraitsField(b, tmp, &p.Traits[i])
	}
	for i := range p.Consents {
		b, tmp = appendConsentField(b, tmp, &p.Consents[i])
	}
	for _, d := range p.Dropped {
		tmp = appendString(tmp[:0], 1, d.Name)
		tmp = appendUint(tmp, 2, uint64(d.Count))
		tmp = appendSint(tmp, 3, d.Latest)
		b = protowire.AppendTag(b, 8, protowire.BytesType)
		b = protowire.AppendBytes(b, tmp)
	}
	return b
}

// appendEventField, appendTraitsField and appendConsentField append one
// record as a field of Profile (5, 6 and 7), encoding it in tmp first;
// they return b and tmp for reuse.
func appendEventField(b, tmp []byte, e *Event) ([]byte, []byte) {
	tmp = encodeEvent(tmp[:0], e)
	b = protowire.AppendTag(b, 5, protowire.BytesType)
	return protowire.AppendBytes(b, tmp), tmp
}

func appendTraitsField(b, tmp []byte, u *TraitUpdate) ([]byte, []byte) {
	tmp = encodeTraits(tmp[:0], u)
	b = protowire.AppendTag(b, 6, protowire.BytesType)
	return protowire.AppendBytes(b, tmp), tmp
}

func appendConsentField(b, tmp []byte, c *Consent) ([]byte, []byte) {
	tmp = appendUint(tmp[:0], 1, c.Seq)
	tmp = appendSint(tmp, 2, c.Time)
	tmp = appendUint(tmp, 3, uint64(c.State))
	b = protowire.AppendTag(b, 7, protowire.BytesType)
	return protowire.AppendBytes(b, tmp), tmp
}

func encodeEvent(b []byte, e *Event) []byte {
	b = appendUint(b, 1, e.Seq)
	b = appendSint(b, 2, e.Time)
	b = appendString(b, 3, e.MessageID)
	b = appendString(b, 4, e.Name)
	b = appendString(b, 5, e.ItemID)
	if e.HasValue {
		b = protowire.AppendTag(b, 6, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(e.Value))
	}
	b = appendString(b, 7, e.Currency)
	b = appendString(b, 8, e.Channel)
	b = appendString(b, 9, e.Campaign)
	b = appendProps(b, 10, e.Props)
	b = appendString(b, 11, e.ImportID)
	if e.ImportID != "" {
		b = protowire.AppendTag(b, 12, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(e.Row))
	}
	return b
}

func encodeTraits(b []byte, u *TraitUpdate) []byte {
	b = appendUint(b, 1, u.Seq)
	b = appendSint(b, 2, u.Time)
	b = appendString(b, 3, u.MessageID)
	b = appendProps(b, 4, u.Traits)
	b = appendString(b, 5, u.ImportID)
	if u.ImportID != "" {
		b = protowire.AppendTag(b, 6, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(u.Row))
	}
	return b
}

func appendProps(b []byte, num protowire.Number, ps []Prop) []byte {
	for _, p := range ps {
		var vb [32]byte
		v := appendValue(vb[:0], p.Value)
		n := protowire.SizeTag(1) + protowire.SizeBytes(len(p.Name))
		if len(v) > 0 || p.Value.Kind != Null {
			n += protowire.SizeTag(2) + protowire.SizeBytes(len(v))
		}
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(n))
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, p.Name)
		if len(v) > 0 || p.Value.Kind != Null {
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			b = protowire.AppendBytes(b, v)
		}
	}
	return b
}

// appendValue appends the bullseye.common.v1.Value encoding of v.
func appendValue(b []byte, v Value) []byte {
	switch v.Kind {
	case Number:
		b = protowire.AppendTag(b, 1, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(v.Num))
	case Int:
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(v.Int))
	case String:
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendString(b, v.Str)
	case Bool:
		b = protowire.AppendTag(b, 4, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(v.Int))
	case Time:
		s, n := v.Int/1e9, v.Int%1e9
		if n < 0 {
			s, n = s-1, n+1e9
		}
		var ts []byte
		if s != 0 {
			ts = protowire.AppendTag(ts, 1, protowire.VarintType)
			ts = protowire.AppendVarint(ts, uint64(s))
		}
		if n != 0 {
			ts = protowire.AppendTag(ts, 2, protowire.VarintType)
			ts = protowire.AppendVarint(ts, uint64(n))
		}
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendBytes(b, ts)
	}
	return b
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendUint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendSint(b []byte, num protowire.Number, v int64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, protowire.EncodeZigZag(v))
}

// Interner makes decoded strings that repeat (names, import ids) share
// memory. A nil Interner interns nothing. It is not safe for concurrent use.
type Interner map[string]string

func (in Interner) str(b []byte) string {
	if in == nil {
		return string(b)
	}
	if s, ok := in[string(b)]; ok {
		return s
	}
	s := string(b)
	in[s] = s
	return s
}

var errTruncated = errors.New("truncated field")

// Decode decodes a profile encoded by Encode. in, if not nil, interns
// repeated strings.
func Decode(b []byte, in Interner) (*Profile, error) {
	p := &Profile{Kind: eventlog.KindUser}
	err := walk(b, func(num protowire.Number, typ protowire.Type, v uint64, data []byte) error {
		switch num {
		case 1:
			if v != formatVersion {
				return fmt.Errorf("format %d, want %d", v, formatVersion)
			}
		case 2:
			p.ID = string(data)
		case 3:
			if v == 1 {
				p.Kind = eventlog.KindAnonymous
			}
		case 4:
			p.LastSeq = v
		case 5:
			e, err := decodeEvent(data, in)
			if err != nil {
				return fmt.Errorf("event %d: %w", len(p.Events), err)
			}
			p.Events = append(p.Events, e)
		case 6:
			u, err := decodeTraits(data, in)
			if err != nil {
				return fmt.Errorf("trait update %d: %w", len(p.Traits), err)
			}
			p.Traits = append(p.Traits, u)
		case 7:
			var c Consent
			if err := walk(data, func(num protowire.Number, _ protowire.Type, v uint64, _ []byte) error {
				switch num {
				case 1:
					c.Seq = v
				case 2:
					c.Time = protowire.DecodeZigZag(v)
				case 3:
					c.State = commonv1.ConsentState(v)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("consent %d: %w", len(p.Consents), err)
			}
			p.Consents = append(p.Consents, c)
		case 8:
			var d Dropped
			if err := walk(data, func(num protowire.Number, _ protowire.Type, v uint64, data []byte) error {
				switch num {
				case 1:
					d.Name = in.str(data)
				case 2:
					d.Count = int64(v)
				case 3:
					d.Latest = protowire.DecodeZigZag(v)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("dropped count %d: %w", len(p.Dropped), err)
			}
			p.Dropped = append(p.Dropped, d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("decoding profile: %w", err)
	}
	// Encode and Appender write records in (Time, Seq) order; an encoding
	// written otherwise (by hand, by an older Appender) is put in order
	// here, at the cost of a check when it already is. (The comparisons
	// take no closure over a key function: that would move every compared
	// record to the heap.)
	if !slices.IsSortedFunc(p.Events, compareEvents) {
		slices.SortFunc(p.Events, compareEvents)
	}
	if !slices.IsSortedFunc(p.Traits, compareTraits) {
		slices.SortFunc(p.Traits, compareTraits)
	}
	if !slices.IsSortedFunc(p.Consents, compareConsents) {
		slices.SortFunc(p.Consents, compareConsents)
	}
	return p, nil
}

// compareEvents, compareTraits and compareConsents order records by
// (time, sequence).
func compareEvents(a, b Event) int       { return compareAt(a.Time, a.Seq, b.Time, b.Seq) }
func compareTraits(a, b TraitUpdate) int { return compareAt(a.Time, a.Seq, b.Time, b.Seq) }
func compareConsents(a, b Consent) int   { return compareAt(a.Time, a.Seq, b.Time, b.Seq) }
func compareAt(t1 int64, s1 uint64, t2 int64, s2 uint64) int {
	switch {
	case after(t1, s1, t2, s2):
		return 1
	case after(t2, s2, t1, s1):
		return -1
	}
	return 0
}

func decodeEvent(b []byte, in Interner) (Event, error) {
	var e Event
	err := walk(b, func(num protowire.Number, _ protowire.Type, v uint64, data []byte) error {
		switch num {
		case 1:
			e.Seq = v
		case 2:
			e.Time = protowire.DecodeZigZag(v)
		case 3:
			e.MessageID = string(data)
		case 4:
			e.Name = in.str(data)
		case 5:
			e.ItemID = in.str(data)
		case 6:
			e.HasValue, e.Value = true, math.Float64frombits(v)
		case 7:
			e.Currency = in.str(data)
		case 8:
			e.Channel = in.str(data)
		case 9:
			e.Campaign = in.str(data)
		case 10:
			p, err := decodeProp(data, in)
			if err != nil {
				return err
			}
			e.Props = append(e.Props, p)
		case 11:
			e.ImportID = in.str(data)
		case 12:
			e.Row = int64(v)
		}
		return nil
	})
	return e, err
}

func decodeTraits(b []byte, in Interner) (TraitUpdate, error) {
	var u TraitUpdate
	err := walk(b, func(num protowire.Number, _ protowire.Type, v uint64, data []byte) error {
		switch num {
		case 1:
			u.Seq = v
		case 2:
			u.Time = protowire.DecodeZigZag(v)
		case 3:
			u.MessageID = string(data)
		case 4:
			p, err := decodeProp(data, in)
			if err != nil {
				return err
			}
			u.Traits = append(u.Traits, p)
		case 5:
			u.ImportID = in.str(data)
		case 6:
			u.Row = int64(v)
		}
		return nil
	})
	return u, err
}

func decodeProp(b []byte, in Interner) (Prop, error) {
	var p Prop
	err := walk(b, func(num protowire.Number, _ protowire.Type, _ uint64, data []byte) error {
		switch num {
		case 1:
			p.Name = in.str(data)
		case 2:
			v, err := decodeValue(data, in)
			if err != nil {
				return err
			}
			p.Value = v
		}
		return nil
	})
	return p, err
}

func decodeValue(b []byte, in Interner) (Value, error) {
	var v Value
	err := walk(b, func(num protowire.Number, _ protowire.Type, x uint64, data []byte) error {
		switch num {
		case 1:
			v = NumberValue(math.Float64frombits(x))
		case 2:
			v = IntValue(int64(x))
		case 3:
			v = StringValue(in.str(data))
		case 4:
			v = BoolValue(x != 0)
		case 5:
			var s, n int64
			if err := walk(data, func(num protowire.Number, _ protowire.Type, x uint64, _ []byte) error {
				switch num {
				case 1:
					s = int64(x)
				case 2:
					n = int64(x)
				}
				return nil
			}); err != nil {
				return err
			}
			v = TimeValue(s*1e9 + n)
		}
		return nil
	})
	return v, err
}

// walk calls fn for each field of a message: v holds varint and fixed
// values, data the bytes of length-delimited ones.
func walk(b []byte, fn func(num protowire.Number, typ protowire.Type, v uint64, data []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v uint64
		var data []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var x uint32
			x, n = protowire.ConsumeFixed32(b)
			v = uint64(x)
		case protowire.BytesType:
			data, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, errTruncated)
		}
		b = b[n:]
		if err := fn(num, typ, v, data); err != nil {
			return err
		}
	}
	return nil
}
