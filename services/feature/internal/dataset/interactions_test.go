package dataset

import (
	"context"
	"errors"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
)

func interactions(t *testing.T, b *Builder, req *featurev1.ExportInteractionsRequest) []Interaction {
	t.Helper()
	plan, err := CompileInteractions(req)
	if err != nil {
		t.Fatalf("CompileInteractions: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []Interaction
	if _, err := b.Interactions(ctx, plan, func(i Interaction) error {
		out = append(out, i)
		return nil
	}); err != nil {
		t.Fatalf("Interactions: %v", err)
	}
	return out
}

// TestExplicitInteractions: an explicit pair's value is its latest rating (the later record
// of two at one instant); events of other names, without an item or without a numeric
// rating do not count, and a pair with none that counts is not exported. Pairs come by user,
// then item.
func TestExplicitInteractions(t *testing.T) {
	h := newHistory()
	rated := func(id, it string, at int64, r *commonv1.Value) {
		h.track(id, "Rated", at, item(it), props(map[string]*commonv1.Value{"stars": r}))
	}
	rated("u2", "m1", T, num(3))
	rated("u1", "m2", T, num(5))
	rated("u1", "m2", T-day, num(1)) // older, stored later
	rated("u1", "m1", T, num(2))
	rated("u1", "m1", T, integer(4)) // same instant, later record
	rated("u1", "m3", T, str("great"))
	h.track("u1", "Viewed", T, item("m4"), props(map[string]*commonv1.Value{"stars": num(5)}))
	h.track("u1", "Rated", T, props(map[string]*commonv1.Value{"stars": num(5)}))
	got := interactions(t, builder(t, h), &featurev1.ExportInteractionsRequest{Mode: &featurev1.ExportInteractionsRequest_Explicit{
		Explicit: &featurev1.ExplicitFeedback{EventNames: []string{"Rated"}, RatingProperty: "stars"}}})
	want := []Interaction{
		{User: "u1", Item: "m1", Value: 4, Time: T, Events: 2},
		{User: "u1", Item: "m2", Value: 5, Time: T, Events: 2},
		{User: "u2", Item: "m1", Value: 3, Time: T, Events: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("interactions\n%+v\nwant\n%+v", got, want)
	}
}

// TestImplicitInteractions: an implicit pair's value sums its events' weights (negative ones
// too) within [start_time, end_time); its time is its last counted event's.
func TestImplicitInteractions(t *testing.T) {
	h := newHistory()
	h.track("u", "Viewed", T-1, item("a")) // before start_time
	h.track("u", "Viewed", T, item("a"))
	h.track("u", "Bought", T+hour, item("a"))
	h.track("u", "Returned", T+2*hour, item("a"))
	h.track("u", "Viewed", T+day, item("a")) // at end_time
	h.track("u", "Shared", T+hour, item("b"))
	h.track("u", "Viewed", T+hour, item("c"))
	b := builder(t, h)
	req := &featurev1.ExportInteractionsRequest{
		Mode: &featurev1.ExportInteractionsRequest_Implicit{Implicit: &featurev1.ImplicitFeedback{
			EventWeights: map[string]float64{"Viewed": 1, "Bought": 5, "Returned": -5}}},
		StartTime: profile.Timestamp(T), EndTime: profile.Timestamp(T + day),
	}
	want := []Interaction{
		{User: "u", Item: "a", Value: 1, Time: T + 2*hour, Events: 3},
		{User: "u", Item: "c", Value: 1, Time: T + hour, Events: 1},
	}
	if got := interactions(t, b, req); !reflect.DeepEqual(got, want) {
		t.Errorf("interactions\n%+v\nwant\n%+v", got, want)
	}
	stop := errors.New("client gone")
	plan, _ := CompileInteractions(req)
	n := 0
	if _, err := b.Interactions(context.Background(), plan, func(Interaction) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("emit error: %v after %d pairs, want %v after 1", err, n, stop)
	}
}

// TestInteractionsLeaveOutWhomBuildsLeaveOut: erased customers never, objected ones unless
// include_objected.
func TestInteractionsLeaveOutWhomBuildsLeaveOut(t *testing.T) {
	h := newHistory()
	for _, id := range []string{"a", "erased", "objects"} {
		h.track(id, "Viewed", T, item("x"))
	}
	h.consent("objects", T, commonv1.ConsentState_CONSENT_STATE_OBJECTED)
	b := builder(t, h)
	b.erased = func(id string) bool { return id == "erased" }
	for include, want := range map[bool][]string{false: {"a"}, true: {"a", "objects"}} {
		var users []string
		for _, i := range interactions(t, b, &featurev1.ExportInteractionsRequest{IncludeObjected: include,
			Mode: &featurev1.ExportInteractionsRequest_Implicit{Implicit: &featurev1.ImplicitFeedback{EventWeights: map[string]float64{"Viewed": 1}}}}) {
			users = append(users, i.User)
		}
		if !slices.Equal(users, want) {
			t.Errorf("include_objected %v: %v, want %v", include, users, want)
		}
	}
}

// TestCompileInteractionsNamesEveryBadField: each malformed part of the request is a violation
// naming its field.
func TestCompileInteractionsNamesEveryBadField(t *testing.T) {
	implicit := func(w map[string]float64) *featurev1.ExportInteractionsRequest_Implicit {
		return &featurev1.ExportInteractionsRequest_Implicit{Implicit: &featurev1.ImplicitFeedback{EventWeights: w}}
	}
	ok := implicit(map[string]float64{"Viewed": 1})
	for _, c := range []struct {
		name  string
		req   *featurev1.ExportInteractionsRequest
		field string
	}{
		{"no mode", &featurev1.ExportInteractionsRequest{}, "mode"},
		{"no rating events", &featurev1.ExportInteractionsRequest{Mode: &featurev1.ExportInteractionsRequest_Explicit{Explicit: &featurev1.ExplicitFeedback{RatingProperty: "stars"}}}, "explicit.event_names"},
		{"no rating property", &featurev1.ExportInteractionsRequest{Mode: &featurev1.ExportInteractionsRequest_Explicit{Explicit: &featurev1.ExplicitFeedback{EventNames: []string{"Rated"}}}}, "explicit.rating_property"},
		{"no weights", &featurev1.ExportInteractionsRequest{Mode: implicit(nil)}, "implicit.event_weights"},
		{"NaN weight", &featurev1.ExportInteractionsRequest{Mode: implicit(map[string]float64{"Viewed": math.NaN()})}, "implicit.event_weights[Viewed]"},
		{"infinite weight", &featurev1.ExportInteractionsRequest{Mode: implicit(map[string]float64{"Viewed": math.Inf(-1)})}, "implicit.event_weights[Viewed]"},
		{"backwards", &featurev1.ExportInteractionsRequest{Mode: ok, StartTime: profile.Timestamp(T), EndTime: profile.Timestamp(T - 1)}, "end_time"},
		{"negative rows per message", &featurev1.ExportInteractionsRequest{Mode: ok, RowsPerMessage: -1}, "rows_per_message"},
		{"too many rows per message", &featurev1.ExportInteractionsRequest{Mode: ok, RowsPerMessage: 10001}, "rows_per_message"},
	} {
		_, err := CompileInteractions(c.req)
		if err == nil {
			t.Errorf("%s: compiled", c.name)
			continue
		}
		if got := violationFields(t, err); !slices.Contains(got, c.field) {
			t.Errorf("%s: violations name %v, want %s", c.name, got, c.field)
		}
	}
	if _, err := CompileInteractions(&featurev1.ExportInteractionsRequest{Mode: ok, StartTime: profile.Timestamp(T), EndTime: profile.Timestamp(T), RowsPerMessage: 10000}); err != nil {
		t.Errorf("an empty range and 10000 rows per message: %v", err)
	}
}
