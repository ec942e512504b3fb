// Package mesh provides the plumbing every Bullseye service shares: a gRPC server with health,
// reflection, tracing, metrics, request logs and a graceful shutdown; discovery of services through
// etcd; TLS configuration; and OpenTelemetry setup from the standard environment.
//
// A service builds a ServerConfig (NewServerConfig, then RegisterFlags and ApplyEnv), creates a
// Server with NewServer, registers its gRPC services on Server.GRPC, and calls Server.Serve with a
// Discovery so that other services find it. It reaches other services with Discovery.Dial.
package mesh
