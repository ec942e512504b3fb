package training_test

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/bullseye-ml/bullseye/services/training"
)

// TestJobRetentionFlag checks --job-retention: its default, 0 to keep every
// job, and a negative value refused naming the flag.
func TestJobRetentionFlag(t *testing.T) {
	parse := func(args ...string) (training.Config, error) {
		c := training.NewConfig()
		fs := flag.NewFlagSet("training", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.RegisterFlags(fs)
		if err := fs.Parse(append([]string{"--insecure"}, args...)); err != nil {
			return c, err
		}
		return c, c.Validate()
	}
	c, err := parse()
	if err != nil || c.JobRetention != training.DefaultJobRetention {
		t.Errorf("default: %v, %v; want %v", c.JobRetention, err, training.DefaultJobRetention)
	}
	if c, err := parse("--job-retention", "0"); err != nil || c.JobRetention != 0 {
		t.Errorf("--job-retention 0: %v, %v; want kept for ever", c.JobRetention, err)
	}
	if _, err := parse("--job-retention", "-1h"); err == nil || !strings.Contains(err.Error(), "--job-retention") {
		t.Errorf("--job-retention -1h: %v, want an error naming the flag", err)
	}
}
