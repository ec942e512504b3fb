// Package audience builds campaign audiences (ScoreAudience): it compiles segment filters on
// feature values, enumerates the customers of a model's feature set, scores them through the
// batched core and keeps the rows a campaign asked for (every one, the top N, those above a
// threshold).
package audience

import (
	"fmt"
	"math"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/pkg/values"
)

// Limits of a segment filter.
const (
	// MaxDepth is the deepest nesting of filters.
	MaxDepth = 8
	// MaxValues is the most values of an IN or NOT_IN condition.
	MaxValues = 1000
)

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
	op   commonv1.ComparisonOperator
	vals []values.Scalar
}

// Compile checks f and compiles it; typeOf gives the type of each feature the model's feature
// set has (false: no such feature). Violations name fields under prefix.
func Compile(f *servingv1.AudienceFilter, typeOf func(name string) (commonv1.ValueType, bool), prefix string) (*Filter, []fault.Violation) {
	c := &compiler{typeOf: typeOf, seen: map[string]bool{}}
	root := c.node(f, prefix, 1)
	if len(c.bad) > 0 {
		return nil, c.bad
	}
	return &Filter{root: root, names: c.names}, nil
}

type compiler struct {
	typeOf func(string) (commonv1.ValueType, bool)
	bad    []fault.Violation
	names  []string
	seen   map[string]bool
}

func (c *compiler) fail(field, format string, args ...any) {
	c.bad = append(c.bad, fault.Violation{Field: field, Description: fmt.Sprintf(format, args...)})
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
		if ok && !values.Comparable(values.TypeOf(v), typ) {
			c.fail(at, "%s does not compare with feature %q, which holds %s", values.TypeName(values.TypeOf(v)), n.name, values.TypeName(typ))
		}
	}
	switch values.ArityOf(n.op) {
	case values.One:
		check(fc.GetValue(), field+".value")
		if len(fc.GetValues()) > 0 {
			c.fail(field+".values", "is for IN and NOT_IN; use value")
		}
		n.vals = []values.Scalar{values.ScalarOf(fc.GetValue())}
	case values.List:
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
		for _, v := range fc.GetValues() {
			n.vals = append(n.vals, values.ScalarOf(v))
		}
	case values.None:
		if fc.GetValue() != nil || len(fc.GetValues()) > 0 {
			c.fail(field, "IS_NULL and IS_NOT_NULL take no value")
		}
	default:
		c.fail(field+".operator", "is required: one of %s", values.OperatorNames)
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
	if !present {
		return values.Holds(n.op, values.Scalar{}, n.vals)
	}
	return values.Holds(n.op, values.ScalarOf(v), n.vals)
}
