// Package yamlpb reads protobuf messages from YAML files written in the
// messages' JSON form (protobuf JSON field names, enum value names, RFC 3339
// timestamps): the specs and mappings the bullseye CLI reads. The YAML is
// checked against the message's descriptor as it is read, so that a
// misspelt field, a value of the wrong type or a field given twice is
// reported at its line and column in the YAML file, with the path of the
// field, instead of at a position in an intermediate JSON document.
package yamlpb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// maxNodes bounds the nodes read through aliases, so that a file of nested
// aliases cannot expand without end.
const maxNodes = 1 << 20

// Unmarshal reads data, the YAML (or JSON) file named name, into m. Every
// mistake found is reported as "name:line:column: field.path: what is
// wrong", one a line.
func Unmarshal(name string, data []byte, m proto.Message) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if root.Kind == 0 || root.Kind == yaml.DocumentNode { // an empty file
		proto.Reset(m)
		return nil
	}
	d := &decoder{name: name}
	js := d.message(root, m.ProtoReflect().Descriptor(), "", 0)
	if err := errors.Join(d.errs...); err != nil {
		return err
	}
	b, err := json.Marshal(js)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := protojson.Unmarshal(b, m); err != nil {
		return fmt.Errorf("%s: %s", name, protojsonMessage(err))
	}
	return nil
}

type decoder struct {
	name  string
	errs  []error
	nodes int
}

// errorf records a mistake at node n.
func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	d.errs = append(d.errs, fmt.Errorf("%s:%d:%d: %s", d.name, n.Line, n.Column, msg))
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// visit counts a node read and reports false once too many were.
func (d *decoder) visit(n *yaml.Node, depth int) bool {
	d.nodes++
	if d.nodes == maxNodes+1 || depth == 101 {
		d.errorf(n, "", "the document is nested or aliased too deeply")
	}
	return d.nodes <= maxNodes && depth <= 100
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

// pair is one key and value of a mapping, merge keys (<<) expanded.
type pair struct{ key, value *yaml.Node }

func pairs(n *yaml.Node) []pair {
	var own, merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			v = resolve(v)
			sources := []*yaml.Node{v}
			if v.Kind == yaml.SequenceNode {
				sources = v.Content
			}
			for _, s := range sources {
				if s = resolve(s); s.Kind == yaml.MappingNode {
					merged = append(merged, pairs(s)...)
				}
			}
			continue
		}
		own = append(own, pair{k, v})
	}
	// A key of the mapping itself wins over a merged one, and an earlier
	// merged mapping over a later one.
	seen := map[string]bool{}
	for _, p := range own {
		seen[p.key.Value] = true
	}
	for _, p := range merged {
		if !seen[p.key.Value] {
			seen[p.key.Value] = true
			own = append(own, p)
		}
	}
	return own
}

// message checks n against md and returns its JSON form.
func (d *decoder) message(n *yaml.Node, md protoreflect.MessageDescriptor, path string, depth int) any {
	n = resolve(n)
	if !d.visit(n, depth) || isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping (the fields of %s), got %s", md.FullName(), kindName(n))
		return nil
	}
	out := map[string]any{}
	given := map[protoreflect.FieldNumber]*yaml.Node{}
	oneofs := map[protoreflect.FullName]*yaml.Node{}
	for _, p := range pairs(n) {
		k := resolve(p.key)
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "a field name must be a plain word, got %s", kindName(k))
			continue
		}
		fieldPath := k.Value
		if path != "" {
			fieldPath = path + "." + k.Value
		}
		fd := md.Fields().ByJSONName(k.Value)
		if fd == nil {
			fd = md.Fields().ByTextName(k.Value)
		}
		if fd == nil {
			d.errorf(k, path, "unknown field %q of %s%s", k.Value, md.FullName(), suggest(k.Value, fieldNames(md)))
			continue
		}
		if first, ok := given[fd.Number()]; ok {
			d.errorf(k, fieldPath, "field %q is given twice (first at line %d)", fd.JSONName(), first.Line)
			continue
		}
		given[fd.Number()] = k
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() && !isNull(resolve(p.value)) {
			if first, ok := oneofs[od.FullName()]; ok {
				d.errorf(k, fieldPath, "%q and %q (line %d) are both of the one-of %q: give one", k.Value, first.Value, first.Line, od.Name())
				continue
			}
			oneofs[od.FullName()] = k
		}
		out[fd.JSONName()] = d.field(md, fd, p.value, fieldPath, depth+1)
	}
	return out
}

