package mesh_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
)

// metricValue returns the value of the gauge or counter name with the given labels in reg, or
// -1 when there is no such series.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

// healthIs returns a condition that holds when every one of names has health want at addr.
func healthIs(t *testing.T, addr string, want healthpb.HealthCheckResponse_ServingStatus, names ...string) func() (bool, string) {
	conn := dial(t, addr)
	return func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		for _, name := range names {
			resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: name})
			if err != nil {
				return false, fmt.Sprintf("health of %q: %v", name, err)
			}
			if resp.GetStatus() != want {
				return false, fmt.Sprintf("health of %q = %s, want %s", name, resp.GetStatus(), want)
			}
		}
		return true, ""
	}
}

func TestDependencyDownIsNotServingAndLeavesDiscovery(t *testing.T) {
	d := newDiscovery(embeddedtest.Etcd(t))
	s := serve(t, testConfig("ingest"), d, nil)
	names := []string{"", "ingest", testServiceName}
	s.SetReady(true)
	eventually(t, 5*time.Second, healthIs(t, s.Addr(), healthpb.HealthCheckResponse_SERVING, names...))
	eventually(t, 5*time.Second, endpointsAre(d, "ingest", s.Addr()))

	up := func(dep string) float64 {
		return metricValue(t, s.Registry(), "bullseye_dependency_up", map[string]string{"service": "ingest", "dependency": dep})
	}
	lost := func(dep string) float64 {
		return metricValue(t, s.Registry(), "bullseye_dependency_lost_total", map[string]string{"service": "ingest", "dependency": dep})
	}

	s.SetDependency("nats", false)
	eventually(t, 5*time.Second, healthIs(t, s.Addr(), healthpb.HealthCheckResponse_NOT_SERVING, names...))
	eventually(t, 5*time.Second, healthIs(t, s.Addr(), healthpb.HealthCheckResponse_SERVING, mesh.LivenessService))
	eventually(t, 5*time.Second, endpointsAre(d, "ingest"))
	if got := up("nats"); got != 0 {
		t.Errorf("bullseye_dependency_up{dependency=nats} = %v while down, want 0", got)
	}

	// Two down: one coming back is not enough.
	s.SetDependency("etcd", false)
	s.SetDependency("nats", true)
	time.Sleep(200 * time.Millisecond)
	if ok, desc := healthIs(t, s.Addr(), healthpb.HealthCheckResponse_NOT_SERVING, names...)(); !ok {
		t.Fatalf("nats back, etcd still down: %s", desc)
	}
	if ok, desc := endpointsAre(d, "ingest")(); !ok {
		t.Fatalf("nats back, etcd still down: %s", desc)
	}

	s.SetDependency("etcd", true)
	eventually(t, 5*time.Second, healthIs(t, s.Addr(), healthpb.HealthCheckResponse_SERVING, names...))
	eventually(t, 5*time.Second, endpointsAre(d, "ingest", s.Addr()))
	for _, dep := range []string{"nats", "etcd"} {
		if got := up(dep); got != 1 {
			t.Errorf("bullseye_dependency_up{dependency=%s} = %v once back, want 1", dep, got)
		}
		if got := lost(dep); got != 1 {
			t.Errorf("bullseye_dependency_lost_total{dependency=%s} = %v, want 1", dep, got)
		}
	}

	// A dependency up does not make a service that is not ready SERVING.
	s.SetReady(false)
	eventually(t, 5*time.Second, healthIs(t, s.Addr(), healthpb.HealthCheckResponse_NOT_SERVING, names...))
	eventually(t, 5*time.Second, endpointsAre(d, "ingest"))

	if err := s.stop(t); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
}

func TestFailShutsDownAndServeReturnsTheError(t *testing.T) {
	errBroken := errors.New("connection closed for good")
	t.Run("while serving", func(t *testing.T) {
		d := newDiscovery(embeddedtest.Etcd(t))
		s := serve(t, testConfig("feature"), d, nil)
		s.SetReady(true)
		eventually(t, 5*time.Second, endpointsAre(d, "feature", s.Addr()))
		s.Fail(errBroken)
		if err := s.wait(t); !errors.Is(err, errBroken) {
			t.Fatalf("Serve after Fail = %v, want an error wrapping %v", err, errBroken)
		}
		if ok, desc := endpointsAre(d, "feature")(); !ok {
			t.Fatalf("after Fail: %s", desc)
		}
		// Readiness given later does not bring it back.
		s.SetReady(true)
		if ok, desc := endpointsAre(d, "feature")(); !ok {
			t.Fatalf("SetReady after Fail: %s", desc)
		}
	})
	t.Run("before serve", func(t *testing.T) {
		s, err := mesh.NewServer(testConfig("feature"))
		if err != nil {
			t.Fatal(err)
		}
		s.Fail(errBroken)
		s.SetReady(true)
		done := make(chan error, 1)
		go func() { done <- s.Serve(context.Background(), nil) }()
		select {
		case err := <-done:
			if !errors.Is(err, errBroken) {
				t.Fatalf("Serve after Fail = %v, want an error wrapping %v", err, errBroken)
			}
		case <-time.After(10 * time.Second):
			s.Stop()
			t.Fatal("Serve did not return within 10s of a Fail before it")
		}
	})
}
