// Package audience builds campaign audiences (ScoreAudience): it compiles segment filters on
// feature values, enumerates the customers of a model's feature set, scores them through the
// batched core and keeps the rows a campaign asked for (every one, the top N, those above a
// threshold).
package audience

import (
	"fmt"
	"math"
	"strings"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
)

// Limits of a segment filter.
const (
	// MaxDepth is the deepest nesting of filters.
	MaxDepth = 8
	// MaxValues is the most values of an IN or NOT_IN condition.
	MaxValues = 1000
)

// Violation names one invalid field of a filter, e.g.
// "segment.all_of.filters[1].condition.value" (the shared kind of every
// service).
type Violation = fault.Violation

// Filter is a compiled segment filter. It implements scoring.Filter.
type Filter struct {
	root  *node
	names []string
}

type nodeKind int

const (
	kindCond nodeKind = iota
	kindAll
	kindAny
	kindNone
)

type node struct {
	kind nodeKind
	kids []*node
	name string
	op   servingv1.ComparisonOperator
	vals []*commonv1.Value
}

// Compile checks f and compiles it; typeOf gives the type of each feature the model's feature
// set has (false: no such feature). Violations name fields under prefix.
func Compile(f *servingv1.AudienceFilter, typeOf func(name string) (commonv1.ValueType, bool), prefix string) (*Filter, []Violation) {
	c := &compiler{typeOf: typeOf, seen: map[string]bool{}}
	root := c.node(f, prefix, 1)
	if len(c.bad) > 0 {
		return nil, c.bad
	}
	return &Filter{root: root, names: c.names}, nil
}

type compiler struct {
	typeOf func(string) (commonv1.ValueType, bool)
	bad    []Violation
	names  []string
	seen   map[string]bool
}

func (c *compiler) fail(field, format string, args ...any) {
	c.bad = append(c.bad, Violation{Field: field, Description: fmt.Sprintf(format, args...)})
}

func (c *compiler) node(f *servingv1.AudienceFilter, field string, depth int) *node {
	if depth > MaxDepth {
		c.fail(field, "filters nest at most %d deep", MaxDepth)
		return nil
	}
	list := func(kind nodeKind, l *servingv1.AudienceFilterList, name string) *node {
		n := &node{kind: kind}
		if len(l.GetFilters()) == 0 {
			c.fail(field+"."+name+".filters", "needs at least one filter")
		}
		for i, sub := range l.GetFilters() {
			n.kids = append(n.kids, c.node(sub, fmt.Sprintf("%s.%s.filters[%d]", field, name, i), depth+1))
		}
		return n
	}
	switch k := f.GetKind().(type) {
	case *servingv1.AudienceFilter_Condition:
		return c.cond(k.Condition, field+".condition")
	case *servingv1.AudienceFilter_AllOf:
		return list(kindAll, k.AllOf, "all_of")
	case *servingv1.AudienceFilter_AnyOf:
		return list(kindAny, k.AnyOf, "any_of")
	case *servingv1.AudienceFilter_NoneOf:
		return list(kindNone, k.NoneOf, "none_of")
	}
	c.fail(field, "set exactly one of condition, all_of, any_of, none_of")
	return nil
}

