package serving

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/services/serving/internal/models"
	"github.com/bullseye-ml/bullseye/services/serving/internal/testenv"
)

// TestLiveSwapUnderLoad promotes a new version while a load generator runs: no call fails,
// every row names the version that scored it (its score is that version's), the old version
// drains and is unloaded, and after the switch only the new version answers.
func TestLiveSwapUnderLoad(t *testing.T) {
	b := sharedBank(t)
	b.register(t, "bank-swap", testenv.Routing{Live: map[int64]uint32{1: 1}}, b.v1, b.v2)
	in := startServing(t, b.env, nil)
	want := map[int64]expected{1: b.trainingScores(t, b.s1), 2: b.trainingScores(t, b.s2)}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var calls, failures, wrong atomic.Int64
	var mu sync.Mutex
	seen := map[int64]int{}
	var lastV1 atomic.Int64 // unix nanos of the last call sent whose reply version 1 scored
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ctx.Err() == nil; k++ {
				rows := []int{b.data.Test[(g*997+k*4)%len(b.data.Test)], b.data.Test[(g*997+k*4+1)%len(b.data.Test)],
					b.data.Test[(g*997+k*4+2)%len(b.data.Test)], b.data.Test[(g*997+k*4+3)%len(b.data.Test)]}
				req := &servingv1.PredictRequest{Model: ref("bank-swap")}
				for _, i := range rows {
					req.Instances = append(req.Instances, &servingv1.Instance{UserId: b.data.Rows[i].GetEntity().GetId()})
				}
				cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				sent := time.Now().UnixNano()
				resp, err := in.client.Predict(cctx, req)
				cancel()
				calls.Add(1)
				if err != nil {
					failures.Add(1)
					t.Errorf("call failed during the swap: %v", err)
					continue
				}
				for j, p := range resp.GetPredictions() {
					v := p.GetModelVersion()
					w, ok := want[v]
					if p.GetStatus() != servingv1.PredictionStatus_PREDICTION_STATUS_OK || !ok || !close12(p.GetScore(), w.score[rows[j]]) {
						wrong.Add(1)
						continue
					}
					for v == 1 {
						if last := lastV1.Load(); sent <= last || lastV1.CompareAndSwap(last, sent) {
							break
						}
					}
					mu.Lock()
					seen[v]++
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	promoted := time.Now()
	if _, err := b.env.Promote(ctxT(t, 10*time.Second), "bank-swap", testenv.Routing{Live: map[int64]uint32{2: 1}}); err != nil {
		t.Fatal(err)
	}
	// The old version drains and is unloaded; the new one alone answers.
	st := in.waitStatus(t, "bank-swap", func(m *servingv1.ServedModel) bool {
		return len(m.GetVersions()) == 1 && m.GetVersions()[0].GetVersion() == 2 && m.GetVersions()[0].GetTrafficShare() == 1
	})
	switched := time.Now()
	time.Sleep(300 * time.Millisecond)
	stop()
	wg.Wait()
	t.Logf("%d calls, %d failed, %d rows wrong; rows by version %v; switch took %v after promotion", calls.Load(), failures.Load(), wrong.Load(), seen, switched.Sub(promoted).Round(time.Millisecond))
	if failures.Load() != 0 || wrong.Load() != 0 {
		t.Fatalf("%d failed calls, %d rows not scored by the version they name", failures.Load(), wrong.Load())
	}
	if seen[1] == 0 || seen[2] == 0 {
		t.Fatalf("rows by version %v: want both versions", seen)
	}
	if last := time.Unix(0, lastV1.Load()); last.After(switched) {
		t.Errorf("version 1 answered a call sent at %v, after the switch at %v", last, switched)
	}
	if v := st.GetVersions()[0]; v.GetState() != servingv1.ModelState_MODEL_STATE_AVAILABLE || v.GetLoadTime() == nil || v.GetArtifactSha256() == "" || len(v.GetInputs()) != len(b.data.Inputs) {
		t.Errorf("status of version 2: %v", v)
	}
}

// TestTrafficSplitAndShadow: with a 50/50 split each customer always meets the same version,
// chosen by the stable hash of their id; shadow versions are scored and counted, never
// returned; aliases and pinned versions answer with that version only.
func TestTrafficSplitAndShadow(t *testing.T) {
	b := sharedBank(t)
	b.register(t, "bank-split", testenv.Routing{Live: map[int64]uint32{1: 50, 2: 50}, Aliases: map[string]int64{"champion": 1}}, b.v1, b.v2)
	in := startServing(t, b.env, nil)

	ids := make([]string, 200)
	for i := range ids {
		ids[i] = b.data.Rows[b.data.Test[i]].GetEntity().GetId()
	}
	first := map[string]int64{}
	counts := map[int64]int{}
	for round := range 3 {
		resp, err := in.client.Predict(ctxT(t, 10*time.Second), &servingv1.PredictRequest{Model: ref("bank-split"), Instances: byUser(ids...)})
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range resp.GetPredictions() {
			v := p.GetModelVersion()
			if round == 0 {
				first[ids[i]] = v
				counts[v]++
				continue
			}
			if first[ids[i]] != v {
				t.Errorf("customer %s met version %d, then %d", ids[i], first[ids[i]], v)
			}
		}
	}
	t.Logf("200 customers on a 50/50 split: %v", counts)
	if counts[1] < 60 || counts[2] < 60 {
		t.Errorf("split %v is far from 50/50", counts)
	}
	// The same customer, alone, meets the same version: the choice is per customer.
	for _, id := range ids[:10] {
		resp, err := in.client.Predict(ctxT(t, 10*time.Second), &servingv1.PredictRequest{Model: ref("bank-split"), Instances: byUser(id)})
		if err != nil {
			t.Fatal(err)
		}
		if v := resp.GetPredictions()[0].GetModelVersion(); v != first[id] {
			t.Errorf("customer %s alone met version %d, in a batch %d", id, v, first[id])
		}
	}
	pinned := []*commonv1.ModelRef{
		{Name: "bank-split", Selector: &commonv1.ModelRef_Alias{Alias: "champion"}},
		{Name: "bank-split", Selector: &commonv1.ModelRef_Version{Version: 2}},
	}
	for k, r := range pinned {
		resp, err := in.client.Predict(ctxT(t, 10*time.Second), &servingv1.PredictRequest{Model: r, Instances: byUser(ids[:20]...)})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range resp.GetPredictions() {
			if p.GetModelVersion() != int64(k+1) {
				t.Errorf("%v answered with version %d", r, p.GetModelVersion())
			}
		}
	}

	// Version 2 alone is live, version 1 in its shadow.
	if _, err := b.env.Promote(ctxT(t, 10*time.Second), "bank-split", testenv.Routing{Live: map[int64]uint32{2: 1}, Shadow: []int64{1}}); err != nil {
		t.Fatal(err)
	}
	in.waitStatus(t, "bank-split", func(m *servingv1.ServedModel) bool {
		for _, v := range m.GetVersions() {
			if v.GetVersion() == 1 && v.GetShadow() && v.GetTrafficShare() == 0 && v.GetState() == servingv1.ModelState_MODEL_STATE_AVAILABLE {
				return true
			}
		}
		return false
	})
	shadowRows := func() float64 {
		return in.metric(t, "bullseye_serving_shadow_rows_total", map[string]string{"model": "bank-split", "version": "1", "status": "ok"})
	}
	before := shadowRows()
	resp, err := in.client.Predict(ctxT(t, 10*time.Second), &servingv1.PredictRequest{Model: ref("bank-split"), Instances: byUser(ids...)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range resp.GetPredictions() {
		if p.GetModelVersion() != 2 {
			t.Fatalf("a row answered by version %d with 1 in shadow", p.GetModelVersion())
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for shadowRows()-before < float64(len(ids)) {
		if time.Now().After(deadline) {
			t.Fatalf("shadow rows scored: %v, want %d", shadowRows()-before, len(ids))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := in.metric(t, "bullseye_serving_shadow_score_difference", map[string]string{"model": "bank-split", "version": "1"}); n < float64(len(ids)) {
		t.Errorf("%v shadow comparisons, want %d", n, len(ids))
	}
}

// TestHashIsStable pins the traffic-split hash: a change would move customers between the
// versions of every running split.
func TestHashIsStable(t *testing.T) {
	tests := []struct {
		id   string
		want uint64
	}{
		{"", 17280346270528514342},
		{"bank-1", 6280463844719207773},
		{"customer-42", 16557371046515049401},
	}
	for _, tt := range tests {
		if got := models.Hash(tt.id); got != tt.want {
			t.Errorf("Hash(%q) = %d, want %d", tt.id, got, tt.want)
		}
	}
}
