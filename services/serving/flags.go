package serving

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/registry"
)

// parseModelBatching parses a --model-batching value,
// "name:max-batch-size=64,batch-timeout=1ms,max-queue=512,max-concurrent-batches=2"; keys left
// out take their value from defaults.
func parseModelBatching(s string, defaults Batching) (string, Batching, error) {
	name, rest, ok := strings.Cut(s, ":")
	if !ok || !registry.ValidName(name) {
		return "", Batching{}, fmt.Errorf("%q: want model-name:key=value,... with a valid model name", s)
	}
	b := defaults
	for _, kv := range strings.Split(rest, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return "", Batching{}, fmt.Errorf("%q: %q is not key=value", s, kv)
		}
		var err error
		switch k {
		case "max-batch-size":
			b.MaxBatchSize, err = strconv.Atoi(v)
		case "batch-timeout":
			b.BatchTimeout, err = time.ParseDuration(v)
		case "max-queue":
			b.MaxQueue, err = strconv.Atoi(v)
		case "max-concurrent-batches":
			b.MaxConcurrentBatches, err = strconv.Atoi(v)
		default:
			return "", Batching{}, fmt.Errorf("%q: unknown key %q (max-batch-size, batch-timeout, max-queue, max-concurrent-batches)", s, k)
		}
		if err != nil {
			return "", Batching{}, fmt.Errorf("%q: %s: %w", s, k, err)
		}
	}
	if err := b.options().Validate(); err != nil {
		return "", Batching{}, fmt.Errorf("%q: %w", s, err)
	}
	return name, b, nil
}