func (c *compiler) cond(fc *servingv1.FeatureCondition, field string) *node {
	n := &node{kind: kindCond, name: fc.GetFeature(), op: fc.GetOperator()}
	var bad fault.Violations
	if !bad.CheckName(field+".feature", n.name) {
		c.bad = append(c.bad, bad...)
		n.name = ""
	}
	typ, ok := c.typeOf(n.name)
	switch {
	case n.name == "":
	case !ok:
		c.fail(field+".feature", "the model's feature set has no feature %s", fault.Quote(n.name))
	case !c.seen[n.name]:
		c.seen[n.name] = true
		c.names = append(c.names, n.name)
	}
	check := func(v *commonv1.Value, at string) {
		if v.GetKind() == nil {
			c.fail(at, "is required")
			return
		}
		if msg := badValue(v); msg != "" {
			c.fail(at, "%s", msg)
			return
		}
		if ok && !suits(typ, v) {
			c.fail(at, "a %s does not compare with feature %q of type %s", kindName(v), n.name, strings.TrimPrefix(typ.String(), "VALUE_TYPE_"))
		}
	}
	switch n.op {
	case servingv1.ComparisonOperator_COMPARISON_OPERATOR_EQ, servingv1.ComparisonOperator_COMPARISON_OPERATOR_NE,
		servingv1.ComparisonOperator_COMPARISON_OPERATOR_LT, servingv1.ComparisonOperator_COMPARISON_OPERATOR_LE,
		servingv1.ComparisonOperator_COMPARISON_OPERATOR_GT, servingv1.ComparisonOperator_COMPARISON_OPERATOR_GE:
		check(fc.GetValue(), field+".value")
		if len(fc.GetValues()) > 0 {
			c.fail(field+".values", "is for IN and NOT_IN; use value")
		}
		n.vals = []*commonv1.Value{fc.GetValue()}
	case servingv1.ComparisonOperator_COMPARISON_OPERATOR_IN, servingv1.ComparisonOperator_COMPARISON_OPERATOR_NOT_IN:
		if len(fc.GetValues()) == 0 || len(fc.GetValues()) > MaxValues {
			c.fail(field+".values", "needs 1 to %d values, got %d", MaxValues, len(fc.GetValues()))
		} else {
			for i, v := range fc.GetValues() {
				check(v, fmt.Sprintf("%s.values[%d]", field, i))
			}
		}
		if fc.GetValue() != nil {
			c.fail(field+".value", "is for single comparisons; use values")
		}
		n.vals = fc.GetValues()
	case servingv1.ComparisonOperator_COMPARISON_OPERATOR_IS_NULL, servingv1.ComparisonOperator_COMPARISON_OPERATOR_IS_NOT_NULL:
		if fc.GetValue() != nil || len(fc.GetValues()) > 0 {
			c.fail(field, "IS_NULL and IS_NOT_NULL take no value")
		}
	default:
		c.fail(field+".operator", "is required")
	}
	return n
}

// badValue says what is wrong with a value a filter compares with (a number that is not
// finite, a string that is not UTF-8 or longer than fault.MaxTextBytes, a time out of range),
// or "".
func badValue(v *commonv1.Value) string {
	switch k := v.GetKind().(type) {
	case *commonv1.Value_NumberValue:
		if math.IsNaN(k.NumberValue) || math.IsInf(k.NumberValue, 0) {
			return "must be a finite number"
		}
	case *commonv1.Value_StringValue:
		var vs fault.Violations
		if !vs.CheckString("", k.StringValue, fault.MaxTextBytes, false) {
			return vs[0].Description
		}
	case *commonv1.Value_TimeValue:
		if err := k.TimeValue.CheckValid(); err != nil {
			return "is not a valid time"
		}
	}
	return ""
}

func isNum(t commonv1.ValueType) bool {
	return t == commonv1.ValueType_VALUE_TYPE_NUMBER || t == commonv1.ValueType_VALUE_TYPE_INT
}

// suits reports whether a value compares with a feature of type t.
func suits(t commonv1.ValueType, v *commonv1.Value) bool {
	vt := artifact.TypeOf(v)
	return vt == t || (isNum(vt) && isNum(t))
}

func kindName(v *commonv1.Value) string {
	return strings.ToLower(strings.TrimPrefix(artifact.TypeOf(v).String(), "VALUE_TYPE_"))
}

// Names implements scoring.Filter: the features the filter reads.
func (f *Filter) Names() []string { return f.names }

// Match implements scoring.Filter.
func (f *Filter) Match(value func(name string) (*commonv1.Value, bool)) bool {
	return f.root.match(value)
}

