package record

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
)

// FreeText says what happens to an event property or a trait whose text
// holds an e-mail address or a phone number (outside the personal fields,
// which are pseudonymised whole).
type FreeText uint8

// The ways of handling personal data found inside free text.
const (
	// FreeTextPseudonymise replaces each address and number found by its
	// keyed pseudonym, in place in the text, and lists the value among the
	// record's pseudonymised fields. The default.
	FreeTextPseudonymise FreeText = iota
	// FreeTextReject rejects the item (CONTAINS_EMAIL, CONTAINS_PHONE),
	// naming the field; its dead letter keeps the text pseudonymised.
	FreeTextReject
)

// Names of the FreeText modes, as flags spell them.
const (
	FreeTextPseudonymiseName = "pseudonymise"
	FreeTextRejectName       = "reject"
)

// ParseFreeText reads a FreeText mode by its name.
func ParseFreeText(s string) (FreeText, error) {
	switch s {
	case FreeTextPseudonymiseName:
		return FreeTextPseudonymise, nil
	case FreeTextRejectName:
		return FreeTextReject, nil
	}
	return 0, fmt.Errorf("%q: want %q or %q", s, FreeTextPseudonymiseName, FreeTextRejectName)
}

// WithFreeText sets what happens to e-mail addresses and phone numbers
// found inside the text of properties and traits; the default is
// FreeTextPseudonymise.
func WithFreeText(m FreeText) Option { return func(b *Builder) { b.freeText = m } }

// Reasons of an item rejected for personal data in free text
// (FreeTextReject).
const (
	// ReasonContainsEmail: a text value holds an e-mail address.
	ReasonContainsEmail = "CONTAINS_EMAIL"
	// ReasonContainsPhone: a text value holds a phone number.
	ReasonContainsPhone = "CONTAINS_PHONE"
)

var (
	// textEmailRE finds e-mail addresses inside text: a local part, "@",
	// a domain with a dot and a top-level domain of letters.
	textEmailRE = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}`)
	// textPhoneRE finds candidate phone numbers inside text: digits
	// grouped by spaces, dashes, dots, slashes or parentheses, perhaps
	// after a "+"; phoneInText decides.
	textPhoneRE = regexp.MustCompile(`\+?\(?\d[\d \-./()]*\d`)
	// dateRE matches the dates a grouped number may be.
	dateRE = regexp.MustCompile(`^(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})$`)
)

// phoneInText reports whether c, a match of textPhoneRE, is a phone number:
// 7 to 15 digits, shaped as LooksLikePhone says, and, without a leading
// "+", in at least three groups that are not a date, an IPv4 address or a
// number with thousands separators ("1 234 567"). Digits alone are account
// ids, as for LooksLikePhone.
func phoneInText(c string) bool {
	if !LooksLikePhone(c) {
		return false
	}
	if strings.HasPrefix(c, "+") {
		return true
	}
	groups := strings.FieldsFunc(c, func(r rune) bool { return r < '0' || r > '9' })
	if len(groups) < 3 || dateRE.MatchString(c) {
		return false
	}
	seps := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return -1
		}
		return r
	}, c)
	if len(groups) == 4 && strings.Trim(seps, ".") == "" {
		ipv4 := true
		for _, g := range groups {
			ipv4 = ipv4 && len(g) <= 3
		}
		if ipv4 {
			return false
		}
	}
	if len(groups[0]) <= 3 && len(seps) == len(groups)-1 && strings.Count(seps, seps[:1]) == len(seps) && (seps[0] == ' ' || seps[0] == '.' || seps[0] == ',') {
		thousands := true
		for _, g := range groups[1:] {
			thousands = thousands && len(g) == 3
		}
		if thousands {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// span is where a personal value lies in a text, and what it is.
type span struct {
	start, end int
	email      bool
}

// personalSpans returns the e-mail addresses and phone numbers inside s,
// in order and not overlapping (an address wins over digits in it).
func personalSpans(s string) []span {
	var out []span
	if strings.IndexByte(s, '@') >= 0 {
		for _, m := range textEmailRE.FindAllStringIndex(s, -1) {
			out = append(out, span{m[0], m[1], true})
		}
	}
	digits := 0
	for i := 0; i < len(s) && digits < 7; i++ {
		if s[i] >= '0' && s[i] <= '9' {
			digits++
		}
	}
	if digits < 7 {
		return out
	}
	emails := out
	for _, m := range textPhoneRE.FindAllStringIndex(s, -1) {
		start, end := m[0], m[1]
		// Trim a parenthesis that opens or closes nothing of the number.
		for start < end && s[start] == '(' && !strings.Contains(s[start:end], ")") {
			start++
		}
		if (start > 0 && isAlnum(s[start-1])) || (end < len(s) && isAlnum(s[end])) {
			continue
		}
		inEmail := false
		for _, e := range emails {
			inEmail = inEmail || (start < e.end && end > e.start)
		}
		if !inEmail && phoneInText(s[start:end]) {
			out = append(out, span{start, end, false})
		}
	}
	if len(emails) > 0 && len(out) > len(emails) {
		// Interleave addresses and numbers in text order.
		slices.SortFunc(out, func(a, b span) int { return a.start - b.start })
	}
	return out
}

// scrubText returns s with each span replaced by the pseudonym of its text.
func (b *Builder) scrubText(s string, spans []span) string {
	var sb strings.Builder
	last := 0
	for _, sp := range spans {
		sb.WriteString(s[last:sp.start])
		sb.WriteString(b.p.Pseudonymise(s[sp.start:sp.end]))
		last = sp.end
	}
	sb.WriteString(s[last:])
	return sb.String()
}

// scrubMap returns m with the e-mail addresses and phone numbers inside its
// text values replaced by their pseudonyms, copying m only if something
// changes, and appends the paths of the changed values to paths. Paths in
// skip already hold pseudonyms.
func (b *Builder) scrubMap(section string, m map[string]*commonv1.Value, skip map[string]bool, paths *[]string) map[string]*commonv1.Value {
	var out map[string]*commonv1.Value
	for k, v := range m {
		sv, ok := v.GetKind().(*commonv1.Value_StringValue)
		if !ok || skip[section+"."+k] {
			continue
		}
		spans := personalSpans(sv.StringValue)
		if len(spans) == 0 {
			continue
		}
		if out == nil {
			out = maps.Clone(m)
		}
		out[k] = &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: b.scrubText(sv.StringValue, spans)}}
		*paths = append(*paths, section+"."+k)
	}
	if out == nil {
		return m
	}
	return out
}

// checkFreeText adds a problem for each text value of m that holds an
// e-mail address or a phone number, when the Builder rejects them. Personal
// fields are pseudonymised whole and not checked.
func (b *Builder) checkFreeText(section string, m map[string]*commonv1.Value, p *problems) {
	if b.freeText != FreeTextReject {
		return
	}
	for k, v := range m {
		sv, ok := v.GetKind().(*commonv1.Value_StringValue)
		if !ok || b.personal[section+"."+strings.ToLower(k)] {
			continue
		}
		email, phone := false, false
		for _, sp := range personalSpans(sv.StringValue) {
			email, phone = email || sp.email, phone || !sp.email
		}
		field := section + "." + k
		if email {
			p.add(field, ReasonContainsEmail, field+" holds an e-mail address; send no personal data in free text (this ingest service rejects it rather than pseudonymise it)")
		}
		if phone {
			p.add(field, ReasonContainsPhone, field+" holds a phone number; send no personal data in free text (this ingest service rejects it rather than pseudonymise it)")
		}
	}
}