// field checks the value of field fd of md and returns its JSON form.
func (d *decoder) field(md protoreflect.MessageDescriptor, fd protoreflect.FieldDescriptor, n *yaml.Node, path string, depth int) any {
	n = resolve(n)
	if !d.visit(n, depth) || isNull(n) {
		return nil
	}
	name := fd.JSONName()
	switch {
	case fd.IsList():
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "want a list, got %s", kindName(n))
			return nil
		}
		out := make([]any, 0, len(n.Content))
		for i, e := range n.Content {
			elemPath := fmt.Sprintf("%s[%d]", path, i)
			if isNull(resolve(e)) {
				d.errorf(e, elemPath, "a list element cannot be null")
				continue
			}
			wrap := func(v json.RawMessage) any { return map[string]any{name: []any{v}} }
			out = append(out, d.single(md, fd, wrap, e, elemPath, depth+1))
		}
		return out
	case fd.IsMap():
		if n.Kind != yaml.MappingNode {
			d.errorf(n, path, "want a mapping, got %s", kindName(n))
			return nil
		}
		out := map[string]any{}
		for _, p := range pairs(n) {
			k := resolve(p.key)
			if k.Kind != yaml.ScalarNode {
				d.errorf(k, path, "a key must be a plain value, got %s", kindName(k))
				continue
			}
			entryPath := fmt.Sprintf("%s[%q]", path, k.Value)
			if err := checkMapKey(fd.MapKey().Kind(), k.Value); err != nil {
				d.errorf(k, entryPath, "%v", err)
				continue
			}
			if isNull(resolve(p.value)) {
				d.errorf(p.value, entryPath, "a map value cannot be null")
				continue
			}
			wrap := func(v json.RawMessage) any { return map[string]any{name: map[string]any{k.Value: v}} }
			out[k.Value] = d.single(md, fd.MapValue(), wrap, p.value, entryPath, depth+1)
		}
		return out
	}
	wrap := func(v json.RawMessage) any { return map[string]any{name: v} }
	return d.single(md, fd, wrap, n, path, depth)
}

// single checks one value of field fd (an element of a list, the value of
// a map entry, or the field's value) and returns its JSON form. wrap puts a
// value's JSON where it goes in a message of type md, for protojson to
// check it there.
func (d *decoder) single(md protoreflect.MessageDescriptor, fd protoreflect.FieldDescriptor, wrap func(json.RawMessage) any, n *yaml.Node, path string, depth int) any {
	n = resolve(n)
	if fd.Message() != nil && !hasSpecialJSON(fd.Message()) {
		return d.message(n, fd.Message(), path, depth)
	}
	if !d.visit(n, depth) {
		return nil
	}
	if fd.Message() == nil && n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "want a single %s value, got %s", kindWord(fd), kindName(n))
		return nil
	}
	// Scalars and the well-known types with a JSON form of their own
	// (timestamps, durations, wrappers, Struct, Value, ...): protojson
	// judges the value in place.
	v, err := d.plain(n, depth)
	if err != nil {
		d.errorf(n, path, "%v", err)
		return nil
	}
	doc, err := json.Marshal(wrap(v))
	if err != nil {
		d.errorf(n, path, "%v", err)
		return nil
	}
	if err := protojson.Unmarshal(doc, dynamicpb.NewMessage(md)); err != nil {
		hint := ""
		if ed := fd.Enum(); ed != nil && n.Kind == yaml.ScalarNode {
			hint = suggest(n.Value, enumNames(ed))
		}
		d.errorf(n, path, "%s%s", protojsonMessage(err), hint)
		return nil
	}
	return v
}

// plain returns the JSON form of a YAML value, read without a descriptor.
func (d *decoder) plain(n *yaml.Node, depth int) (json.RawMessage, error) {
	n = resolve(n)
	if !d.visit(n, depth) {
		return nil, errors.New("nested or aliased too deeply")
	}
	var b bytes.Buffer
	switch n.Kind {
	case yaml.MappingNode:
		b.WriteByte('{')
		for i, p := range pairs(n) {
			k := resolve(p.key)
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: a key must be a plain value, got %s", k.Line, kindName(k))
			}
			v, err := d.plain(p.value, depth+1)
			if err != nil {
				return nil, err
			}
			if i > 0 {
				b.WriteByte(',')
			}
			kj, _ := json.Marshal(k.Value)
			b.Write(kj)
			b.WriteByte(':')
			b.Write(v)
		}
		b.WriteByte('}')
		return b.Bytes(), nil
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, e := range n.Content {
			v, err := d.plain(e, depth+1)
			if err != nil {
				return nil, err
			}
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(v)
		}
		b.WriteByte(']')
		return b.Bytes(), nil
	case yaml.ScalarNode:
		return scalarJSON(n)
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node", n.Line)
}

