package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
)

// serve runs s on a real gRPC server on 127.0.0.1 and returns a client of it, and a function
// that stops the server once its handlers have returned.
func serve(t *testing.T, s *Server) (featurev1.FeatureServiceClient, func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	featurev1.RegisterFeatureServiceServer(gs, s)
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	stop := sync.OnceFunc(func() {
		conn.Close()
		gs.GracefulStop()
		<-done
	})
	t.Cleanup(stop)
	return featurev1.NewFeatureServiceClient(conn), stop
}

// TestDependencyStatusNotPassedOn checks that a gRPC status a dependency (etcd, NATS) returned,
// wrapped on its way up, reaches the caller as neither its code nor its text: the caller gets
// INTERNAL with a generic message, and the detail goes to the log.
func TestDependencyStatusNotPassedOn(t *testing.T) {
	const secret = "etcdserver: permission denied for user root on key /bullseye/feature/sets"
	var logs bytes.Buffer
	lastSeq := func(context.Context) (uint64, error) {
		return 0, fmt.Errorf("reading the events stream's last sequence: %w", status.Error(codes.PermissionDenied, secret))
	}
	client, stop := serve(t, New(nil, nil, nil, nil, lastSeq, WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	calls := map[string]func() error{
		"ApplyFeatureSet": func() error {
			_, err := client.ApplyFeatureSet(ctx, &featurev1.ApplyFeatureSetRequest{FeatureSet: &featurev1.FeatureSet{
				Name: "plans",
				Features: []*featurev1.Feature{{Name: "plan", Type: commonv1.ValueType_VALUE_TYPE_STRING,
					Source: &featurev1.Feature_Trait{Trait: &featurev1.TraitFeature{Trait: "plan"}}}},
			}})
			return err
		},
		"VerifyMaterialization": func() error {
			_, err := client.VerifyMaterialization(ctx, &featurev1.VerifyMaterializationRequest{})
			return err
		},
	}
	for method, call := range calls {
		t.Run(method, func(t *testing.T) {
			st := status.Convert(call())
			if st.Code() != codes.Internal {
				t.Errorf("code %v, want INTERNAL (not the dependency's PERMISSION_DENIED)", st.Code())
			}
			if strings.Contains(st.Message(), "etcdserver") || strings.Contains(fmt.Sprint(st.Details()), "etcdserver") {
				t.Errorf("the caller reads the dependency's text: %q %v", st.Message(), st.Details())
			}
		})
	}
	stop()
	if n := strings.Count(logs.String(), "etcdserver: permission denied"); n != len(calls) {
		t.Errorf("the detail is logged %d times, want %d: %s", n, len(calls), logs.String())
	}
}
