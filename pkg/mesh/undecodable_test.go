package mesh_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/bullseye-ml/bullseye/pkg/fault/hostile"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
)

// TestMalformedRequestsAreInvalidArgument sends bytes that are no protobuf
// message to a unary method of a generated message type, to one of a
// message without generated fast code (health), and to a stream: each
// answers INVALID_ARGUMENT (gRPC itself says INTERNAL for a codec error,
// blaming the server for the caller's bytes), and the server answers well
// formed calls after them.
func TestMalformedRequestsAreInvalidArgument(t *testing.T) {
	r := serve(t, testConfig("undecodable"), nil, nil)
	r.SetReady(true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := mesh.DialAddr(ctx, r.Addr(), plaintext)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	table := hostile.Table{
		methodSleep: {
			{Name: "malformed", Raw: hostile.Malformed, Code: codes.InvalidArgument},
			{Name: "a wrong wire type", Raw: []byte{0x0a, 0x01}, Code: codes.InvalidArgument},
		},
		"/grpc.health.v1.Health/Check": {
			{Name: "malformed", Raw: hostile.Malformed, Code: codes.InvalidArgument},
		},
		"/grpc.health.v1.Health/Watch": {
			{Name: "malformed", Raw: hostile.Malformed, Code: codes.InvalidArgument},
		},
	}
	streams := hostile.Streams(&healthpb.Health_ServiceDesc)
	n := hostile.Run(t, conn, streams, table, func(t *testing.T) {
		if _, err := sleepCall(ctx, conn, 0); err != nil {
			t.Fatalf("canary Sleep: %v", err)
		}
		if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("canary health check: %v", err)
		}
	})
	if n != 4 {
		t.Errorf("%d calls, want 4", n)
	}
}
