// Package embeddedtest is the test support of package embedded: the goleak options of tests
// that run the embedded servers. It is imported by tests only, so that goleak stays out of
// the binaries that embed the servers (bullseye dev).
package embeddedtest
