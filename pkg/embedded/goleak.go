package embedded

import "go.uber.org/goleak"

// GoleakOptions returns the goleak options that a package testing with these servers passes to
// goleak.VerifyTestMain, so that goroutines the servers' libraries leave running by design after
// Close and Shutdown are not reported as leaks. With the current etcd and NATS versions none are
// left (this package's own TestMain checks that after a watch, a lease, a JetStream key-value
// bucket and a consumer), so the list is empty; callers keep calling it so that an upgrade that
// needs an exception adds it here, documented, for everyone.
func GoleakOptions() []goleak.Option {
	return nil
}
