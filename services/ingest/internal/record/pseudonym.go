package record

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

// valueText is the text a value's pseudonym is computed from.
func valueText(v *commonv1.Value) (string, bool) {
	switch k := v.GetKind().(type) {
	case *commonv1.Value_StringValue:
		return k.StringValue, true
	case *commonv1.Value_IntValue:
		return strconv.FormatInt(k.IntValue, 10), true
	case *commonv1.Value_NumberValue:
		return strconv.FormatFloat(k.NumberValue, 'g', -1, 64), true
	case *commonv1.Value_BoolValue:
		return strconv.FormatBool(k.BoolValue), true
	case *commonv1.Value_TimeValue:
		return k.TimeValue.AsTime().UTC().Format(time.RFC3339Nano), true
	}
	return "", false // null stays null
}

// pseudonymiseMap returns m with its personal entries (named
// section.<name> in b.personal) replaced by pseudonyms, copying m only if
// something changes, and appends the replaced paths to paths. Paths in skip
// already hold pseudonyms.
func (b *Builder) pseudonymiseMap(section string, m map[string]*commonv1.Value, skip map[string]bool, paths *[]string) map[string]*commonv1.Value {
	var out map[string]*commonv1.Value
	for k, v := range m {
		path := section + "." + k
		if !b.personal[section+"."+strings.ToLower(k)] {
			continue
		}
		if skip[path] {
			*paths = append(*paths, path)
			continue
		}
		text, ok := valueText(v)
		if !ok {
			continue
		}
		if out == nil {
			out = maps.Clone(m)
		}
		out[k] = &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: b.p.Pseudonymise(text)}}
		*paths = append(*paths, path)
	}
	if out == nil {
		return m
	}
	return out
}

// pseudonymiseContext returns c with its personal fields replaced, copying
// it only if something changes.
func (b *Builder) pseudonymiseContext(c *ingestv1.EventContext, skip map[string]bool, paths *[]string) *ingestv1.EventContext {
	if c == nil {
		return nil
	}
	fields := []struct {
		name string
		ptr  func(*ingestv1.EventContext) *string
	}{
		{"ip", func(c *ingestv1.EventContext) *string { return &c.Ip }},
		{"user_agent", func(c *ingestv1.EventContext) *string { return &c.UserAgent }},
		{"locale", func(c *ingestv1.EventContext) *string { return &c.Locale }},
		{"time_zone", func(c *ingestv1.EventContext) *string { return &c.TimeZone }},
		{"page_url", func(c *ingestv1.EventContext) *string { return &c.PageUrl }},
		{"referrer", func(c *ingestv1.EventContext) *string { return &c.Referrer }},
		{"channel", func(c *ingestv1.EventContext) *string { return &c.Channel }},
	}
	out := c
	for _, f := range fields {
		if !b.personalCtx[f.name] || *f.ptr(c) == "" {
			continue
		}
		path := "context." + f.name
		*paths = append(*paths, path)
		if skip[path] {
			continue
		}
		if out == c {
			out = copyContext(c)
		}
		*f.ptr(out) = b.p.Pseudonymise(*f.ptr(c))
	}
	return out
}

// pseudonymiseStored replaces the personal fields of a record, and the
// e-mail addresses and phone numbers inside the text of its other
// properties and traits, and lists their paths. Paths in skip already hold
// pseudonyms.
func (b *Builder) pseudonymiseStored(st *ingestv1.StoredEvent, skip map[string]bool) {
	var paths []string
	st.Properties = b.scrubMap("properties", b.pseudonymiseMap("properties", st.Properties, skip, &paths), skip, &paths)
	st.Traits = b.scrubMap("traits", b.pseudonymiseMap("traits", st.Traits, skip, &paths), skip, &paths)
	st.Context = b.pseudonymiseContext(st.Context, skip, &paths)
	slices.Sort(paths)
	st.PseudonymisedFields = paths
}

func skipSet(already []string) map[string]bool {
	if len(already) == 0 {
		return nil
	}
	skip := make(map[string]bool, len(already))
	for _, p := range already {
		skip[p] = true
	}
	return skip
}

// pseudonymiseID replaces an id that is itself personal (shaped like an
// email address or a phone number) for a dead letter.
func (b *Builder) pseudonymiseID(field string, id *string, paths *[]string) {
	if *id != "" && (LooksLikeEmail(*id) || LooksLikePhone(*id)) {
		*id = b.p.Pseudonymise(*id)
		*paths = append(*paths, field)
	}
}

// DeadEvent returns the copy of a rejected event kept as a dead letter:
// strings made valid UTF-8 (WithValidText), personal fields
// pseudonymised, ids shaped like an email address or a phone number too,
// and the addresses and numbers inside the text of the other properties,
// whatever the Builder's FreeText mode; received_at set. It also returns the pseudonymised paths.
func (b *Builder) DeadEvent(ev *ingestv1.Event, received time.Time) (*ingestv1.Event, []string) {
	var paths []string
	out := WithValidText(proto.Clone(ev)).(*ingestv1.Event)
	b.pseudonymiseID("user_id", &out.UserId, &paths)
	b.pseudonymiseID("anonymous_id", &out.AnonymousId, &paths)
	out.Properties = b.scrubMap("properties", b.pseudonymiseMap("properties", out.Properties, nil, &paths), nil, &paths)
	out.Context = b.pseudonymiseContext(out.Context, nil, &paths)
	out.ReceivedAt = timestamppb.New(received)
	slices.Sort(paths)
	return out, paths
}

// DeadTraitUpdate is DeadEvent for a trait update.
func (b *Builder) DeadTraitUpdate(u *ingestv1.TraitUpdate) (*ingestv1.TraitUpdate, []string) {
	var paths []string
	out := WithValidText(proto.Clone(u)).(*ingestv1.TraitUpdate)
	b.pseudonymiseID("user_id", &out.UserId, &paths)
	b.pseudonymiseID("anonymous_id", &out.AnonymousId, &paths)
	out.Traits = b.scrubMap("traits", b.pseudonymiseMap("traits", out.Traits, nil, &paths), nil, &paths)
	out.Context = b.pseudonymiseContext(out.Context, nil, &paths)
	slices.Sort(paths)
	return out, paths
}

// DeadConsent is DeadEvent for a consent change.
func (b *Builder) DeadConsent(c *ingestv1.ConsentChange) (*ingestv1.ConsentChange, []string) {
	var paths []string
	out := WithValidText(proto.Clone(c)).(*ingestv1.ConsentChange)
	b.pseudonymiseID("user_id", &out.UserId, &paths)
	return out, paths
}

// copyContext copies a context cheaply (proto.Clone goes through
// reflection); TestCopyContextCoversEveryField keeps it complete.
func copyContext(c *ingestv1.EventContext) *ingestv1.EventContext {
	return &ingestv1.EventContext{
		Channel:   c.Channel,
		Campaign:  c.Campaign,
		Ip:        c.Ip,
		UserAgent: c.UserAgent,
		Locale:    c.Locale,
		TimeZone:  c.TimeZone,
		PageUrl:   c.PageUrl,
		Referrer:  c.Referrer,
	}
}
