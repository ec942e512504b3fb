package bench

import (
	"context"
	"testing"
	"time"
)

func TestRunShort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, Options{Runs: 1, Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond, Batch: 100, Concurrency: 2, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Track) != 1 || len(res.Raw) != 1 || res.Track[0] <= 0 || res.Raw[0] <= 0 {
		t.Errorf("result %+v", res)
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		if got := Median(tt.in); got != tt.want {
			t.Errorf("Median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
