package fault_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/fault"
)

func TestPageSize(t *testing.T) {
	for _, tc := range []struct {
		n    int32
		want int
		ok   bool
	}{{0, 50, true}, {1, 1, true}, {500, 500, true}, {501, 0, false}, {-1, 0, false}} {
		got, err := fault.PageSize(tc.n, 50, 500)
		if got != tc.want || (err == nil) != tc.ok || (err != nil && !errors.Is(err, fault.ErrInvalid)) {
			t.Errorf("PageSize(%d) = %d, %v", tc.n, got, err)
		}
	}
}

// TestPageTokens: a token reads back as its key for its own list only; a token of another
// list, a forged one, a key the list refuses and an oversized token are each a violation of
// page_token.
func TestPageTokens(t *testing.T) {
	valid := func(k string) bool { return k != "" && !strings.Contains(k, " ") }
	tok := fault.PageToken("models", "bank")
	if fault.PageToken("models", "") != "" {
		t.Error("the last page has a token")
	}
	var v fault.Violations
	if got := v.CheckPageToken("models", tok, valid); got != "bank" || len(v) != 0 {
		t.Errorf("CheckPageToken = %q, %v", got, v)
	}
	if got := v.CheckPageToken("models", "", valid); got != "" || len(v) != 0 {
		t.Errorf("first page: %q, %v", got, v)
	}
	for _, bad := range []string{fault.PageToken("jobs", "bank"), "bank", fault.PageToken("models", "two words"), strings.Repeat("A", 600)} {
		var v fault.Violations
		if got := v.CheckPageToken("models", bad, valid); got != "" || len(v) != 1 || v[0].Field != "page_token" {
			t.Errorf("CheckPageToken(%.20q) = %q, %v", bad, got, v)
		}
	}
}
