package profile

import (
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
)

// BenchmarkDecodeAppended decodes a 100-event profile written as the
// materialiser writes it: batches of records appended to the encoding, some
// dated before the ones already there (which rewrites it whole).
func BenchmarkDecodeAppended(b *testing.B) {
	key := eventlog.UserKey("c")
	var stored []byte
	for batch := 0; batch < 10; batch++ {
		a, err := NewAppender(key, stored)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < 10; i++ {
			seq := uint64(batch*10 + i + 1)
			a.Apply(seq, track("Order Completed", int64((i*7+batch*3)%50)*1e9, nil, nil))
		}
		stored = a.Bytes()
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Decode(stored, nil); err != nil {
			b.Fatal(err)
		}
	}
}
