package service

import (
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// TestLogLevelFlag checks --log-level: its default, a valid level, and a
// clear error naming the flag for a bad one.
func TestLogLevelFlag(t *testing.T) {
	parse := func(args ...string) (Config, error) {
		c := NewConfig("feature")
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.RegisterFlags(fs)
		return c, fs.Parse(args)
	}
	c, err := parse()
	if err != nil || c.LogLevel != slog.LevelInfo {
		t.Fatalf("default: level %v, error %v; want info", c.LogLevel, err)
	}
	c, err = parse("--log-level", "warn")
	if err != nil || c.LogLevel != slog.LevelWarn {
		t.Fatalf("--log-level warn: level %v, error %v", c.LogLevel, err)
	}
	if _, err = parse("--log-level", "loud"); err == nil || !strings.Contains(err.Error(), "log-level") {
		t.Fatalf("--log-level loud: error %v, want one naming the flag", err)
	}
}
