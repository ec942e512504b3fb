// Package embeddedtest is test support for the embedded servers and the services that stand
// on them: an environment of embedded etcd and NATS with the event log's layout and an HMAC
// key (Env), a bare NATS server or etcd server with a client of it for tests that need no
// more (JetStream, Etcd), Bullseye binaries found or built for a test run (Binaries) and run
// against an environment (Process), and the goleak options of tests that run the servers.
//
// Only tests (and test benches) import it, so that goleak and test helpers stay out of the
// binaries that embed the servers (bullseye dev).
package embeddedtest
