package featureset

import (
	"fmt"
	"strings"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	"github.com/bullseye-ml/bullseye/pkg/values"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
)

// EventField returns the accessor of an event field path: "item_id",
// "value", "name", "currency", "context.channel", "context.campaign" or
// "properties.<name>". ok is false for any other path.
func EventField(path string) (get func(*profile.Event) profile.Value, ok bool) {
	switch path {
	case "item_id":
		return func(e *profile.Event) profile.Value { return nonEmpty(e.ItemID) }, true
	case "value":
		return func(e *profile.Event) profile.Value {
			if !e.HasValue {
				return profile.Value{}
			}
			return profile.NumberValue(e.Value)
		}, true
	case "name":
		return func(e *profile.Event) profile.Value { return nonEmpty(e.Name) }, true
	case "currency":
		return func(e *profile.Event) profile.Value { return nonEmpty(e.Currency) }, true
	case "context.channel":
		return func(e *profile.Event) profile.Value { return nonEmpty(e.Channel) }, true
	case "context.campaign":
		return func(e *profile.Event) profile.Value { return nonEmpty(e.Campaign) }, true
	}
	if name, found := strings.CutPrefix(path, "properties."); found && name != "" {
		return func(e *profile.Event) profile.Value { return e.Prop(name) }, true
	}
	return nil, false
}

// numericField reports whether an event field path can hold numbers.
func numericField(path string) bool {
	return path == "value" || strings.HasPrefix(path, "properties.")
}

func nonEmpty(s string) profile.Value {
	if s == "" {
		return profile.Value{}
	}
	return profile.StringValue(s)
}

// Condition is a compiled FieldCondition on one value.
type Condition struct {
	op       commonv1.ComparisonOperator
	operands []values.Scalar
}

// Holds reports whether the condition holds for v.
func (c *Condition) Holds(v profile.Value) bool {
	return values.Holds(c.op, v.Scalar(), c.operands)
}

// compileCondition checks a condition's operator and values (not its
// field) and compiles it.
func compileCondition(c *featurev1.FieldCondition, path string, v *fault.Violations) *Condition {
	out := &Condition{op: c.GetOperator()}
	for _, x := range c.GetValues() {
		out.operands = append(out.operands, values.ScalarOf(x))
	}
	n := len(c.GetValues())
	name := values.OperatorName(c.GetOperator())
	switch values.ArityOf(c.GetOperator()) {
	case values.List:
		if n == 0 {
			v.Add(path+".values", "%s needs at least one value", name)
		}
	case values.One:
		if n != 1 {
			v.Add(path+".values", "%s needs exactly one value, got %d", name, n)
		} else if out.operands[0].IsNull() {
			v.Add(path+".values[0]", "must not be null")
		}
	case values.None:
		if n != 0 {
			v.Add(path+".values", "%s takes no values", name)
		}
	default:
		v.Add(path+".operator", "is required: one of %s", values.OperatorNames)
	}
	return out
}

// Filter is a compiled EventFilter.
type Filter struct {
	names      []string
	conditions []eventCondition
}

type eventCondition struct {
	get  func(*profile.Event) profile.Value
	cond *Condition
}

// MatchAll is the filter that every event matches.
var MatchAll = &Filter{}

// CompileFilter validates and compiles an event filter; path names it in
// violations. A nil filter matches every event, or the events named
// defaultNames when given.
func CompileFilter(f *featurev1.EventFilter, path string, defaultNames ...string) (*Filter, fault.Violations) {
	var v fault.Violations
	out := &Filter{}
	if f == nil {
		out.names = defaultNames
		return out, nil
	}
	for i, n := range f.GetNames() {
		if !fault.ValidName(n) {
			v.CheckName(fmt.Sprintf("%s.names[%d]", path, i), n)
		}
		out.names = append(out.names, n)
	}
	for i, c := range f.GetConditions() {
		p := fmt.Sprintf("%s.conditions[%d]", path, i)
		get, ok := EventField(c.GetField())
		if !ok {
			v.Add(p+".field", "unknown event field %s: use item_id, value, name, currency, context.channel, context.campaign or properties.<name>", fault.Quote(c.GetField()))
		}
		cond := compileCondition(c, p, &v)
		out.conditions = append(out.conditions, eventCondition{get: get, cond: cond})
	}
	if checkUnknown(f, path, &v); len(v) > 0 {
		return nil, v
	}
	return out, nil
}

// Match reports whether e matches the filter.
func (f *Filter) Match(e *profile.Event) bool {
	if len(f.names) > 0 {
		found := false
		for _, n := range f.names {
			if e.Name == n {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	for _, c := range f.conditions {
		if !c.cond.Holds(c.get(e)) {
			return false
		}
	}
	return true
}

// TraitConditions is a compiled list of conditions on traits
// ("traits.<name>"), all of which must hold.
type TraitConditions struct {
	traits     []string
	conditions []*Condition
}

// CompileTraitConditions validates and compiles conditions on traits.
func CompileTraitConditions(cs []*featurev1.FieldCondition, path string) (*TraitConditions, fault.Violations) {
	var v fault.Violations
	out := &TraitConditions{}
	for i, c := range cs {
		p := fmt.Sprintf("%s[%d]", path, i)
		name, ok := strings.CutPrefix(c.GetField(), "traits.")
		if !ok || name == "" {
			v.Add(p+".field", "must be traits.<name>, got %q", c.GetField())
		}
		out.traits = append(out.traits, name)
		out.conditions = append(out.conditions, compileCondition(c, p, &v))
	}
	if len(v) > 0 {
		return nil, v
	}
	return out, nil
}

// Holds reports whether every condition holds for p's traits as of the
// instant before.
func (t *TraitConditions) Holds(p *profile.Profile, before int64) bool {
	for i, name := range t.traits {
		val, _, _ := p.TraitAt(name, before)
		if !t.conditions[i].Holds(val) {
			return false
		}
	}
	return true
}

// Empty reports whether there are no conditions.
func (t *TraitConditions) Empty() bool { return t == nil || len(t.conditions) == 0 }
