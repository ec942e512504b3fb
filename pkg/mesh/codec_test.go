package mesh

import (
	"bytes"
	"context"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
)

// TestCodecIsTheProtoWireFormat checks that the mesh codec writes exactly
// the bytes of standard protobuf marshalling and reads them back, both for
// messages with generated vtproto methods and for those without (health),
// with small and pooled (large) buffers.
func TestCodecIsTheProtoWireFormat(t *testing.T) {
	big := &featurev1.GetOnlineFeaturesResponse{FeatureNames: []string{"a", "b"}}
	for i := range 300 {
		big.Results = append(big.Results, &featurev1.EntityFeatures{
			Entity: &commonv1.EntityKey{Id: "c" + string(rune('a'+i%26))},
			Found:  true,
			Values: []*featurev1.FeatureValue{{
				Value:      &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: float64(i) / 3}},
				Status:     featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_PRESENT,
				UpdateTime: timestamppb.New(timestamppb.Now().AsTime()),
			}},
		})
	}
	cases := map[string]struct {
		msg   proto.Message
		fresh func() proto.Message
	}{
		"small vtproto message":   {&commonv1.EntityKey{Id: "customer-1"}, func() proto.Message { return &commonv1.EntityKey{} }},
		"large vtproto message":   {big, func() proto.Message { return &featurev1.GetOnlineFeaturesResponse{} }},
		"message without vtproto": {&healthpb.HealthCheckRequest{Service: "liveness"}, func() proto.Message { return &healthpb.HealthCheckRequest{} }},
	}
	c := newCodec()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			data, err := c.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			got := data.Materialize()
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("codec wrote %d bytes that differ from standard protobuf's %d", len(got), len(want))
			}
			back := tc.fresh()
			if err := c.Unmarshal(data, back); err != nil {
				t.Fatal(err)
			}
			data.Free()
			if !proto.Equal(back, tc.msg) {
				t.Errorf("round trip changed the message")
			}
		})
	}
}

// TestRecycleAfterMarshal checks that a reply registered with
// RecycleAfterMarshal is released exactly once, after the codec has encoded
// it: the bytes are those of the reply before release scribbles over it.
func TestRecycleAfterMarshal(t *testing.T) {
	c := newServerCodec()
	msg := &commonv1.EntityKey{Id: "customer-1"}
	released := 0
	RecycleAfterMarshal(context.WithValue(context.Background(), serverCodecKey{}, c), msg, func() {
		released++
		proto.Reset(msg)
	})
	data, err := c.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	var back commonv1.EntityKey
	if err := c.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if released != 1 || back.GetId() != "customer-1" || msg.GetId() != "" {
		t.Errorf("released %d times, encoded %q, reply now %q; want once, customer-1, reset", released, back.GetId(), msg.GetId())
	}
	if _, err := c.Marshal(msg); err != nil || released != 1 {
		t.Errorf("marshalling again: released %d times (%v), want still once", released, err)
	}
}

// TestRecycleAfterMarshalIsPerServer checks that a registration belongs to
// the server whose context the handler got: another server's codec does not
// release it, and a context that no server gave registers nothing.
func TestRecycleAfterMarshalIsPerServer(t *testing.T) {
	mine, other := newServerCodec(), newServerCodec()
	msg := &commonv1.EntityKey{Id: "customer-1"}
	released := 0
	RecycleAfterMarshal(context.WithValue(context.Background(), serverCodecKey{}, mine), msg, func() { released++ })
	RecycleAfterMarshal(context.Background(), msg, func() { released += 10 })
	if _, err := other.Marshal(msg); err != nil || released != 0 {
		t.Fatalf("another server's codec: released %d (%v), want 0", released, err)
	}
	if _, err := mine.Marshal(msg); err != nil || released != 1 {
		t.Errorf("its own server's codec: released %d (%v), want 1", released, err)
	}
	if n := other.recyclable.Load() + mine.recyclable.Load(); n != 0 {
		t.Errorf("%d registrations left, want none", n)
	}
}
