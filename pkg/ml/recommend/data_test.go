package recommend_test

import (
	"math"
	"slices"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml/recommend"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewInteractions(t *testing.T) {
	d, err := recommend.NewInteractions([]recommend.Interaction{
		{User: "ann", Item: "tea", Value: 5, Time: 30},
		{User: "bob", Item: "tea", Value: 3, Time: 10},
		{User: "ann", Item: "jam", Value: 4, Time: 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.UserIDs, []string{"ann", "bob"}) || !slices.Equal(d.ItemIDs, []string{"tea", "jam"}) {
		t.Errorf("ids %v %v, want users and items in order of first appearance", d.UserIDs, d.ItemIDs)
	}
	if !slices.Equal(d.Users, []int32{0, 1, 0}) || !slices.Equal(d.Items, []int32{0, 0, 1}) ||
		!slices.Equal(d.Values, []float64{5, 3, 4}) || !slices.Equal(d.Times, []int64{30, 10, 20}) {
		t.Errorf("columns %v %v %v %v", d.Users, d.Items, d.Values, d.Times)
	}
	for _, tc := range []struct {
		name string
		rows []recommend.Interaction
	}{
		{"a pair twice", []recommend.Interaction{{User: "a", Item: "x", Value: 1}, {User: "a", Item: "x", Value: 2}}},
		{"an empty user id", []recommend.Interaction{{Item: "x", Value: 1}}},
		{"a value that is not finite", []recommend.Interaction{{User: "a", Item: "x", Value: math.NaN()}}},
	} {
		if _, err := recommend.NewInteractions(tc.rows); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	bad := *d
	bad.Items = []int32{0, 0, 2}
	if bad.Validate() == nil {
		t.Error("an item index out of range: no error")
	}
}

// grid returns every (user, item) pair of nu users and ni items, with value u·ni + i and time
// ni − i.
func grid(t *testing.T, nu, ni int) *recommend.Interactions {
	t.Helper()
	var rows []recommend.Interaction
	for u := range nu {
		for i := range ni {
			rows = append(rows, recommend.Interaction{User: string(rune('A' + u)), Item: string(rune('a' + i)),
				Value: float64(u*ni + i), Time: int64(ni - i)})
		}
	}
	d, err := recommend.NewInteractions(rows)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestSplits(t *testing.T) {
	d := grid(t, 10, 20)
	train, test, err := d.SplitRandom(0.25, 9)
	if err != nil {
		t.Fatal(err)
	}
	if train.Len()+test.Len() != d.Len() || test.Len() < 30 || test.Len() > 70 {
		t.Errorf("random split: %d train and %d test of %d, want about a quarter in test", train.Len(), test.Len(), d.Len())
	}
	// The split depends on the pairs, not on the row order.
	rev := make([]int, d.Len())
	for r := range rev {
		rev[r] = d.Len() - 1 - r
	}
	_, test2, _ := d.Subset(rev).SplitRandom(0.25, 9)
	key := func(in *recommend.Interactions) []string {
		var out []string
		for r := range in.Users {
			out = append(out, in.UserIDs[in.Users[r]]+"/"+in.ItemIDs[in.Items[r]])
		}
		slices.Sort(out)
		return out
	}
	if !slices.Equal(key(test), key(test2)) {
		t.Error("reordering the rows changed the random split")
	}
	if _, test3, _ := d.SplitRandom(0.25, 10); slices.Equal(key(test), key(test3)) {
		t.Error("seeds 9 and 10 gave the same split")
	}
	if !slices.Equal(train.UserIDs, d.UserIDs) || !slices.Equal(test.ItemIDs, d.ItemIDs) {
		t.Error("splits do not share the id lists")
	}

	// Each user's 3 latest pairs: times are 20 − i, so items a, b, c.
	train, test, err = d.SplitLastPerUser(3)
	if err != nil {
		t.Fatal(err)
	}
	if test.Len() != 30 || train.Len() != 170 {
		t.Errorf("last-per-user split: %d train, %d test, want 170 and 30", train.Len(), test.Len())
	}
	for r := range test.Items {
		if test.Items[r] > 2 {
			t.Fatalf("last-per-user split holds out item %s", test.ItemIDs[test.Items[r]])
		}
	}
	if _, test, _ := d.SplitLastPerUser(20); test.Len() != 0 {
		t.Errorf("users with no more than n pairs stay in training: %d test rows", test.Len())
	}

	train, test, err = d.SplitByTime(19) // items a (20) and b (19)
	if err != nil {
		t.Fatal(err)
	}
	if test.Len() != 20 || train.Len() != 180 {
		t.Errorf("time split: %d train, %d test, want 180 and 20", train.Len(), test.Len())
	}
	for _, f := range []float64{0, 1, -0.5} {
		if _, _, err := d.SplitRandom(f, 1); err == nil {
			t.Errorf("test fraction %v: no error", f)
		}
	}
}

func TestPrune(t *testing.T) {
	// ann has 3 pairs, bob 1; tea has 2 users, jam 1, pie 1.
	d, err := recommend.NewInteractions([]recommend.Interaction{
		{User: "ann", Item: "tea", Value: 1}, {User: "ann", Item: "jam", Value: 1},
		{User: "ann", Item: "pie", Value: 1}, {User: "bob", Item: "tea", Value: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Users with fewer than 2 pairs go first (bob), then items with fewer than 1 remaining.
	p := d.Prune(2, 1)
	if p.Len() != 3 || slices.Contains(p.Users, 1) {
		t.Errorf("prune(2, 1) kept %d rows with users %v", p.Len(), p.Users)
	}
	// Then items with fewer than 2 of ann's remaining pairs: none survives.
	if p := d.Prune(2, 2); p.Len() != 0 {
		t.Errorf("prune(2, 2) kept %d rows", p.Len())
	}
	if p := d.Prune(0, 2); p.Len() != 2 {
		t.Errorf("prune(0, 2) kept %d rows, want tea's 2", p.Len())
	}
}
