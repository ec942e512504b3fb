package selection_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml/selection"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// checkPartition checks that every row is tested exactly once and that each fold's train and
// test rows are disjoint and cover all rows.
func checkPartition(t *testing.T, folds []selection.Fold, n int) {
	t.Helper()
	tested := make([]int, n)
	for f, fold := range folds {
		if !slices.IsSorted(fold.Train) || !slices.IsSorted(fold.Test) {
			t.Errorf("fold %d: indices not ascending", f)
		}
		if len(fold.Train)+len(fold.Test) != n {
			t.Errorf("fold %d: %d + %d rows, want %d", f, len(fold.Train), len(fold.Test), n)
		}
		for _, i := range fold.Test {
			tested[i]++
			if _, found := slices.BinarySearch(fold.Train, i); found {
				t.Errorf("fold %d: row %d in train and test", f, i)
			}
		}
	}
	for i, c := range tested {
		if c != 1 {
			t.Fatalf("row %d tested %d times", i, c)
		}
	}
}

func TestKFold(t *testing.T) {
	folds, err := selection.KFold{K: 3}.Split(10)
	if err != nil {
		t.Fatal(err)
	}
	checkPartition(t, folds, 10)
	// Unshuffled: position·3/10 gives folds of rows 0–3, 4–6, 7–9.
	if want := []int{0, 1, 2, 3}; !reflect.DeepEqual(folds[0].Test, want) {
		t.Errorf("fold 0 tests %v, want %v", folds[0].Test, want)
	}
	a, _ := selection.KFold{K: 4, Shuffle: true, Seed: 9}.Split(50)
	b, _ := selection.KFold{K: 4, Shuffle: true, Seed: 9}.Split(50)
	c, _ := selection.KFold{K: 4, Shuffle: true, Seed: 10}.Split(50)
	checkPartition(t, a, 50)
	if !reflect.DeepEqual(a, b) || reflect.DeepEqual(a, c) {
		t.Error("shuffled folds are not determined by the seed")
	}
	if _, err := (selection.KFold{K: 1}).Split(5); err == nil {
		t.Error("K = 1: no error")
	}
}

func TestStratifiedKFold(t *testing.T) {
	y := make([]float64, 103)
	for i := range y {
		if i%10 == 0 {
			y[i] = 1 // 11 positives
		}
	}
	folds, err := selection.StratifiedKFold{K: 5, Labels: y, Seed: 1}.Split(len(y))
	if err != nil {
		t.Fatal(err)
	}
	checkPartition(t, folds, len(y))
	for f, fold := range folds {
		pos := 0
		for _, i := range fold.Test {
			pos += int(y[i])
		}
		// 11 positives over 5 folds: 2 or 3 each; sizes 20 or 21.
		if pos < 2 || pos > 3 || len(fold.Test) < 20 || len(fold.Test) > 21 {
			t.Errorf("fold %d: %d rows, %d positives", f, len(fold.Test), pos)
		}
	}
}

func TestGroupKFold(t *testing.T) {
	var groups []string
	for g, size := range []int{7, 1, 3, 3, 2, 5, 1, 4} {
		for range size {
			groups = append(groups, string(rune('a'+g)))
		}
	}
	folds, err := selection.GroupKFold{K: 3, Groups: groups}.Split(len(groups))
	if err != nil {
		t.Fatal(err)
	}
	checkPartition(t, folds, len(groups))
	where := map[string]int{}
	for f, fold := range folds {
		for _, i := range fold.Test {
			if g, ok := where[groups[i]]; ok && g != f {
				t.Errorf("group %s tested in folds %d and %d", groups[i], g, f)
			}
			where[groups[i]] = f
		}
	}
	// 26 rows: largest-first into the lightest fold gives sizes 9, 9, 8.
	var sizes []int
	for _, f := range folds {
		sizes = append(sizes, len(f.Test))
	}
	slices.Sort(sizes)
	if !reflect.DeepEqual(sizes, []int{8, 9, 9}) {
		t.Errorf("fold sizes %v, want [8 9 9]", sizes)
	}
}

func TestTimeSplit(t *testing.T) {
	times := []float64{5, 1, 9, 3, 3, 7, 2, 8, 6, 4, 3, 10}
	folds, err := selection.TimeSplit{K: 3, Times: times}.Split(len(times))
	if err != nil {
		t.Fatal(err)
	}
	if len(folds) != 3 {
		t.Fatalf("%d folds, want 3", len(folds))
	}
	prevTrain := 0
	for f, fold := range folds {
		var maxTrain, minTest float64 = -1, 1e9
		for _, i := range fold.Train {
			maxTrain = max(maxTrain, times[i])
		}
		for _, i := range fold.Test {
			minTest = min(minTest, times[i])
		}
		if maxTrain >= minTest {
			t.Errorf("fold %d trains on time %v, tests from %v", f, maxTrain, minTest)
		}
		if len(fold.Train) <= prevTrain {
			t.Errorf("fold %d: training window did not grow", f)
		}
		prevTrain = len(fold.Train)
	}
}
