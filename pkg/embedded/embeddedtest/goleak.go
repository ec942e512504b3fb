package embeddedtest

import "go.uber.org/goleak"

// GoleakOptions returns the goleak options that a package testing with these servers passes to
// goleak.VerifyTestMain, so that goroutines the servers' client libraries leave behind are not
// reported as leaks. Each exception names an upstream behaviour, not ours:
//
//   - nats.go v1.55.0 jetstream: the goroutine that resets pending asynchronous publish acks on
//     reconnect (started by the first PublishAsync, e.g. an object store Put) reads the
//     connection-status channel once under a lock; when it runs before that channel is set it
//     waits on a nil channel forever, after the connection is closed too.
func GoleakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"),
	}
}
