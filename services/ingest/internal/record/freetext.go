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
// in order and not overlapping. Numbers are looked for in the text between
// the addresses: digits that run on into an address's local part
// ("06 12 34 56 78 0611@example.com") end the number where the address
// begins, rather than making the whole run part of the address and the
// number before it go unseen.
func personalSpans(s string) []span {
	var emails []span
	if strings.IndexByte(s, '@') >= 0 {
		for _, m := range textEmailRE.FindAllStringIndex(s, -1) {
			emails = append(emails, span{m[0], m[1], true})
		}
	}
	digits := 0
	for i := 0; i < len(s) && digits < 7; i++ {
		if s[i] >= '0' && s[i] <= '9' {
			digits++
		}
	}
	if digits < 7 {
		return emails
	}
	var out []span
	last := 0
	for _, e := range emails {
		out = appendPhones(out, s, last, e.start)
		out = append(out, e)
		last = e.end
	}
	return appendPhones(out, s, last, len(s))
}

// appendPhones appends to out the phone numbers inside s[from:to], text
// holding no e-mail address. A number's neighbours are judged in the whole
// of s: one right after an address (which ends in a letter) is glued to it.
func appendPhones(out []span, s string, from, to int) []span {
	for _, m := range textPhoneRE.FindAllStringIndex(s[from:to], -1) {
		start, end := from+m[0], from+m[1]
		// Trim a parenthesis that opens or closes nothing of the number.
		for start < end && s[start] == '(' && !strings.Contains(s[start:end], ")") {
			start++
		}
		if (start > 0 && isAlnum(s[start-1])) || (end < len(s) && isAlnum(s[end])) {
			continue
		}
		if phoneInText(s[start:end]) {
			out = append(out, span{start, end, false})
		}
	}
	return out
}

// scrubText returns s with the e-mail addresses and phone numbers found in
// it (spans, from personalSpans) replaced by their pseudonyms, so that
// nothing personalSpans finds is left. A pseudonym is 64 letters and
// digits, and with the text around it may form something the scan finds:
// a number between "x@" and ".com" becomes part of an address once it is
// a pseudonym. So the result is scanned again, and each value found there
// is mapped back to the text of s it covers (whole replaced values
// included), merged with the spans it overlaps and pseudonymised from that
// text, until the result holds nothing. Every round covers more of s, so
// it ends: a value found in the result holds an "@" or a separator, which
// no pseudonym has, so at least one byte of s that was left in clear.
func (b *Builder) scrubText(s string, spans []span) string {
	for {
		out, at := b.replaceSpans(s, spans)
		found := personalSpans(out)
		if len(found) == 0 {
			return out
		}
		for i, f := range found {
			found[i] = span{origStart(f.start, spans, at), origEnd(f.end, spans, at), f.email}
		}
		spans = mergeSpans(spans, found)
	}
}

// replaceSpans returns s with each span replaced by the pseudonym of its
// text, and where each pseudonym lies in the result.
func (b *Builder) replaceSpans(s string, spans []span) (string, []span) {
	var sb strings.Builder
	at := make([]span, len(spans))
	last := 0
	for i, sp := range spans {
		sb.WriteString(s[last:sp.start])
		start := sb.Len()
		sb.WriteString(b.p.Pseudonymise(s[sp.start:sp.end]))
		at[i] = span{start, sb.Len(), sp.email}
		last = sp.end
	}
	sb.WriteString(s[last:])
	return sb.String(), at
}

// origStart maps a start offset in the text replaceSpans made back to s: a
// byte of a pseudonym (at[i]) maps to the start of the value it replaced
// (spans[i]).
func origStart(p int, spans, at []span) int {
	shift := 0
	for i, sp := range spans {
		if p < at[i].start {
			break
		}
		if p < at[i].end {
			return sp.start
		}
		shift = sp.end - at[i].end
	}
	return p + shift
}

// origEnd maps an end offset (exclusive) in the text replaceSpans made back
// to s: an end inside a pseudonym or at its end maps to the end of the
// value it replaced.
func origEnd(p int, spans, at []span) int {
	shift := 0
	for i, sp := range spans {
		if p <= at[i].start {
			break
		}
		if p <= at[i].end {
			return sp.end
		}
		shift = sp.end - at[i].end
	}
	return p + shift
}

// mergeSpans returns the spans of a and more (each in order and apart) in
// order, those that overlap merged into one.
func mergeSpans(a, more []span) []span {
	all := append(slices.Clone(a), more...)
	slices.SortFunc(all, func(x, y span) int { return x.start - y.start })
	out := all[:0]
	for _, sp := range all {
		if n := len(out); n > 0 && sp.start < out[n-1].end {
			out[n-1].end = max(out[n-1].end, sp.end)
			out[n-1].email = out[n-1].email || sp.email
			continue
		}
		out = append(out, sp)
	}
	return out
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
