package fault

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
)

func TestCheckRules(t *testing.T) {
	tests := []struct {
		name  string
		check func(v *Violations) bool
		want  string // the description, or "" when the value passes
	}{
		{"id ok", func(v *Violations) bool { return v.CheckID("user_id", "c-42") }, ""},
		{"id empty", func(v *Violations) bool { return v.CheckID("user_id", "") }, "is required"},
		{"id long", func(v *Violations) bool { return v.CheckID("user_id", strings.Repeat("x", 3000)) }, "is 3000 bytes long; the limit is 256 bytes"},
		{"id at limit", func(v *Violations) bool { return v.CheckID("user_id", strings.Repeat("x", MaxIDBytes)) }, ""},
		{"id utf8", func(v *Violations) bool { return v.CheckID("user_id", "a\xffb") }, "is not valid UTF-8"},
		{"id control", func(v *Violations) bool { return v.CheckID("user_id", "a\nb") }, "holds a control character at byte 1"},
		{"name long", func(v *Violations) bool { return v.CheckName("name", strings.Repeat("é", 200)) }, "is 400 bytes long; the limit is 256 bytes"},
		{"optional empty", func(v *Violations) bool { return v.CheckString("label", "", MaxTextBytes, false) }, ""},
		{"list", func(v *Violations) bool { return v.CheckLen("names", MaxListLen+1, MaxListLen) }, "has 10001 items; the limit is 10000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v Violations
			ok := tt.check(&v)
			if ok != (tt.want == "") {
				t.Fatalf("passed = %v, violations %v", ok, v)
			}
			if tt.want == "" {
				if len(v) != 0 {
					t.Fatalf("violations %v for a good value", v)
				}
				return
			}
			if len(v) != 1 || v[0].Description != tt.want {
				t.Fatalf("violations %v, want one saying %q", v, tt.want)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	if got, want := Quote("Order Completed"), `"Order Completed"`; got != want {
		t.Errorf("Quote = %s, want %s", got, want)
	}
	long := strings.Repeat("é", 1<<19) // 1 MiB
	got := Quote(long)
	if len(got) > 100 || !strings.HasSuffix(got, "… (1048576 bytes)") {
		t.Errorf("Quote of 1 MiB = %s", got)
	}
	if got := Quote("a\xffb"); got != `"a�b"` {
		t.Errorf("Quote of invalid UTF-8 = %s", got)
	}
}

func TestValidIDAgreesWithCheckID(t *testing.T) {
	for _, s := range []string{"", "c-42", "é-ü", "a\nb", "a\u0085b", "é\x7f", "a\xffb", strings.Repeat("x", MaxIDBytes), strings.Repeat("x", MaxIDBytes+1)} {
		var v Violations
		if got, want := ValidID(s), v.CheckID("id", s); got != want {
			t.Errorf("ValidID(%q) = %v, CheckID says %v", s, got, want)
		}
		if got, want := ValidName(s), v.CheckName("name", s); got != want {
			t.Errorf("ValidName(%q) = %v, CheckName says %v", s, got, want)
		}
	}
}

func TestCheckMessage(t *testing.T) {
	req := &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: "ok", Description: "fine"},
		{Field: "bad\xff", Description: strings.Repeat("d", MaxTextBytes+1)},
	}}
	var v Violations
	v.CheckMessage("req", req)
	got := map[string]string{}
	for _, x := range v {
		got[x.Field] = x.Description
	}
	want := map[string]string{
		"req.field_violations[1].field":       "is not valid UTF-8",
		"req.field_violations[1].description": "is 16385 bytes long; the limit is 16384 bytes",
	}
	if len(got) != len(want) {
		t.Fatalf("violations %v, want %v", got, want)
	}
	for f, d := range want {
		if got[f] != d {
			t.Errorf("%s: %q, want %q", f, got[f], d)
		}
	}
	long := &errdetails.BadRequest{FieldViolations: make([]*errdetails.BadRequest_FieldViolation, MaxListLen+1)}
	for i := range long.FieldViolations {
		long.FieldViolations[i] = &errdetails.BadRequest_FieldViolation{}
	}
	v = nil
	v.CheckMessage("", long)
	if len(v) != 1 || v[0].Field != "field_violations" {
		t.Errorf("a list past MaxListLen: %v", v)
	}
}

func TestManyViolationsAreCounted(t *testing.T) {
	var v Violations
	for i := range 5000 {
		v.Add(fmt.Sprintf("names[%d]", i), "is unknown")
	}
	if msg := v.Error(); len(msg) > 1000 || !strings.HasSuffix(msg, "and 4980 more") {
		t.Errorf("message of %d bytes: %.200s", len(msg), msg)
	}
	br := v.BadRequest()
	if n := len(br.GetFieldViolations()); n != MaxReported+1 || br.GetFieldViolations()[MaxReported].GetDescription() != "and 4980 more violations" {
		t.Errorf("BadRequest lists %d", n)
	}
}
