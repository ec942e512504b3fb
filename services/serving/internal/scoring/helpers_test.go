package scoring

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/services/serving/internal/batch"
	"github.com/bullseye-ml/bullseye/services/serving/internal/features"
)

func num(f float64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: f}}
}
func integer(i int64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_IntValue{IntValue: i}}
}
func str(s string) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: s}}
}

// load loads a into a model with a queue of batches of up to size rows, closed and waited
// for at the end of the test.
func load(t *testing.T, fc *features.Client, a *modelv1.ModelArtifact, size int) *Model {
	t.Helper()
	opts := batch.DefaultOptions()
	opts.MaxBatchSize = size
	m, err := Load(Deps{Features: fc, Pool: batch.NewPool(2), Options: func(string) batch.Options { return opts },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Close()
		m.Wait()
	})
	return m
}

// run submits tasks of rows (one task each) together and waits for them; it returns each
// task's outcomes and the group's error.
func run(t *testing.T, m *Model, edit func(*Task), rows ...[]Row) ([][]Outcome, []*Task, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g := NewGroup(len(rows))
	outs := make([][]Outcome, len(rows))
	tasks := make([]*Task, len(rows))
	for i, r := range rows {
		outs[i] = make([]Outcome, len(r))
		tasks[i] = NewTask(ctx, g, r, outs[i])
		if edit != nil {
			edit(tasks[i])
		}
	}
	if err := m.Submit(tasks...); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.Done():
	case <-ctx.Done():
		t.Fatal("the tasks did not end within a minute")
	}
	return outs, tasks, g.Err()
}

// inputRow returns a row of inline values by input name.
func inputRow(t *testing.T, m *Model, byName map[string]*commonv1.Value) []*commonv1.Value {
	t.Helper()
	out := make([]*commonv1.Value, len(m.Inputs))
	for name, v := range byName {
		k, ok := m.InputIndex(name)
		if !ok {
			t.Fatalf("no input %q", name)
		}
		out[k] = v
	}
	return out
}
