package serving

import (
	"flag"
	"testing"
	"time"
)

func TestModelBatchingFlag(t *testing.T) {
	def := DefaultBatching()
	tests := []struct {
		value string
		name  string
		want  Batching
		ok    bool
	}{
		{"bank:max-batch-size=64,batch-timeout=2ms", "bank", Batching{MaxBatchSize: 64, BatchTimeout: 2 * time.Millisecond, MaxQueue: def.MaxQueue, MaxConcurrentBatches: def.MaxConcurrentBatches}, true},
		{"bank:max-queue=8,max-concurrent-batches=2", "bank", Batching{MaxBatchSize: def.MaxBatchSize, MaxQueue: 8, MaxConcurrentBatches: 2}, true},
		{"bank:", "bank", def, true},
		{"bank", "", Batching{}, false},
		{"Bank:max-queue=8", "", Batching{}, false},
		{"bank:max-queue", "", Batching{}, false},
		{"bank:colour=red", "", Batching{}, false},
		{"bank:max-batch-size=0", "", Batching{}, false},
		{"bank:batch-timeout=soon", "", Batching{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			name, got, err := parseModelBatching(tt.value, def)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
			if tt.ok && (name != tt.name || got != tt.want) {
				t.Errorf("got %s %+v, want %s %+v", name, got, tt.name, tt.want)
			}
		})
	}
}

func TestConfigFlagsAndValidate(t *testing.T) {
	cfg := NewConfig()
	fs := flag.NewFlagSet("serving", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	// The per-model flag comes first: its other keys still take the final defaults.
	if err := fs.Parse([]string{"--model-batching", "bank:max-queue=16", "--max-batch-size", "128", "--workers", "3"}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Batching.MaxBatchSize != 128 || cfg.Workers != 3 || cfg.batchingOf("bank").MaxQueue != 16 || cfg.batchingOf("bank").MaxBatchSize != 128 || cfg.batchingOf("other").MaxBatchSize != 128 {
		t.Errorf("config %+v", cfg)
	}
	bad := NewConfig()
	bad.Batching.MaxQueue, bad.LookupTimeout, bad.AudiencePageSize = 0, 0, 0
	if err := bad.Validate(); err == nil {
		t.Error("a bad configuration validated")
	}
}
