package state

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
)

// TestScanWhileWriting scans the bucket while its profiles are rewritten,
// as training sets and exports are built while imports are materialised:
// every key stored before the scan must be seen, once. (The bucket's watch
// counted rewrites towards its initial values and declared the scan
// complete early, so customers went missing from training sets.)
func TestScanWhileWriting(t *testing.T) {
	js, _ := embeddedtest.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	const keys = 3000
	value := make([]byte, 2048)
	for i := range keys {
		if _, err := s.KV().Put(ctx, fmt.Sprintf("u.k%05d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 3 {
		wctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(round), uint64(w)))
				for wctx.Err() == nil {
					_, _ = s.KV().Put(wctx, fmt.Sprintf("u.k%05d", r.IntN(keys)), value)
				}
			}()
		}
		seen := map[string]int{}
		err := s.Scan(ctx, UserPrefix, func(key string, _ []byte) error {
			seen[key]++
			return nil
		})
		stop()
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		twice := 0
		for _, n := range seen {
			if n > 1 {
				twice++
			}
		}
		if len(seen) != keys || twice > 0 {
			t.Fatalf("round %d: the scan saw %d of %d keys, %d more than once", round, len(seen), keys, twice)
		}
	}
}
