package testenv

import (
	"io"
	"log/slog"
	"os"
	"testing"
)

// quietLogger logs warnings and errors to stderr when BULLSEYE_TEST_LOGS
// is set, and nothing otherwise.
func quietLogger(testing.TB) *slog.Logger {
	if os.Getenv("BULLSEYE_TEST_LOGS") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
