package fault

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The bounds every service applies at its door to a string that becomes a
// key, a subject, a header or a log field. One set, so that a value accepted
// by one service is never refused, or worse broken, by the next.
const (
	// MaxIDBytes bounds customer, anonymous, item, message and request
	// ids. Keys derived from ids stay far below NATS's 4 KiB control line.
	MaxIDBytes = 256
	// MaxNameBytes bounds names: event, feature, trait, property, model,
	// feature-set and alias names.
	MaxNameBytes = 256
	// MaxTextBytes bounds free text: descriptions, labels, filters' values.
	MaxTextBytes = 16 << 10
	// MaxListLen bounds the items of a repeated field that is not itself a
	// batch (names listed in a request, filters).
	MaxListLen = 10000
	// quoteBytes is the most of a caller's value an error message repeats.
	quoteBytes = 64
)

// CheckString adds a violation for field when s is not valid UTF-8 or is
// longer than max bytes; with required, also when it is empty. It reports
// whether s passed.
func (v *Violations) CheckString(field, s string, max int, required bool) bool {
	switch {
	case s == "":
		if required {
			v.Add(field, "is required")
			return false
		}
	case len(s) > max:
		v.Add(field, "is %d bytes long; the limit is %d bytes", len(s), max)
		return false
	case !utf8.ValidString(s):
		v.Add(field, "is not valid UTF-8")
		return false
	}
	return true
}

// CheckID checks a required id (MaxIDBytes, valid UTF-8, no control
// characters).
func (v *Violations) CheckID(field, s string) bool { return v.checkToken(field, s, MaxIDBytes) }

// CheckName checks a required name (MaxNameBytes, valid UTF-8, no control
// characters).
func (v *Violations) CheckName(field, s string) bool { return v.checkToken(field, s, MaxNameBytes) }

func (v *Violations) checkToken(field, s string, max int) bool {
	if !v.CheckString(field, s, max, true) {
		return false
	}
	if i := strings.IndexFunc(s, isControl); i >= 0 {
		v.Add(field, "holds a control character at byte %d", i)
		return false
	}
	return true
}

// CheckLen adds a violation when a list has more than max items.
func (v *Violations) CheckLen(field string, n, max int) bool {
	if n > max {
		v.Add(field, "has %d items; the limit is %d", n, max)
		return false
	}
	return true
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// ValidID reports whether CheckID would pass s, without building a
// violation: for hot paths that name the field only when it fails.
func ValidID(s string) bool { return validToken(s, MaxIDBytes) }

// ValidName reports whether CheckName would pass s.
func ValidName(s string) bool { return validToken(s, MaxNameBytes) }

func validToken(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		} else if c >= utf8.RuneSelf {
			return utf8.ValidString(s[i:]) && strings.IndexFunc(s[i:], isControl) < 0
		}
	}
	return true
}

// Quote returns s quoted for an error message or a log line: at most 64
// bytes of it, cut at a character boundary, with invalid UTF-8 replaced and
// the full length said when it was cut.
func Quote(s string) string {
	if len(s) <= quoteBytes {
		return fmt.Sprintf("%q", strings.ToValidUTF8(s, "\uFFFD"))
	}
	end := 0
	for i := range s {
		if i > quoteBytes {
			break
		}
		end = i
	}
	return fmt.Sprintf("%q… (%d bytes)", strings.ToValidUTF8(s[:end], "\uFFFD"), len(s))
}

// CheckMessage walks every string of m (at any depth: nested messages,
// lists, map keys and values) and adds a violation, named by its path under
// prefix (e.g. "feature_set.features[0].aggregate.filter.names[2]"), for
// each that is not valid UTF-8 or is longer than MaxTextBytes, and for
// each list or map of more than MaxListLen items. It is the first check of
// a request that is not a batch (whose items are judged one by one), so
// that no bad string reaches storage, a subject or a log line.
func (v *Violations) CheckMessage(prefix string, m proto.Message) {
	if m == nil {
		return
	}
	v.walk(prefix, m.ProtoReflect())
}

func (v *Violations) walk(path string, m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		name := join(path, string(fd.Name()))
		switch {
		case fd.IsList():
			l := val.List()
			if !v.CheckLen(name, l.Len(), MaxListLen) {
				return true
			}
			for i := 0; i < l.Len(); i++ {
				v.value(fmt.Sprintf("%s[%d]", name, i), fd, l.Get(i))
			}
		case fd.IsMap():
			mp := val.Map()
			if !v.CheckLen(name, mp.Len(), MaxListLen) {
				return true
			}
			mp.Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				key := k.String()
				if fd.MapKey().Kind() == protoreflect.StringKind && !v.CheckString(name+" key", key, MaxTextBytes, false) {
					return true
				}
				v.value(fmt.Sprintf("%s[%s]", name, quoteKey(key)), fd.MapValue(), mv)
				return true
			})
		default:
			v.value(name, fd, val)
		}
		return true
	})
}

func (v *Violations) value(path string, fd protoreflect.FieldDescriptor, val protoreflect.Value) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		v.CheckString(path, val.String(), MaxTextBytes, false)
	case protoreflect.MessageKind, protoreflect.GroupKind:
		v.walk(path, val.Message())
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// quoteKey shows a map key in a path: whole when short and printable,
// else quoted and cut.
func quoteKey(k string) string {
	if len(k) <= quoteBytes && utf8.ValidString(k) && strings.IndexFunc(k, isControl) < 0 && !strings.ContainsAny(k, "[]") {
		return k
	}
	return Quote(k)
}
