package synth_test

import (
	"bytes"
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml/recommend"
	"github.com/bullseye-ml/bullseye/pkg/ml/synth"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// counts returns the rows of each user and of each item.
func counts(in *recommend.Interactions) (users, items []int) {
	users, items = make([]int, len(in.UserIDs)), make([]int, len(in.ItemIDs))
	for r := range in.Users {
		users[in.Users[r]]++
		items[in.Items[r]]++
	}
	return users, items
}

func TestShapes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      synth.Config
		implicit bool
	}{
		{"movielens 100k", synth.MovieLens100K(), false},
		{"movielens 100k implicit", synth.MovieLens100K(), true},
		{"small", synth.Config{Users: 30, Items: 50, Ratings: 700, MinPerUser: 5, Seed: 3}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gen := synth.Generate
			if tc.implicit {
				gen = synth.Implicit
			}
			d, err := gen(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			in := d.Interactions
			if err := in.Validate(); err != nil { // also: no (user, item) pair twice
				t.Fatal(err)
			}
			c := d.Config
			if len(in.UserIDs) != c.Users || len(in.ItemIDs) != c.Items || in.Len() != c.Ratings {
				t.Fatalf("%d users × %d items × %d rows, want %d × %d × %d",
					len(in.UserIDs), len(in.ItemIDs), in.Len(), c.Users, c.Items, c.Ratings)
			}
			if in.UserIDs[0] != "1" || in.ItemIDs[c.Items-1] != strconv.Itoa(c.Items) {
				t.Errorf("ids %q… and …%q, want MovieLens's 1…n", in.UserIDs[0], in.ItemIDs[c.Items-1])
			}
			users, items := counts(in)
			if m := slices.Min(users); m < c.MinPerUser {
				t.Errorf("a user has %d rows, want at least %d", m, c.MinPerUser)
			}
			if m := slices.Min(items); m < 1 {
				t.Error("an item has no row")
			}
			if len(d.Raw) != in.Len() || len(d.Oracle) != in.Len() {
				t.Fatalf("%d raw and %d oracle values for %d rows", len(d.Raw), len(d.Oracle), in.Len())
			}
			for r := range in.Users {
				if tm := in.Times[r]; tm < c.Start || tm > c.End {
					t.Fatalf("row %d at %d, outside [%d, %d]", r, tm, c.Start, c.End)
				}
				if r > 0 && in.Users[r] == in.Users[r-1] && in.Times[r] < in.Times[r-1] {
					t.Fatalf("row %d: a user's rows are not in time order", r)
				}
				u, i := int(in.Users[r]), int(in.Items[r])
				if tc.implicit {
					if v := in.Values[r]; v < 1 || v != math.Trunc(v) {
						t.Fatalf("row %d: count %v", r, v)
					}
					if d.Oracle[r] != d.Planted.Preference(u, i) {
						t.Fatalf("row %d: oracle %v, preference %v", r, d.Oracle[r], d.Planted.Preference(u, i))
					}
				} else if d.Oracle[r] != d.Planted.Predict(u, i) || in.Values[r] != d.Raw[r] {
					t.Fatalf("row %d: value %v raw %v oracle %v, planted %v", r, in.Values[r], d.Raw[r], d.Oracle[r], d.Planted.Predict(u, i))
				}
			}
		})
	}
}

