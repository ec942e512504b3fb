// Package record turns the items ingest receives (events, trait updates,
// consent changes) into the StoredEvent records of the event log: it
// validates them, reporting every problem with a field path and a stable
// reason, corrects client clock skew, and replaces personal values by keyed
// pseudonyms. It also makes the pseudonymised copies kept as dead letters.
package record

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/pkg/values"
)

// Limits of item fields, as documented in the API. Ids (message, customer,
// anonymous and item ids) and names (event, trait and property names)
// follow the shared rules of every service's door (pkg/fault: CheckID and
// CheckName, at most fault.MaxIDBytes and fault.MaxNameBytes, no control
// characters), so that whatever ingest stores the other services can look
// up.
const (
	// MaxSourceBytes bounds consent sources.
	MaxSourceBytes = 128
)

// Stable problem reasons.
const (
	// ReasonMissing: a required field is empty.
	ReasonMissing = "MISSING"
	// ReasonTooLong: a field is longer than its limit.
	ReasonTooLong = "TOO_LONG"
	// ReasonTooLarge: the whole item is larger than the limit.
	ReasonTooLarge = "TOO_LARGE"
	// ReasonLooksLikeEmail: an id has the shape of an email address.
	ReasonLooksLikeEmail = "LOOKS_LIKE_EMAIL"
	// ReasonLooksLikePhone: an id has the shape of a phone number.
	ReasonLooksLikePhone = "LOOKS_LIKE_PHONE"
	// ReasonWrongType: a value does not have its field's type.
	ReasonWrongType = "WRONG_TYPE"
	// ReasonNotFinite: a number is NaN or infinite.
	ReasonNotFinite = "NOT_FINITE"
	// ReasonInvalidCurrency: a currency is not an ISO 4217 code.
	ReasonInvalidCurrency = "INVALID_CURRENCY"
	// ReasonInvalidTimestamp: a timestamp is out of range or malformed.
	ReasonInvalidTimestamp = "INVALID_TIMESTAMP"
	// ReasonInvalidState: a consent state cannot be set this way.
	ReasonInvalidState = "INVALID_STATE"
	// ReasonInvalid: a field holds characters it may not.
	ReasonInvalid = "INVALID"
	// ReasonEmptyKey: a trait or property has an empty name.
	ReasonEmptyKey = "EMPTY_KEY"
	// ReasonInvalidUTF8: a string is not valid UTF-8.
	ReasonInvalidUTF8 = "INVALID_UTF8"
)

// DefaultPersonalFields are the fields pseudonymised unless configured
// otherwise: traits and properties with these names (compared without
// regard to case) and the context's IP address.
var DefaultPersonalFields = []string{"email", "phone", "name", "first_name", "last_name", "address", "ip", "context.ip"}

// DefaultPropertyTypes are the types of well-known properties (Segment's
// e-commerce spec): a property of one of these names with another type is
// WRONG_TYPE. NUMBER accepts whole numbers too.
var DefaultPropertyTypes = map[string]commonv1.ValueType{
	"quantity": commonv1.ValueType_VALUE_TYPE_INT,
	"price":    commonv1.ValueType_VALUE_TYPE_NUMBER,
	"revenue":  commonv1.ValueType_VALUE_TYPE_NUMBER,
	"total":    commonv1.ValueType_VALUE_TYPE_NUMBER,
	"subtotal": commonv1.ValueType_VALUE_TYPE_NUMBER,
	"discount": commonv1.ValueType_VALUE_TYPE_NUMBER,
	"tax":      commonv1.ValueType_VALUE_TYPE_NUMBER,
	"shipping": commonv1.ValueType_VALUE_TYPE_NUMBER,
	"currency": commonv1.ValueType_VALUE_TYPE_STRING,
	"rating":   commonv1.ValueType_VALUE_TYPE_NUMBER,
}