// scalarJSON returns the JSON form of a YAML scalar: its resolved type
// (YAML 1.2: true and false are booleans, yes and no are words), with
// infinities and NaN as protobuf JSON spells them.
func scalarJSON(n *yaml.Node) (json.RawMessage, error) {
	switch n.ShortTag() {
	case "!!null":
		return json.RawMessage("null"), nil
	case "!!bool", "!!int":
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, err
		}
		return json.Marshal(v)
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, err
		}
		switch {
		case math.IsNaN(f):
			return json.RawMessage(`"NaN"`), nil
		case math.IsInf(f, 1):
			return json.RawMessage(`"Infinity"`), nil
		case math.IsInf(f, -1):
			return json.RawMessage(`"-Infinity"`), nil
		}
		return json.RawMessage(strconv.FormatFloat(f, 'g', -1, 64)), nil
	}
	// Strings, timestamps (kept as written) and base64 !!binary.
	return json.Marshal(n.Value)
}

func checkMapKey(kind protoreflect.Kind, key string) error {
	var err error
	switch kind {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		_, err = strconv.ParseInt(key, 10, 32)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		_, err = strconv.ParseInt(key, 10, 64)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		_, err = strconv.ParseUint(key, 10, 32)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		_, err = strconv.ParseUint(key, 10, 64)
	case protoreflect.BoolKind:
		if key != "true" && key != "false" {
			err = errors.New("not true or false")
		}
	}
	if err != nil {
		return fmt.Errorf("invalid %s key %q", kind, key)
	}
	return nil
}

// hasSpecialJSON reports whether messages of md have a JSON form of their
// own instead of an object of their fields: the well-known types.
func hasSpecialJSON(md protoreflect.MessageDescriptor) bool {
	switch md.FullName() {
	case "google.protobuf.Any", "google.protobuf.Timestamp", "google.protobuf.Duration",
		"google.protobuf.FieldMask", "google.protobuf.Struct", "google.protobuf.Value",
		"google.protobuf.ListValue", "google.protobuf.DoubleValue", "google.protobuf.FloatValue",
		"google.protobuf.Int64Value", "google.protobuf.UInt64Value", "google.protobuf.Int32Value",
		"google.protobuf.UInt32Value", "google.protobuf.BoolValue", "google.protobuf.StringValue",
		"google.protobuf.BytesValue":
		return true
	}
	return false
}

func kindWord(fd protoreflect.FieldDescriptor) string {
	if fd.Enum() != nil {
		return "enum (" + string(fd.Enum().FullName()) + ")"
	}
	return fd.Kind().String()
}

// protojson's messages start with "proto:" and a space or, at random, a
// no-break space, then "(line L:C): " in the JSON it was given.
var (
	protojsonPrefix = regexp.MustCompile(`^proto:[\s\x{a0}]*`)
	jsonPosition    = regexp.MustCompile(`[\s\x{a0}]*\(line \d+:\d+\)(:[\s\x{a0}]*)?`)
)

// protojsonMessage is protojson's description of a mistake without its
// "proto:" prefix and without the position in the JSON it was given, which
// means nothing to the author of the YAML.
func protojsonMessage(err error) string {
	msg := protojsonPrefix.ReplaceAllString(err.Error(), "")
	msg = jsonPosition.ReplaceAllString(msg, ": ")
	return strings.TrimSpace(strings.TrimPrefix(msg, ": "))
}

func fieldNames(md protoreflect.MessageDescriptor) []string {
	var names []string
	for i := range md.Fields().Len() {
		names = append(names, md.Fields().Get(i).JSONName())
	}
	return names
}

func enumNames(ed protoreflect.EnumDescriptor) []string {
	var names []string
	for i := range ed.Values().Len() {
		names = append(names, string(ed.Values().Get(i).Name()))
	}
	return names
}

// suggest returns "; did you mean X?" for the name got likely stands for:
// the shortest name it begins, else the name closest to it when one is
// close enough to be a misspelling.
func suggest(got string, names []string) string {
	lower := strings.ToLower(got)
	best, bestDist := "", math.MaxInt
	for _, n := range names {
		if strings.HasPrefix(strings.ToLower(n), lower) && (best == "" || len(n) < len(best)) {
			best = n
		}
	}
	if best == "" {
		for _, n := range names {
			if dist := editDistance(lower, strings.ToLower(n)); dist < bestDist {
				best, bestDist = n, dist
			}
		}
		if bestDist > max(2, len(got)/3) {
			best = ""
		}
	}
	if best == "" || best == got {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