// TestStatistics checks the generated ratings against the configuration: the residual of the
// oracle is the planted noise, and the most exposed items are rated most.
func TestStatistics(t *testing.T) {
	c := synth.MovieLens100K()
	c.Affinity = -1 // pairs drawn by exposure alone
	d, err := synth.Generate(c)
	if err != nil {
		t.Fatal(err)
	}
	var ss, mean float64
	for r := range d.Raw {
		e := d.Raw[r] - d.Oracle[r]
		ss += e * e
		mean += d.Raw[r]
	}
	n := float64(len(d.Raw))
	sigma := math.Sqrt(ss / n)
	mean /= n
	// 100,000 Gaussian residuals of σ = 0.85: their RMS is within 0.85 · (1 ± 3/√(2n)).
	if want := d.Config.Noise; math.Abs(sigma-want) > 3*want/math.Sqrt(2*n) {
		t.Errorf("residual RMS %.4f, want σ = %.2f", sigma, want)
	}
	// The mean rating is μ plus the mean user bias (weighted by activity) and item bias
	// (weighted by exposure); both are zero-mean: allow 0.1.
	if math.Abs(mean-d.Config.Mean) > 0.1 {
		t.Errorf("mean rating %.3f, want about μ = %.2f", mean, d.Config.Mean)
	}
	// With the default affinity users rate what they like: the mean rating rises.
	liked, err := synth.Generate(synth.MovieLens100K())
	if err != nil {
		t.Fatal(err)
	}
	var likedMean float64
	for _, v := range liked.Raw {
		likedMean += v
	}
	likedMean /= n
	if likedMean < mean+0.3 {
		t.Errorf("mean rating %.3f with affinity %v, %.3f without: want a rise of at least 0.3", likedMean, liked.Config.Affinity, mean)
	}
	// Zipf-like exposure: the decile of items with the largest exposure has several times the
	// rows of the decile with the smallest.
	_, items := counts(d.Interactions)
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(d.Planted.Exposure[b], d.Planted.Exposure[a]) })
	dec := len(order) / 10
	var top, bottom int
	for _, i := range order[:dec] {
		top += items[i]
	}
	for _, i := range order[len(order)-dec:] {
		bottom += items[i]
	}
	t.Logf("σ %.4f, mean %.3f (%.3f with affinity), rows of the most and least exposed deciles of items: %d and %d", sigma, mean, likedMean, top, bottom)
	if top < 4*bottom {
		t.Errorf("the most exposed decile has %d rows, the least %d: no popularity skew", top, bottom)
	}
}

func TestRoundedAndDeterministic(t *testing.T) {
	c := synth.Config{Users: 40, Items: 60, Ratings: 1000, MinPerUser: 10, Round: true, Seed: 5}
	a, err := synth.Generate(c)
	if err != nil {
		t.Fatal(err)
	}
	b, err := synth.Generate(c)
	if err != nil {
		t.Fatal(err)
	}
	var wa, wb bytes.Buffer
	if err := synth.WriteMovieLens(&wa, a.Interactions); err != nil {
		t.Fatal(err)
	}
	if err := synth.WriteMovieLens(&wb, b.Interactions); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(wa.Bytes(), wb.Bytes()) || !slices.Equal(a.Raw, b.Raw) {
		t.Error("the same seed gave different data")
	}
	for r, v := range a.Interactions.Values {
		want := min(max(math.Round(a.Raw[r]), 1), 5)
		if v != want {
			t.Fatalf("row %d: rating %v for raw %v, want %v", r, v, a.Raw[r], want)
		}
	}
	c.Seed = 6
	other, err := synth.Generate(c)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(a.Raw, other.Raw) {
		t.Error("seeds 5 and 6 gave the same data")
	}
	first := strings.SplitN(wa.String(), "\n", 2)[0]
	if f := strings.Split(first, "\t"); len(f) != 4 {
		t.Errorf("first line %q: want user, item, rating and time separated by tabs", first)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []synth.Config{
		{Users: 0, Items: 10, Ratings: 10},
		{Users: 10, Items: 10, Ratings: 50},  // fewer than 20 per user
		{Users: 2, Items: 100, Ratings: 500}, // more than 65 % of the items per user
		{Users: 5, Items: 100, Ratings: 100, MinPerUser: 1, Rank: -1},
	} {
		if _, err := synth.Generate(c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

// TestRecommender checks that the planted model, as a recommender, scores pairs as the
// planted model does.
func TestRecommender(t *testing.T) {
	d, err := synth.Generate(synth.Config{Users: 30, Items: 40, Ratings: 600, MinPerUser: 10, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	s, err := recommend.NewScorer(d.Recommender(d.Interactions))
	if err != nil {
		t.Fatal(err)
	}
	in := d.Interactions
	for r := range in.Users {
		got, known := s.Predict(in.UserIDs[in.Users[r]], in.ItemIDs[in.Items[r]])
		if !known || math.Abs(got-d.Oracle[r]) > 1e-5 {
			t.Fatalf("row %d: scorer %v (known %v), oracle %v", r, got, known, d.Oracle[r])
		}
	}
}
