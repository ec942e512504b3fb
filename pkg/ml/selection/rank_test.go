package selection

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// TestRank checks the leaderboard order: best mean first by the given
// comparison, ties to the earlier candidate, failed candidates last in
// candidate order, ranks from 1, and an error when every candidate failed.
func TestRank(t *testing.T) {
	lower := func(a, b float64) bool { return a < b } // an error metric
	rows := []Row{
		{Candidate: 0, Mean: 0.5},
		{Candidate: 1, Err: "fold 0: diverged"},
		{Candidate: 2, Mean: 0.2},
		{Candidate: 3, Mean: 0.5},
		{Candidate: 4, Err: "fold 1: singular"},
	}
	if err := Rank(rows, lower); err != nil {
		t.Fatal(err)
	}
	var order []int
	for i, r := range rows {
		order = append(order, r.Candidate)
		if r.Rank != i+1 {
			t.Errorf("row %d has rank %d", i, r.Rank)
		}
	}
	if want := []int{2, 0, 3, 1, 4}; !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	failed := []Row{{Candidate: 1, Err: "b"}, {Candidate: 0, Err: "a"}}
	if err := Rank(failed, lower); err == nil || !strings.Contains(err.Error(), "every candidate failed; first: a") {
		t.Errorf("every candidate failed: %v", err)
	}
	if err := Rank(nil, lower); err == nil {
		t.Error("no candidates: no error")
	}
	// A candidate without a value of the metric (NaN) ranks after those with one, before the
	// failed ones, and is no failure.
	unscored := []Row{{Candidate: 0, Mean: math.NaN()}, {Candidate: 1, Err: "x"}, {Candidate: 2, Mean: 0.9}, {Candidate: 3, Mean: 0.1}}
	if err := Rank(unscored, lower); err != nil {
		t.Fatal(err)
	}
	order = order[:0]
	for _, r := range unscored {
		order = append(order, r.Candidate)
	}
	if want := []int{3, 2, 0, 1}; !slices.Equal(order, want) {
		t.Errorf("with an unscored candidate: order %v, want %v", order, want)
	}
}
