package serving

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/pkg/gen/inference"
	"github.com/bullseye-ml/bullseye/services/serving/internal/testenv"
)

// TestRequestsMetricLabelsMappedCode: bullseye_serving_requests_total labels a failed call
// with the status code the caller got (NotFound, InvalidArgument), as grpc_server_handled_total
// does, never "Unknown".
func TestRequestsMetricLabelsMappedCode(t *testing.T) {
	b := sharedBank(t)
	b.register(t, "bank-codes", testenv.Routing{Live: map[int64]uint32{1: 1}}, b.v1)
	in := startServing(t, b.env, nil)
	ctx := ctxT(t, 10*time.Second)

	_, err := in.client.Predict(ctx, &servingv1.PredictRequest{Model: ref("no-such-model"), Instances: byUser("x")})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Predict of an unknown model: %v, want NotFound", err)
	}
	_, err = in.client.Predict(ctx, &servingv1.PredictRequest{Model: ref("bank-codes")})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Predict without instances: %v, want InvalidArgument", err)
	}
	_, err = in.infer.ModelInfer(ctx, &inference.ModelInferRequest{ModelName: "bank-codes"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("ModelInfer without inputs: %v, want InvalidArgument", err)
	}
	if _, err := in.client.Predict(ctx, &servingv1.PredictRequest{Model: ref("bank-codes"), Instances: byUser(b.data.Rows[b.data.Test[0]].GetEntity().GetId())}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"method": "Predict", "code": "NotFound"}, 1},
		{map[string]string{"method": "Predict", "code": "InvalidArgument"}, 1},
		{map[string]string{"method": "ModelInfer", "code": "InvalidArgument", "model": "bank-codes"}, 1},
		{map[string]string{"method": "Predict", "code": "OK", "model": "bank-codes"}, 1},
		{map[string]string{"code": "Unknown"}, 0},
	}
	for _, tt := range tests {
		if got := in.metric(t, "bullseye_serving_requests_total", tt.labels); got != tt.want {
			t.Errorf("bullseye_serving_requests_total%v = %v, want %v", tt.labels, got, tt.want)
		}
	}
}
