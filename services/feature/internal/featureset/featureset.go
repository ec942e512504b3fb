// Package featureset validates feature set definitions, resolves their
// output columns, and evaluates them on a customer's profile as of any
// instant: online ("now") and for training rows (the cutoff, exclusive), by
// the same code, so that training and serving never disagree.
package featureset

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	"github.com/bullseye-ml/bullseye/pkg/values"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
)

// Time zones named in mappings and feature sets must resolve in any image,
// including ones without a zoneinfo database.
import _ "time/tzdata"

// Day is one day in Unix nanoseconds: the unit of DAYS_SINCE features.
const Day = int64(24 * time.Hour)

// MaxWindow is the longest window a feature may have.
const MaxWindow = 10 * 365 * 24 * time.Hour

// DefaultPurchaseEvent is the event name RFM groups count as purchases
// unless told otherwise.
const DefaultPurchaseEvent = "Order Completed"

// DefaultRFMPrefix is the prefix of RFM columns unless told otherwise.
const DefaultRFMPrefix = "rfm_"

var (
	setNameRE     = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	featureNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,127}$`)
)

// ValidName reports whether s is a valid feature set name.
func ValidName(s string) bool { return setNameRE.MatchString(s) }

// Out is one evaluated column.
type Out struct {
	// Value is the value; null when there is none.
	Value profile.Value
	// Update is when the value last changed (Unix nanoseconds), when
	// HasUpdate.
	Update int64
	// HasUpdate says whether Update is known.
	HasUpdate bool
	// Since marks a value that moves with the instant: it is the number of
	// days from Anchor to the instant (days since the last purchase, a
	// customer's age), so a value computed earlier is brought up to date by
	// SinceDays.
	Since  bool
	Anchor int64
}

// SinceDays is the value of a Since column at the instant at.
func SinceDays(anchor, at int64) profile.Value {
	return profile.NumberValue(float64(at-anchor) / float64(Day))
}

// Set is a compiled feature set version: its columns and how to compute
// them.
type Set struct {
	// Name and Version identify the version.
	Name    string
	Version int64
	// Columns are the output columns in order.
	Columns []*featurev1.FeatureColumn
	// MaxAge is each column's max age in nanoseconds; 0 means never stale.
	MaxAge []int64
	// Defaults is each column's default value (null for none), and
	// DefaultProtos the same as messages (nil for none), shared by every
	// reply (read only).
	Defaults      []profile.Value
	DefaultProtos []*commonv1.Value
	// Names are the columns' names, and Positions 0 to len(Columns)-1: a
	// request for every column, shared by every caller (read only).
	Names     []string
	Positions []int
	index     map[string]int
	blocks    []block
	windows   []int64 // the distinct windows of the aggregates, for EvalOnline
}

// block computes one or more consecutive columns.
type block interface {
	eval(p *profile.Profile, at int64, out []Out)
	width() int
}

// Index returns the position of a column, and false when there is none.
func (s *Set) Index(name string) (int, bool) {
	i, ok := s.index[name]
	return i, ok
}

// Eval computes every column of p as of the instant at (exclusive: only
// records strictly before at count) into out, which must have
// len(s.Columns) entries.
func (s *Set) Eval(p *profile.Profile, at int64, out []Out) {
	off := 0
	for _, b := range s.blocks {
		w := b.width()
		b.eval(p, at, out[off:off+w])
		off += w
	}
}

// Compile validates a feature set definition and compiles it. fault.Violations
// name fields under prefix (e.g. "feature_set"). Output-only fields are
// ignored.
func Compile(fs *featurev1.FeatureSet, prefix string) (*Set, error) {
	var v fault.Violations
	if fs == nil {
		v.Add(prefix, "is required")
		return nil, v
	}
	if !setNameRE.MatchString(fs.GetName()) {
		v.Add(prefix+".name", "%s is not a valid name: lower case letters, digits, '_' and '-', starting with a letter, at most 63 bytes", fault.Quote(fs.GetName()))
	}
	checkUnknown(fs, prefix, &v)
	s := &Set{Name: fs.GetName(), Version: fs.GetVersion(), index: map[string]int{}}
	seen := map[string]string{}
	addColumn := func(path, name string, t commonv1.ValueType, desc string, maxAge int64, def profile.Value) {
		if prev, dup := seen[name]; dup {
			v.Add(path, "duplicate column name %s (also %s)", fault.Quote(name), prev)
			return
		}
		seen[name] = path
		s.index[name] = len(s.Columns)
		s.Columns = append(s.Columns, &featurev1.FeatureColumn{Name: name, Type: t, Description: desc})
		s.MaxAge = append(s.MaxAge, maxAge)
		s.Defaults = append(s.Defaults, def)
		var defProto *commonv1.Value
		if !def.IsNull() {
			defProto = def.Proto()
		}
		s.DefaultProtos = append(s.DefaultProtos, defProto)
		s.Names = append(s.Names, name)
		s.Positions = append(s.Positions, len(s.Positions))
	}
	if len(fs.GetFeatures()) == 0 && len(fs.GetRfmGroups()) == 0 {
		v.Add(prefix+".features", "a feature set needs at least one feature or RFM group")
	}
	for i, f := range fs.GetFeatures() {
		path := fmt.Sprintf("%s.features[%d]", prefix, i)
		b, t := compileFeature(f, path, &v)
		if !featureNameRE.MatchString(f.GetName()) {
			v.Add(path+".name", "%s is not a valid feature name: lower_snake_case, starting with a letter, at most 128 bytes", fault.Quote(f.GetName()))
		}
		maxAge := duration(f.GetMaxAge(), path+".max_age", &v)
		def := profile.FromProto(f.GetDefaultValue())
		if !def.IsNull() && t != commonv1.ValueType_VALUE_TYPE_UNSPECIFIED {
			if c := def.Convert(t); c.IsNull() {
				v.Add(path+".default_value", "does not fit the feature's type (%s)", values.TypeName(t))
			} else {
				def = c
			}
		}
		addColumn(path+".name", f.GetName(), t, f.GetDescription(), maxAge, def)
		if b != nil {
			s.blocks = append(s.blocks, b)
		}
	}
	for i, g := range fs.GetRfmGroups() {
		path := fmt.Sprintf("%s.rfm_groups[%d]", prefix, i)
		b, cols := compileRFM(g, path, &v)
		maxAge := duration(g.GetMaxAge(), path+".max_age", &v)
		for _, c := range cols {
			if !featureNameRE.MatchString(c.GetName()) {
				v.Add(path+".prefix", "makes the column name %s, which is not lower_snake_case", fault.Quote(c.GetName()))
			}
			addColumn(path+".prefix", c.GetName(), c.GetType(), c.GetDescription(), maxAge, profile.Value{})
		}
		if b != nil {
			s.blocks = append(s.blocks, b)
		}
	}
	if len(v) > 0 {
		return nil, v
	}
	for _, b := range s.blocks {
		w := int64(0)
		switch b := b.(type) {
		case *aggBlock:
			w = b.window
		case *rfmBlock:
			w = b.window
		}
		if w > 0 && !slices.Contains(s.windows, w) {
			s.windows = append(s.windows, w)
		}
	}
	return s, nil
}

func duration(d *durationpb.Duration, path string, v *fault.Violations) int64 {
	if d == nil || (d.GetSeconds() == 0 && d.GetNanos() == 0) {
		return 0
	}
	if d.GetSeconds() < 0 || d.GetNanos() < 0 {
		v.Add(path, "must be positive")
		return 0
	}
	return d.GetSeconds()*1e9 + int64(d.GetNanos())
}

// window validates a window: positive, whole seconds, at most MaxWindow.
// Zero means the whole history.
func window(d *durationpb.Duration, path string, v *fault.Violations) int64 {
	if d == nil {
		return 0
	}
	switch {
	case d.GetSeconds() < 0 || d.GetNanos() < 0 || (d.GetSeconds() == 0 && d.GetNanos() == 0):
		v.Add(path, "must be positive (leave it unset for the whole history)")
	case d.GetNanos() != 0:
		v.Add(path, "must be whole seconds")
	case time.Duration(d.GetSeconds())*time.Second > MaxWindow || d.GetSeconds() > int64(MaxWindow/time.Second):
		v.Add(path, "must be at most 10 years")
	default:
		return d.GetSeconds() * 1e9
	}
	return 0
}

func location(tz, path string, v *fault.Violations) *time.Location {
	if tz == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		v.Add(path, "unknown IANA time zone %s", fault.Quote(tz))
		return time.UTC
	}
	return loc
}

func compileFeature(f *featurev1.Feature, path string, v *fault.Violations) (block, commonv1.ValueType) {
	t := f.GetType()
	if _, ok := commonv1.ValueType_name[int32(t)]; !ok {
		v.Add(path+".type", "unknown value type %d", t)
		return nil, t
	}
	switch src := f.GetSource().(type) {
	case *featurev1.Feature_Trait:
		if src.Trait.GetTrait() == "" {
			v.Add(path+".trait.trait", "is required: the trait's name")
		}
		if t == commonv1.ValueType_VALUE_TYPE_UNSPECIFIED {
			v.Add(path+".type", "is required for a trait feature: NUMBER, INT, BOOL, STRING (categorical) or TIME")
		}
		return &traitBlock{trait: src.Trait.GetTrait(), typ: t}, t
	case *featurev1.Feature_Aggregate:
		return compileAggregate(src.Aggregate, t, path, v)
	default:
		v.Add(path+".source", "is required: trait or aggregate")
		return nil, t
	}
}

func compileAggregate(a *featurev1.AggregateFeature, t commonv1.ValueType, path string, v *fault.Violations) (block, commonv1.ValueType) {
	p := path + ".aggregate"
	b := &aggBlock{agg: a.GetAggregation()}
	b.window = window(a.GetWindow(), p+".window", v)
	filter, fv := CompileFilter(a.GetFilter(), p+".filter")
	*v = append(*v, fv...)
	b.filter = filter
	b.loc = location(a.GetTimeZone(), p+".time_zone", v)
	if a.GetTimeZone() != "" && b.agg != featurev1.Aggregation_AGGREGATION_DISTINCT_DAYS {
		v.Add(p+".time_zone", "applies only to DISTINCT_DAYS")
	}
	field := a.GetField()
	var want commonv1.ValueType
	switch b.agg {
	case featurev1.Aggregation_AGGREGATION_COUNT, featurev1.Aggregation_AGGREGATION_DISTINCT_DAYS:
		want = commonv1.ValueType_VALUE_TYPE_INT
	case featurev1.Aggregation_AGGREGATION_DISTINCT_COUNT:
		want = commonv1.ValueType_VALUE_TYPE_INT
		if field == "" {
			field = "item_id"
		}
	case featurev1.Aggregation_AGGREGATION_SUM, featurev1.Aggregation_AGGREGATION_MEAN:
		want = commonv1.ValueType_VALUE_TYPE_NUMBER
		if field == "" {
			field = "value"
		}
		if _, ok := EventField(field); ok && !numericField(field) {
			v.Add(p+".field", "%s needs a numeric field (value or properties.<name>), not %s", b.agg, fault.Quote(field))
		}
	case featurev1.Aggregation_AGGREGATION_MIN, featurev1.Aggregation_AGGREGATION_MAX:
		if field == "" {
			field = "value"
		}
		want = commonv1.ValueType_VALUE_TYPE_NUMBER
		switch t {
		case commonv1.ValueType_VALUE_TYPE_UNSPECIFIED, commonv1.ValueType_VALUE_TYPE_NUMBER:
		case commonv1.ValueType_VALUE_TYPE_INT, commonv1.ValueType_VALUE_TYPE_TIME:
			want = t
			if field == "value" && t != commonv1.ValueType_VALUE_TYPE_NUMBER && t != commonv1.ValueType_VALUE_TYPE_INT {
				v.Add(path+".type", "the field value is a NUMBER")
			}
		default:
			v.Add(path+".type", "%s gives a number, a whole number or a time, not %s", b.agg, values.TypeName(t))
		}
		if _, ok := EventField(field); ok && !numericField(field) {
			v.Add(p+".field", "%s needs a numeric or time field (value or properties.<name>), not %s", b.agg, fault.Quote(field))
		}
	case featurev1.Aggregation_AGGREGATION_DAYS_SINCE_LAST, featurev1.Aggregation_AGGREGATION_DAYS_SINCE_FIRST:
		want = commonv1.ValueType_VALUE_TYPE_NUMBER
	default:
		v.Add(p+".aggregation", "is required: COUNT, SUM, MEAN, MIN, MAX, DISTINCT_COUNT, DAYS_SINCE_LAST, DAYS_SINCE_FIRST or DISTINCT_DAYS")
		return nil, t
	}
	if field != "" {
		switch b.agg {
		case featurev1.Aggregation_AGGREGATION_COUNT, featurev1.Aggregation_AGGREGATION_DISTINCT_DAYS,
			featurev1.Aggregation_AGGREGATION_DAYS_SINCE_LAST, featurev1.Aggregation_AGGREGATION_DAYS_SINCE_FIRST:
			v.Add(p+".field", "applies only to SUM, MEAN, MIN, MAX and DISTINCT_COUNT")
		default:
			get, ok := EventField(field)
			if !ok {
				v.Add(p+".field", "unknown event field %s: use value, item_id, name, currency, context.channel, context.campaign or properties.<name>", fault.Quote(field))
			}
			b.get = get
		}
	}
	if t != commonv1.ValueType_VALUE_TYPE_UNSPECIFIED && t != want {
		v.Add(path+".type", "%s gives %s, not %s", b.agg, values.TypeName(want), values.TypeName(t))
	}
	b.typ = want
	return b, want
}

func compileRFM(g *featurev1.RfmGroup, path string, v *fault.Violations) (block, []*featurev1.FeatureColumn) {
	prefix := g.GetPrefix()
	if prefix == "" {
		prefix = DefaultRFMPrefix
	}
	filter, fv := CompileFilter(g.GetPurchases(), path+".purchases", DefaultPurchaseEvent)
	*v = append(*v, fv...)
	b := &rfmBlock{filter: filter, window: window(g.GetWindow(), path+".window", v), loc: location(g.GetTimeZone(), path+".time_zone", v)}
	num, integer := commonv1.ValueType_VALUE_TYPE_NUMBER, commonv1.ValueType_VALUE_TYPE_INT
	col := func(name string, t commonv1.ValueType, desc string) *featurev1.FeatureColumn {
		return &featurev1.FeatureColumn{Name: prefix + name, Type: t, Description: desc}
	}
	switch g.GetStyle() {
	case featurev1.RfmStyle_RFM_STYLE_UNSPECIFIED, featurev1.RfmStyle_RFM_STYLE_CLASSIC:
		return b, []*featurev1.FeatureColumn{
			col("recency_days", num, "RFM: days from the last purchase to the cutoff"),
			col("frequency", integer, "RFM: number of purchases"),
			col("monetary_total", num, "RFM: sum of purchase values"),
			col("monetary_mean", num, "RFM: mean purchase value"),
		}
	case featurev1.RfmStyle_RFM_STYLE_BTYD:
		b.btyd = true
		return b, []*featurev1.FeatureColumn{
			col("frequency", integer, "BTYD: purchase days minus one"),
			col("recency_days", num, "BTYD: days from the first to the last purchase day"),
			col("age_days", num, "BTYD: days from the first purchase day to the cutoff"),
			col("monetary_mean", num, "BTYD: mean value per purchase day"),
			col("monetary_mean_repeat", num, "BTYD: mean value per purchase day after the first (0 when there is none)"),
		}
	default:
		v.Add(path+".style", "unknown RFM style %d", g.GetStyle())
		return nil, nil
	}
}

// checkUnknown reports fields the server does not know (sent by a newer
// client) anywhere in m.
func checkUnknown(m proto.Message, path string, v *fault.Violations) {
	if m == nil {
		return
	}
	walkUnknown(m.ProtoReflect(), path, v)
}

func walkUnknown(m protoreflect.Message, path string, v *fault.Violations) {
	if !m.IsValid() {
		return
	}
	if len(m.GetUnknown()) > 0 {
		v.Add(path, "holds fields unknown to this server (is the client newer than the server?)")
	}
	m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		if fd.Message() == nil {
			return true
		}
		p := path + "." + string(fd.Name())
		switch {
		case fd.IsList():
			l := val.List()
			for i := 0; i < l.Len(); i++ {
				walkUnknown(l.Get(i).Message(), fmt.Sprintf("%s[%d]", p, i), v)
			}
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				val.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					walkUnknown(mv.Message(), fmt.Sprintf("%s[%v]", p, k.Interface()), v)
					return true
				})
			}
		default:
			walkUnknown(val.Message(), p, v)
		}
		return true
	})
}

// windowStart returns the first instant of the window that ends at at.
func windowStart(at, window int64) int64 {
	if window == 0 {
		return math.MinInt64
	}
	return at - window
}