// contextFields are the EventContext fields that may be configured as
// personal, by "context.<name>".
var contextFields = map[string]bool{"ip": true, "user_agent": true, "locale": true, "time_zone": true, "page_url": true, "referrer": true, "channel": true}

// Builder validates items and makes records. It is safe for concurrent use.
type Builder struct {
	p             *eventlog.Pseudonymiser
	maxBytes      int
	personal      map[string]bool // trait and property names, lower case
	personalCtx   map[string]bool // context field names
	propertyTypes map[string]commonv1.ValueType
	freeText      FreeText
}

// Option configures a Builder.
type Option func(*Builder)

// WithMaxItemBytes sets the largest encoded item accepted (TOO_LARGE
// above); zero means no limit.
func WithMaxItemBytes(n int) Option { return func(b *Builder) { b.maxBytes = n } }

// WithPersonalFields sets the personal fields: a plain name applies to
// traits and properties of that name, "traits.<name>" and
// "properties.<name>" to one of them, "context.<field>" to a context field
// (ip, user_agent, locale, time_zone, page_url, referrer, channel). The
// context's ip is always personal. The default is DefaultPersonalFields.
func WithPersonalFields(fields []string) Option {
	return func(b *Builder) {
		b.personal = map[string]bool{}
		b.personalCtx = map[string]bool{"ip": true}
		for _, f := range fields {
			f = strings.ToLower(strings.TrimSpace(f))
			switch {
			case f == "":
			case strings.HasPrefix(f, "context."):
				b.personalCtx[strings.TrimPrefix(f, "context.")] = true
			case strings.HasPrefix(f, "traits."):
				b.personal["traits."+strings.TrimPrefix(f, "traits.")] = true
			case strings.HasPrefix(f, "properties."):
				b.personal["properties."+strings.TrimPrefix(f, "properties.")] = true
			default:
				b.personal["traits."+f] = true
				b.personal["properties."+f] = true
			}
		}
	}
}

// WithPropertyTypes sets the types of well-known properties; the default is
// DefaultPropertyTypes.
func WithPropertyTypes(types map[string]commonv1.ValueType) Option {
	return func(b *Builder) { b.propertyTypes = types }
}

// ValidatePersonalFields reports a personal-field setting that names an
// unknown context field.
func ValidatePersonalFields(fields []string) []string {
	var bad []string
	for _, f := range fields {
		f = strings.ToLower(strings.TrimSpace(f))
		if c, ok := strings.CutPrefix(f, "context."); ok && !contextFields[c] {
			bad = append(bad, f)
		}
	}
	return bad
}

// New returns a Builder that pseudonymises with p.
func New(p *eventlog.Pseudonymiser, opts ...Option) *Builder {
	b := &Builder{p: p, propertyTypes: DefaultPropertyTypes}
	WithPersonalFields(DefaultPersonalFields)(b)
	for _, o := range opts {
		o(b)
	}
	return b
}

// Pseudonymiser returns the Builder's pseudonymiser.
func (b *Builder) Pseudonymiser() *eventlog.Pseudonymiser { return b.p }

// Record is a validated item ready to be stored.
type Record struct {
	// Event is the record, personal fields pseudonymised.
	Event *ingestv1.StoredEvent
	// Key is whose subject it goes to.
	Key eventlog.Key
	// Type is its record type.
	Type eventlog.Type
}

// problems collects the problems of one item under a path prefix such as
// "events[3]".
type problems struct {
	prefix string
	list   []*commonv1.Problem
}

func (p *problems) add(field, reason, desc string) {
	if p.prefix != "" {
		if field == "" {
			field = p.prefix
		} else {
			field = p.prefix + "." + field
		}
	}
	p.list = append(p.list, &commonv1.Problem{Field: field, Reason: reason, Description: desc})
}

// Problem returns a problem with field prefixed by prefix (as the Builder
// reports them).
func Problem(prefix, field, reason, desc string) *commonv1.Problem {
	p := problems{prefix: prefix}
	p.add(field, reason, desc)
	return p.list[0]
}

