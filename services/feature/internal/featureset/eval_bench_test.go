package featureset

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/benchset"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
)

// benchSet is the service benchmark's 20-column feature set, compiled.
func benchSet(b testing.TB) *Set {
	s, err := Compile(benchset.FeatureSet(), "feature_set")
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func benchProfile(rng *rand.Rand, now time.Time) *profile.Profile {
	p := profile.New(eventlog.UserKey("c"))
	names := []string{"Order Completed", "Product Viewed", "Product Viewed", "Added To Cart"}
	p.Apply(1, &ingestv1.StoredEvent{Type: ingestv1.EventType_EVENT_TYPE_IDENTIFY, EventTime: profile.Timestamp(now.Add(-time.Hour).UnixNano()), Traits: map[string]*commonv1.Value{
		"age": {Kind: &commonv1.Value_IntValue{IntValue: 40}}, "plan": {Kind: &commonv1.Value_StringValue{StringValue: "pro"}},
		"country": {Kind: &commonv1.Value_StringValue{StringValue: "PT"}}, "score": {Kind: &commonv1.Value_NumberValue{NumberValue: 0.5}},
	}})
	for i := 0; i < 19; i++ {
		v := 10.0
		// Decoded names are separate strings, as after reading a profile.
		name := string([]byte(names[rng.IntN(len(names))]))
		p.Apply(uint64(i+2), &ingestv1.StoredEvent{Type: ingestv1.EventType_EVENT_TYPE_TRACK, Name: name, ItemId: "item", Value: &v,
			EventTime: profile.Timestamp(now.Add(-time.Duration(rng.Float64() * float64(120*24*time.Hour))).UnixNano())})
	}
	return p
}

// bench64 returns the benchmark set, 64 customers' profiles and the
// instant they are evaluated at.
func bench64(b *testing.B) (*Set, []*profile.Profile, int64) {
	s := benchSet(b)
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Now()
	ps := make([]*profile.Profile, 64)
	for i := range ps {
		ps[i] = benchProfile(rng, now)
	}
	return s, ps, now.UnixNano()
}

func BenchmarkEval64(b *testing.B) {
	s, ps, at := bench64(b)
	out := make([]Out, len(s.Columns))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, p := range ps {
			s.Eval(p, at, out)
		}
	}
}

var outSink Out

// BenchmarkEvalOnline64 is BenchmarkEval64 through EvalOnline: lookups of
// the same customers a moment apart.
func BenchmarkEvalOnline64(b *testing.B) {
	s, ps, at := bench64(b)
	memos := make([]profile.Memo, len(ps))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j, p := range ps {
			o, _ := s.EvalOnline(&memos[j], func() (*profile.Profile, error) { return p, nil }, at+int64(i))
			for k := range s.Columns {
				outSink = o.Out(k)
			}
		}
	}
}
