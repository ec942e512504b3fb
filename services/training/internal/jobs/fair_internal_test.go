package jobs

import (
	"slices"
	"testing"
)

// TestFairOrder checks the fair queue's order: round-robin over groups, the group served
// least recently (or never) first, oldest job first within a group.
func TestFairOrder(t *testing.T) {
	pending := []queued{
		{"20250101-000001.000-a", "big"}, {"20250101-000002.000-b", "big"}, {"20250101-000003.000-c", "big"},
		{"20250101-000004.000-d", "small"}, {"20250101-000005.000-e", "other"}, {"20250101-000006.000-f", "small"},
	}
	ids := func(qs []queued) []string {
		var out []string
		for _, q := range qs {
			out = append(out, q.id[len(q.id)-1:])
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		lastStart map[string]int64
		want      []string
	}{
		{"nothing served yet: groups by their oldest job", nil, []string{"a", "d", "e", "b", "f", "c"}},
		{"big just served", map[string]int64{"big": 10}, []string{"d", "e", "a", "f", "b", "c"}},
		{"small served before big", map[string]int64{"big": 10, "small": 5, "other": 12}, []string{"d", "a", "e", "f", "b", "c"}},
	} {
		if got := ids(fairOrder(pending, tc.lastStart)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: order %v, want %v", tc.name, got, tc.want)
		}
	}
}
