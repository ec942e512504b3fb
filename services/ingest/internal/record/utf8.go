package record

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

// checkUTF8 reports a string field that is not valid UTF-8. Items are
// decoded without validating their strings (the mesh's codec), so that
// one bad item is rejected here on its own instead of failing its whole
// batch in the decoder; this is where proto3's promise that strings are
// UTF-8 is kept, before anything else reads the item.
func checkUTF8(field, s string, p *problems) {
	if !utf8.ValidString(s) {
		p.add(field, ReasonInvalidUTF8, field+" is not valid UTF-8")
	}
}

// checkMapUTF8 reports the names and string values of a map that are not
// valid UTF-8. A bad name is reported on the map (a path must be valid
// text), as is a value whose name is too long to be a path.
func checkMapUTF8(section string, m map[string]*commonv1.Value, p *problems) {
	for k, v := range m {
		if !utf8.ValidString(k) {
			p.add(section, ReasonInvalidUTF8, section+" has a name that is not valid UTF-8")
			continue
		}
		if s, ok := v.GetKind().(*commonv1.Value_StringValue); ok && !utf8.ValidString(s.StringValue) {
			field := section
			if fault.ValidName(k) {
				field = section + "." + k
			}
			p.add(field, ReasonInvalidUTF8, field+" is not valid UTF-8")
		}
	}
}

func checkContextUTF8(c *ingestv1.EventContext, p *problems) {
	if c == nil {
		return
	}
	checkUTF8("context.channel", c.GetChannel(), p)
	checkUTF8("context.ip", c.GetIp(), p)
	checkUTF8("context.user_agent", c.GetUserAgent(), p)
	checkUTF8("context.locale", c.GetLocale(), p)
	checkUTF8("context.time_zone", c.GetTimeZone(), p)
	checkUTF8("context.page_url", c.GetPageUrl(), p)
	checkUTF8("context.referrer", c.GetReferrer(), p)
	if cc := c.GetCampaign(); cc != nil {
		checkUTF8("context.campaign.id", cc.GetId(), p)
		checkUTF8("context.campaign.name", cc.GetName(), p)
		checkUTF8("context.campaign.source", cc.GetSource(), p)
		checkUTF8("context.campaign.medium", cc.GetMedium(), p)
		checkUTF8("context.campaign.term", cc.GetTerm(), p)
		checkUTF8("context.campaign.content", cc.GetContent(), p)
	}
}

// eventUTF8 reports every string of ev that is not valid UTF-8.
func eventUTF8(ev *ingestv1.Event, p *problems) {
	checkUTF8("message_id", ev.GetMessageId(), p)
	checkUTF8("user_id", ev.GetUserId(), p)
	checkUTF8("anonymous_id", ev.GetAnonymousId(), p)
	checkUTF8("name", ev.GetName(), p)
	checkUTF8("item_id", ev.GetItemId(), p)
	checkUTF8("currency", ev.GetCurrency(), p)
	checkMapUTF8("properties", ev.GetProperties(), p)
	checkContextUTF8(ev.GetContext(), p)
}

// traitUpdateUTF8 reports every string of u that is not valid UTF-8.
func traitUpdateUTF8(u *ingestv1.TraitUpdate, p *problems) {
	checkUTF8("message_id", u.GetMessageId(), p)
	checkUTF8("user_id", u.GetUserId(), p)
	checkUTF8("anonymous_id", u.GetAnonymousId(), p)
	checkMapUTF8("traits", u.GetTraits(), p)
	checkContextUTF8(u.GetContext(), p)
}

// consentUTF8 reports every string of c that is not valid UTF-8.
func consentUTF8(c *ingestv1.ConsentChange, p *problems) {
	checkUTF8("message_id", c.GetMessageId(), p)
	checkUTF8("user_id", c.GetUserId(), p)
	checkUTF8("source", c.GetSource(), p)
}

// validText returns s when it is valid UTF-8, else s with each invalid
// byte sequence replaced by U+FFFD: for keeping a caller's string in a
// stored message, which must be valid UTF-8.
func validText(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// escapeText returns s when it is valid UTF-8, else its Go quoting (which
// writes invalid bytes as \x escapes): valid text that still tells apart
// strings that differ only in their invalid bytes.
func escapeText(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strconv.Quote(s)
}

// WithValidText makes every string of m (at any depth, map names included)
// valid UTF-8 in place, replacing invalid byte sequences by U+FFFD, so
// that m can be encoded; it returns m. Dead letters keep a rejected item
// this way.
func WithValidText(m proto.Message) proto.Message {
	fixStrings(m.ProtoReflect(), validText)
	return m
}

// DigestText returns a copy of m whose strings are made valid UTF-8
// without losing what told them apart (invalid strings are replaced by
// their Go quoting), for hashing an item that cannot be encoded as it is.
func DigestText(m proto.Message) proto.Message {
	c := proto.Clone(m)
	fixStrings(c.ProtoReflect(), escapeText)
	return c
}

// fixStrings replaces every invalid string of m by fix(string).
func fixStrings(m protoreflect.Message, fix func(string) string) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				switch fd.Kind() {
				case protoreflect.StringKind:
					if s := l.Get(i).String(); !utf8.ValidString(s) {
						l.Set(i, protoreflect.ValueOfString(fix(s)))
					}
				case protoreflect.MessageKind, protoreflect.GroupKind:
					fixStrings(l.Get(i).Message(), fix)
				}
			}
		case fd.IsMap():
			mp := v.Map()
			var bad []protoreflect.MapKey
			mp.Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if fd.MapKey().Kind() == protoreflect.StringKind && !utf8.ValidString(k.String()) {
					bad = append(bad, k)
				}
				switch fd.MapValue().Kind() {
				case protoreflect.StringKind:
					if s := mv.String(); !utf8.ValidString(s) {
						mp.Set(k, protoreflect.ValueOfString(fix(s)))
					}
				case protoreflect.MessageKind, protoreflect.GroupKind:
					fixStrings(mv.Message(), fix)
				}
				return true
			})
			for _, k := range bad {
				mv := mp.Get(k)
				mp.Clear(k)
				mp.Set(protoreflect.ValueOfString(fix(k.String())).MapKey(), mv)
			}
		case fd.Kind() == protoreflect.StringKind:
			if s := v.String(); !utf8.ValidString(s) {
				m.Set(fd, protoreflect.ValueOfString(fix(s)))
			}
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			fixStrings(v.Message(), fix)
		}
		return true
	})
}
