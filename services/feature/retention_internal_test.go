package feature

import (
	"strings"
	"testing"
)

func TestProfileRetention(t *testing.T) {
	tests := []struct {
		configured int
		maxPayload int64
		want       int
		err        string
	}{
		{0, 1 << 20, 1<<20 - profileHeadroom, ""},
		{0, 8 << 20, 8<<20 - profileHeadroom, ""},
		{900 << 10, 1 << 20, 900 << 10, ""},
		{1 << 20, 1 << 20, 0, "--max-profile-bytes: 1048576 is more than the NATS server's max_payload"},
		{0, 100 << 10, 0, "too small for profiles"},
	}
	for _, tt := range tests {
		got, err := profileRetention(tt.configured, tt.maxPayload)
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("profileRetention(%d, %d) = %d, %v; want %d, %q", tt.configured, tt.maxPayload, got, err, tt.want, tt.err)
		}
	}
}