func (n *node) match(value func(string) (*commonv1.Value, bool)) bool {
	switch n.kind {
	case kindAll:
		for _, k := range n.kids {
			if !k.match(value) {
				return false
			}
		}
		return true
	case kindAny:
		for _, k := range n.kids {
			if k.match(value) {
				return true
			}
		}
		return false
	case kindNone:
		for _, k := range n.kids {
			if k.match(value) {
				return false
			}
		}
		return true
	}
	v, present := value(n.name)
	switch n.op {
	case servingv1.ComparisonOperator_COMPARISON_OPERATOR_IS_NULL:
		return !present
	case servingv1.ComparisonOperator_COMPARISON_OPERATOR_IS_NOT_NULL:
		return present
	}
	if !present {
		return false
	}
	switch n.op {
	case servingv1.ComparisonOperator_COMPARISON_OPERATOR_IN, servingv1.ComparisonOperator_COMPARISON_OPERATOR_NOT_IN:
		in := false
		for _, w := range n.vals {
			if c, ok := Compare(v, w); ok && c == 0 {
				in = true
				break
			}
		}
		return in == (n.op == servingv1.ComparisonOperator_COMPARISON_OPERATOR_IN)
	}
	c, ok := Compare(v, n.vals[0])
	if !ok {
		return false
	}
	switch n.op {
	case servingv1.ComparisonOperator_COMPARISON_OPERATOR_EQ:
		return c == 0
	case servingv1.ComparisonOperator_COMPARISON_OPERATOR_NE:
		return c != 0
	case servingv1.ComparisonOperator_COMPARISON_OPERATOR_LT:
		return c < 0
	case servingv1.ComparisonOperator_COMPARISON_OPERATOR_LE:
		return c <= 0
	case servingv1.ComparisonOperator_COMPARISON_OPERATOR_GT:
		return c > 0
	case servingv1.ComparisonOperator_COMPARISON_OPERATOR_GE:
		return c >= 0
	}
	return false
}

// Compare orders two values of comparable types: numbers and whole numbers with each other
// (whole numbers exactly), strings by bytes, bools false before true, times in time order.
// ok is false for values that do not compare.
func Compare(a, b *commonv1.Value) (int, bool) {
	switch x := a.GetKind().(type) {
	case *commonv1.Value_IntValue:
		switch y := b.GetKind().(type) {
		case *commonv1.Value_IntValue:
			return cmp3(x.IntValue < y.IntValue, x.IntValue > y.IntValue), true
		case *commonv1.Value_NumberValue:
			return cmpFloat(float64(x.IntValue), y.NumberValue)
		}
	case *commonv1.Value_NumberValue:
		switch y := b.GetKind().(type) {
		case *commonv1.Value_IntValue:
			return cmpFloat(x.NumberValue, float64(y.IntValue))
		case *commonv1.Value_NumberValue:
			return cmpFloat(x.NumberValue, y.NumberValue)
		}
	case *commonv1.Value_StringValue:
		if y, ok := b.GetKind().(*commonv1.Value_StringValue); ok {
			return strings.Compare(x.StringValue, y.StringValue), true
		}
	case *commonv1.Value_BoolValue:
		if y, ok := b.GetKind().(*commonv1.Value_BoolValue); ok {
			return cmp3(!x.BoolValue && y.BoolValue, x.BoolValue && !y.BoolValue), true
		}
	case *commonv1.Value_TimeValue:
		if y, ok := b.GetKind().(*commonv1.Value_TimeValue); ok {
			return x.TimeValue.AsTime().Compare(y.TimeValue.AsTime()), true
		}
	}
	return 0, false
}

func cmp3(less, more bool) int {
	switch {
	case less:
		return -1
	case more:
		return 1
	}
	return 0
}

func cmpFloat(a, b float64) (int, bool) {
	if a != a || b != b { // NaN
		return 0, false
	}
	return cmp3(a < b, a > b), true
}