func (b *Builder) checkSize(m proto.Message, p *problems) bool {
	if b.maxBytes > 0 {
		if n := proto.Size(m); n > b.maxBytes {
			p.add("", ReasonTooLarge, "the item is "+strconv.Itoa(n)+" bytes encoded, more than the limit of "+strconv.Itoa(b.maxBytes)+"; send large data elsewhere and reference it")
			return false
		}
	}
	return true
}

func checkMessageID(id string, p *problems) {
	if id == "" {
		p.add("message_id", ReasonMissing, "message_id is required: it is the de-duplication key; keep it when retrying")
		return
	}
	checkShared("message_id", id, false, p)
}

// checkShared applies the shared rule of pkg/fault for ids (CheckID) or,
// with name, for names (CheckName) to s when it is not empty: too long is
// TOO_LONG, a control character INVALID, each naming the field and the
// limit. Valid values cost no allocation.
func checkShared(field, s string, name bool, p *problems) bool {
	valid, check, max := fault.ValidID, (*fault.Violations).CheckID, fault.MaxIDBytes
	if name {
		valid, check, max = fault.ValidName, (*fault.Violations).CheckName, fault.MaxNameBytes
	}
	if s == "" || valid(s) {
		return true
	}
	var v fault.Violations
	check(&v, field, s)
	reason := ReasonInvalid
	if len(s) > max {
		reason = ReasonTooLong
	}
	for _, x := range v {
		p.add(field, reason, field+" "+x.Description)
	}
	return false
}

// checkIDs validates user_id and anonymous_id; requireUser forbids an
// anonymous-only item.
func checkIDs(userID, anonymousID string, requireUser bool, p *problems) {
	if userID == "" && (requireUser || anonymousID == "") {
		if requireUser {
			p.add("user_id", ReasonMissing, "user_id is required")
		} else {
			p.add("user_id", ReasonMissing, "one of user_id and anonymous_id is required")
		}
	}
	checkID("user_id", userID, p)
	checkID("anonymous_id", anonymousID, p)
}

func checkID(field, id string, p *problems) {
	switch {
	case id == "":
	case !checkShared(field, id, false, p):
	case LooksLikeEmail(id):
		p.add(field, ReasonLooksLikeEmail, field+" looks like an email address; send the backend's opaque customer id (a CRM or account id), never an email address")
	case LooksLikePhone(id):
		p.add(field, ReasonLooksLikePhone, field+" looks like a phone number; send the backend's opaque customer id (a CRM or account id), never a phone number")
	}
}

