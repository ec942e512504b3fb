// Package embedded provides real etcd and NATS JetStream servers that run inside the current
// process, for `bullseye dev` and for tests.
//
// Both servers listen on 127.0.0.1 only and keep their data in a directory chosen by the caller,
// so starting a server again on the same directory recovers what the previous one stored. Nothing
// here is a mock: the same client code talks to these servers and to production clusters.
package embedded