var (
	emailRE = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s.]+$`)
	phoneRE = regexp.MustCompile(`^\+?(\(\d{1,5}\)|\d{1,5})([ .\-/]?(\(\d{1,5}\)|\d{1,5}))*$`)
)

// LooksLikeEmail reports whether id has the shape of an email address
// (local part, "@", a domain with a dot).
func LooksLikeEmail(id string) bool {
	return strings.Contains(id, "@") && emailRE.MatchString(strings.TrimSpace(id))
}

// LooksLikePhone reports whether id has the shape of a phone number: 7 to
// 15 digits written with a leading "+" or grouped by spaces, dashes, dots,
// slashes or parentheses, such as "+351 912 345 678" or "(555) 123-4567".
// Digits alone ("00001", "1234567890") are taken as numeric account ids.
func LooksLikePhone(id string) bool {
	id = strings.TrimSpace(id)
	digits := 0
	for _, c := range id {
		if c >= '0' && c <= '9' {
			digits++
		}
	}
	if digits < 7 || digits > 15 || digits == len(id) {
		return false
	}
	return phoneRE.MatchString(id)
}

func checkTime(field string, ts *timestamppb.Timestamp, p *problems) bool {
	if ts == nil {
		return true
	}
	if err := ts.CheckValid(); err != nil {
		p.add(field, ReasonInvalidTimestamp, field+" is not a valid timestamp (seconds within years 1 to 9999, nanos within a second)")
		return false
	}
	return true
}

// EventTime returns when a record took effect: received − (sent −
// original) when both client times are given, original when only it is,
// else received.
func EventTime(received time.Time, original, sent *timestamppb.Timestamp) time.Time {
	switch {
	case original == nil:
		return received
	case sent == nil:
		return original.AsTime()
	default:
		return received.Add(-sent.AsTime().Sub(original.AsTime()))
	}
}

func checkLen(field, s string, max int, p *problems) {
	if len(s) > max {
		p.add(field, ReasonTooLong, field+" is longer than "+strconv.Itoa(max)+" bytes")
	}
}

// checkValue validates one typed value under field; want is the declared
// type, if any.
func checkValue(field string, v *commonv1.Value, want commonv1.ValueType, p *problems) {
	if v == nil || v.Kind == nil {
		return
	}
	switch k := v.Kind.(type) {
	case *commonv1.Value_NumberValue:
		if math.IsNaN(k.NumberValue) || math.IsInf(k.NumberValue, 0) {
			p.add(field, ReasonNotFinite, field+" is NaN or infinite")
			return
		}
	case *commonv1.Value_TimeValue:
		if !checkTime(field, k.TimeValue, p) {
			return
		}
	}
	if want == commonv1.ValueType_VALUE_TYPE_UNSPECIFIED {
		return
	}
	if !hasType(v, want) {
		p.add(field, ReasonWrongType, field+" must be "+values.TypeName(want))
	}
}

// hasType reports whether v holds a value of type t (a whole number counts
// as NUMBER, and as INT when written as a whole double).
func hasType(v *commonv1.Value, t commonv1.ValueType) bool {
	switch k := v.Kind.(type) {
	case *commonv1.Value_NumberValue:
		return t == commonv1.ValueType_VALUE_TYPE_NUMBER ||
			(t == commonv1.ValueType_VALUE_TYPE_INT && k.NumberValue == math.Trunc(k.NumberValue) && math.Abs(k.NumberValue) < 1<<53)
	case *commonv1.Value_IntValue:
		return t == commonv1.ValueType_VALUE_TYPE_INT || t == commonv1.ValueType_VALUE_TYPE_NUMBER
	case *commonv1.Value_StringValue:
		return t == commonv1.ValueType_VALUE_TYPE_STRING
	case *commonv1.Value_BoolValue:
		return t == commonv1.ValueType_VALUE_TYPE_BOOL
	case *commonv1.Value_TimeValue:
		return t == commonv1.ValueType_VALUE_TYPE_TIME
	}
	return true
}

func checkMap(prefix string, m map[string]*commonv1.Value, types map[string]commonv1.ValueType, p *problems) {
	for k, v := range m {
		switch {
		case k == "":
			p.add(prefix, ReasonEmptyKey, prefix+" has an empty name")
			continue
		case !fault.ValidName(k):
			// The key itself may be long text: name the map, not the key.
			reason, desc := ReasonInvalid, " has a name with a control character"
			if len(k) > fault.MaxNameBytes {
				reason, desc = ReasonTooLong, " has a name longer than "+strconv.Itoa(fault.MaxNameBytes)+" bytes"
			}
			p.add(prefix, reason, prefix+desc)
			continue
		}
		checkValue(prefix+"."+k, v, types[strings.ToLower(k)], p)
	}
}

var currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)

// Event validates a Track event received at received and returns its
// record, or the problems found (with paths under prefix, e.g. "events[3]").
// Paths in already hold pseudonyms (a replayed dead letter) and are kept
// as they are.
func (b *Builder) Event(ev *ingestv1.Event, received time.Time, prefix string, already ...string) (Record, []*commonv1.Problem) {
	p := problems{prefix: prefix}
	if !b.checkSize(ev, &p) {
		return Record{}, p.list
	}
	if eventUTF8(ev, &p); len(p.list) > 0 {
		return Record{}, p.list
	}
	checkMessageID(ev.GetMessageId(), &p)
	checkIDs(ev.GetUserId(), ev.GetAnonymousId(), false, &p)
	switch {
	case ev.GetName() == "":
		p.add("name", ReasonMissing, "name is required, e.g. \"Order Completed\"")
	default:
		checkShared("name", ev.GetName(), true, &p)
	}
	checkShared("item_id", ev.GetItemId(), false, &p)
	if ev.Value != nil && (math.IsNaN(ev.GetValue()) || math.IsInf(ev.GetValue(), 0)) {
		p.add("value", ReasonNotFinite, "value is NaN or infinite")
	}
	if c := ev.GetCurrency(); c != "" && !currencyRE.MatchString(c) {
		p.add("currency", ReasonInvalidCurrency, "currency must be an ISO 4217 code of three capital letters, e.g. \"EUR\"")
	}
	checkMap("properties", ev.GetProperties(), b.propertyTypes, &p)
	b.checkFreeText("properties", ev.GetProperties(), &p)
	checkTime("original_timestamp", ev.GetOriginalTimestamp(), &p)
	checkTime("sent_at", ev.GetSentAt(), &p)
	if len(p.list) > 0 {
		return Record{}, p.list
	}
	recv := timestamppb.New(received)
	st := &ingestv1.StoredEvent{
		Type:              ingestv1.EventType_EVENT_TYPE_TRACK,
		MessageId:         ev.GetMessageId(),
		UserId:            ev.GetUserId(),
		AnonymousId:       ev.GetAnonymousId(),
		Name:              ev.GetName(),
		ItemId:            ev.GetItemId(),
		Value:             ev.Value,
		Currency:          ev.GetCurrency(),
		Properties:        ev.GetProperties(),
		Context:           ev.GetContext(),
		EventTime:         eventStamp(recv, received, ev.GetOriginalTimestamp(), ev.GetSentAt()),
		OriginalTimestamp: ev.GetOriginalTimestamp(),
		SentAt:            ev.GetSentAt(),
		ReceivedAt:        recv,
		Source:            ingestv1.EventSource_EVENT_SOURCE_TRACK,
		PseudonymKeyId:    b.p.KeyID(),
	}
	b.pseudonymiseStored(st, skipSet(already))
	return Record{Event: st, Key: keyOf(st.UserId, st.AnonymousId), Type: eventlog.TypeTrack}, nil
}

// TraitUpdate validates an Identify update and returns its record.
func (b *Builder) TraitUpdate(u *ingestv1.TraitUpdate, received time.Time, prefix string, already ...string) (Record, []*commonv1.Problem) {
	p := problems{prefix: prefix}
	if !b.checkSize(u, &p) {
		return Record{}, p.list
	}
	if traitUpdateUTF8(u, &p); len(p.list) > 0 {
		return Record{}, p.list
	}
	checkMessageID(u.GetMessageId(), &p)
	checkIDs(u.GetUserId(), u.GetAnonymousId(), false, &p)
	if len(u.GetTraits()) == 0 {
		p.add("traits", ReasonMissing, "an update sets at least one trait")
	}
	checkMap("traits", u.GetTraits(), nil, &p)
	b.checkFreeText("traits", u.GetTraits(), &p)
	checkTime("original_timestamp", u.GetOriginalTimestamp(), &p)
	checkTime("sent_at", u.GetSentAt(), &p)
	if len(p.list) > 0 {
		return Record{}, p.list
	}
	recv := timestamppb.New(received)
	st := &ingestv1.StoredEvent{
		Type:              ingestv1.EventType_EVENT_TYPE_IDENTIFY,
		MessageId:         u.GetMessageId(),
		UserId:            u.GetUserId(),
		AnonymousId:       u.GetAnonymousId(),
		Traits:            u.GetTraits(),
		Context:           u.GetContext(),
		EventTime:         eventStamp(recv, received, u.GetOriginalTimestamp(), u.GetSentAt()),
		OriginalTimestamp: u.GetOriginalTimestamp(),
		SentAt:            u.GetSentAt(),
		ReceivedAt:        recv,
		Source:            ingestv1.EventSource_EVENT_SOURCE_IDENTIFY,
		PseudonymKeyId:    b.p.KeyID(),
	}
	b.pseudonymiseStored(st, skipSet(already))
	return Record{Event: st, Key: keyOf(st.UserId, st.AnonymousId), Type: eventlog.TypeIdentify}, nil
}

// Consent validates a consent change and returns its record.
func (b *Builder) Consent(c *ingestv1.ConsentChange, received time.Time, prefix string) (Record, []*commonv1.Problem) {
	p := problems{prefix: prefix}
	if !b.checkSize(c, &p) {
		return Record{}, p.list
	}
	if consentUTF8(c, &p); len(p.list) > 0 {
		return Record{}, p.list
	}
	checkMessageID(c.GetMessageId(), &p)
	checkIDs(c.GetUserId(), "", true, &p)
	switch c.GetState() {
	case commonv1.ConsentState_CONSENT_STATE_GRANTED, commonv1.ConsentState_CONSENT_STATE_OBJECTED:
	case commonv1.ConsentState_CONSENT_STATE_UNSPECIFIED:
		p.add("state", ReasonMissing, "state is required: CONSENT_STATE_GRANTED or CONSENT_STATE_OBJECTED")
	default:
		p.add("state", ReasonInvalidState, "state must be CONSENT_STATE_GRANTED or CONSENT_STATE_OBJECTED; erasure is ForgetUser")
	}
	checkLen("source", c.GetSource(), MaxSourceBytes, &p)
	checkTime("original_timestamp", c.GetOriginalTimestamp(), &p)
	checkTime("sent_at", c.GetSentAt(), &p)
	if len(p.list) > 0 {
		return Record{}, p.list
	}
	recv := timestamppb.New(received)
	st := &ingestv1.StoredEvent{
		Type:              ingestv1.EventType_EVENT_TYPE_CONSENT,
		MessageId:         c.GetMessageId(),
		UserId:            c.GetUserId(),
		ConsentState:      c.GetState(),
		ConsentSource:     c.GetSource(),
		EventTime:         eventStamp(recv, received, c.GetOriginalTimestamp(), c.GetSentAt()),
		OriginalTimestamp: c.GetOriginalTimestamp(),
		SentAt:            c.GetSentAt(),
		ReceivedAt:        recv,
		Source:            ingestv1.EventSource_EVENT_SOURCE_SET_CONSENT,
		PseudonymKeyId:    b.p.KeyID(),
	}
	return Record{Event: st, Key: eventlog.UserKey(st.UserId), Type: eventlog.TypeConsent}, nil
}

// eventStamp returns the event time of a record: recv itself when the
// client gave no time.
func eventStamp(recv *timestamppb.Timestamp, received time.Time, original, sent *timestamppb.Timestamp) *timestamppb.Timestamp {
	if original == nil {
		return recv
	}
	return timestamppb.New(EventTime(received, original, sent))
}

func keyOf(userID, anonymousID string) eventlog.Key {
	if userID != "" {
		return eventlog.UserKey(userID)
	}
	return eventlog.AnonymousKey(anonymousID)
}

// KeyOf returns the subject key of an item's ids, and false when neither id
// is usable (empty, too long, or shaped like an email address or a phone
// number).
func KeyOf(userID, anonymousID string) (eventlog.Key, bool) {
	usable := func(id string) bool {
		return fault.ValidID(id) && !LooksLikeEmail(id) && !LooksLikePhone(id)
	}
	switch {
	case usable(userID):
		return eventlog.UserKey(userID), true
	case userID == "" && usable(anonymousID):
		return eventlog.AnonymousKey(anonymousID), true
	}
	return eventlog.Key{}, false
}
