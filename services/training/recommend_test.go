package training_test

import (
	"context"
	"errors"
	"io"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/recommend"
	"github.com/bullseye-ml/bullseye/pkg/ml/synth"
)

// newRecEnv starts etcd, NATS with the event log's streams, and the REAL feature service
// (its binary), which registers as "feature" for the training service to dial.
func newRecEnv(t *testing.T) (*env, jetstream.JetStream, featurev1.FeatureServiceClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	infra := embeddedtest.New(t)
	e := &env{t: t, etcd: infra.Etcd, nats: infra.NATS, cli: infra.Cli}
	bin, err := binaries.Path("bullseye-feature")
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	feature, err := infra.StartProcess(ctx, bin, logs, "--hmac-key-file", infra.KeyFile)
	if err != nil {
		t.Fatalf("the feature service: %v\n%s", err, logs)
	}
	conn, err := grpc.NewClient(feature.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		feature.Kill()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		feature.Kill()
		if t.Failed() {
			t.Logf("logs of the feature service:\n%s", logs)
		}
	})
	return e, infra.JS, featurev1.NewFeatureServiceClient(conn)
}

// publishRatings publishes one "Product Rated" TRACK record per interaction, as ingest
// stores them: the rating as property "rating", the item as item_id, the row's time.
func publishRatings(t *testing.T, js jetstream.JetStream, d *recommend.Interactions) {
	t.Helper()
	var futures []jetstream.PubAckFuture
	flush := func() {
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				t.Fatal(err)
			case <-time.After(time.Minute):
				t.Fatal("no publish ack within a minute")
			}
		}
		futures = futures[:0]
	}
	for r := range d.Len() {
		user, item := d.UserIDs[d.Users[r]], d.ItemIDs[d.Items[r]]
		at := time.Unix(d.Times[r], 0)
		ev := &ingestv1.StoredEvent{
			Type: ingestv1.EventType_EVENT_TYPE_TRACK, MessageId: "r" + strconv.Itoa(r), UserId: user, Name: "Product Rated",
			ItemId: item, Properties: map[string]*commonv1.Value{"rating": num(d.Values[r])},
			EventTime: timestamppb.New(at), ReceivedAt: timestamppb.New(at), Source: ingestv1.EventSource_EVENT_SOURCE_TRACK,
		}
		subj, err := eventlog.EventSubject(eventlog.UserKey(user), eventlog.TypeTrack)
		if err != nil {
			t.Fatal(err)
		}
		data, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		msg := &nats.Msg{Subject: subj, Data: data, Header: nats.Header{}}
		msg.Header.Set(eventlog.HeaderMsgID, ev.GetMessageId())
		msg.Header.Set(eventlog.HeaderType, string(eventlog.TypeTrack))
		f, err := js.PublishMsgAsync(msg)
		if err != nil {
			t.Fatal(err)
		}
		if futures = append(futures, f); len(futures) == 4096 {
			flush()
		}
	}
	flush()
}

// waitExported waits until ExportInteractions returns n interactions (materialisation has
// caught up with the stream).
func waitExported(t *testing.T, fc featurev1.FeatureServiceClient, req *featurev1.ExportInteractionsRequest, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	got := 0
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		stream, err := fc.ExportInteractions(ctx, req)
		got = 0
		for err == nil {
			var m *featurev1.ExportInteractionsResponse
			if m, err = stream.Recv(); err == nil {
				got += len(m.GetInteractions())
			}
		}
		cancel()
		if !errors.Is(err, io.EOF) {
			t.Fatalf("ExportInteractions: %v", err)
		}
		if got == n {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("ExportInteractions returned %d interactions within %v, want %d", got, within, n)
}

// TestRecommenderExplicitEndToEnd publishes MovieLens-shaped ratings (pkg/ml/synth, planted
// rank 10, known noise) as "Product Rated" events, lets the real feature service export them,
// trains biased MF by ALS at rank 10 through a training job, and checks the registered
// version's test RMSE against the planted model's own (the oracle's) on the same test pairs,
// then scores through Evaluate: inline pairs and the test split of the same export.
func TestRecommenderExplicitEndToEnd(t *testing.T) {
	cfg := synth.MovieLens100K()
	cfg.Round = true
	if testing.Short() {
		cfg.Users, cfg.Items, cfg.Ratings = 300, 600, 30_000
	}
	data, err := synth.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const testFraction, seed = 0.2, 7
	_, testPairs, _, oracle, err := data.Split(testFraction, seed)
	if err != nil {
		t.Fatal(err)
	}
	var se float64
	for k, v := range testPairs.Values {
		se += (oracle[k] - v) * (oracle[k] - v)
	}
	oracleRMSE := math.Sqrt(se / float64(testPairs.Len()))

	e, js, fc := newRecEnv(t)
	start := time.Now()
	publishRatings(t, js, data.Interactions)
	export := &featurev1.ExportInteractionsRequest{Mode: &featurev1.ExportInteractionsRequest_Explicit{Explicit: &featurev1.ExplicitFeedback{
		EventNames: []string{"Product Rated"}, RatingProperty: "rating"}}}
	waitExported(t, fc, export, data.Interactions.Len(), 60*time.Second)
	t.Logf("published and materialised %d ratings (%d users, %d items) in %v", data.Interactions.Len(), cfg.Users, cfg.Items, time.Since(start).Round(time.Millisecond))

	tr := e.startTraining("trainer-1")
	interactions := &trainingv1.InteractionsSpec{Export: export,
		Split: &trainingv1.InteractionSplit{Method: &trainingv1.InteractionSplit_Random{Random: &trainingv1.RandomSplit{TestFraction: testFraction, Seed: seed}}}}
	spec := &trainingv1.TrainingSpec{
		ModelName: "movielens-als",
		Task:      modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT,
		Data:      &trainingv1.DataSpec{Source: &trainingv1.DataSpec_Interactions{Interactions: interactions}},
		Candidates: []*trainingv1.CandidateSpec{
			candidate(modelv1.ModelFamily_MODEL_FAMILY_MF_ALS, map[string]*trainingv1.HyperparameterDomain{"rank": values(num(10))}),
			{Family: modelv1.ModelFamily_MODEL_FAMILY_POPULARITY},
		},
		CrossValidation: &trainingv1.CrossValidationSpec{Folds: proto.Int32(3)},
	}
	start = time.Now()
	job := start0(t, tr.client, spec)
	job = finished(t, tr.client, job.GetJobId(), 2*time.Minute)
	succeeded(t, job)
	t.Logf("training job in %v", time.Since(start).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ref := &commonv1.ModelRef{Name: "movielens-als", Selector: &commonv1.ModelRef_Version{Version: job.GetModelVersion()}}
	got, err := tr.client.GetModel(ctx, &trainingv1.GetModelRequest{Model: ref})
	if err != nil {
		t.Fatal(err)
	}
	mv := got.GetModelVersion()
	if mv.GetFamily() != modelv1.ModelFamily_MODEL_FAMILY_MF_ALS || mv.GetTask() != modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT ||
		mv.GetSelectionMetric() != "rmse" || len(mv.GetLeaderboard()) != 2 {
		t.Fatalf("version: family %v, task %v, metric %q, %d leaderboard entries", mv.GetFamily(), mv.GetTask(), mv.GetSelectionMetric(), len(mv.GetLeaderboard()))
	}
	l := mv.GetLineage()
	if l.GetTestRows() != int64(testPairs.Len()) || l.GetTrainRows()+l.GetTestRows() != int64(data.Interactions.Len()) {
		t.Errorf("lineage: %d train and %d test rows, want %d test of %d", l.GetTrainRows(), l.GetTestRows(), testPairs.Len(), data.Interactions.Len())
	}
	rmse, mae := metric(mv.GetTestMetrics(), "rmse"), metric(mv.GetTestMetrics(), "mae")
	cvRMSE := metric(mv.GetCvMetrics(), "rmse")
	popNDCG := metric(mv.GetLeaderboard()[1].GetMetrics(), "ndcg_at_10")
	t.Logf("test RMSE %.4f (oracle %.4f, ratio %.3f), MAE %.4f, CV RMSE %.4f, popularity CV ndcg@10 %.4f; ndcg@10 %.4f",
		rmse, oracleRMSE, rmse/oracleRMSE, mae, cvRMSE, popNDCG, metric(mv.GetTestMetrics(), "ndcg_at_10"))
	// Rank-10 MF on 100K-shaped data (about 85 training ratings per user) stays within 10 % of
	// the planted model's own error; the 1M-shaped acceptance in pkg/ml/recommend holds 5 %.
	limit := 1.10
	if testing.Short() {
		limit = 1.25
	}
	if rmse > limit*oracleRMSE {
		t.Errorf("test RMSE %.4f, more than %.0f%% above the oracle's %.4f", rmse, (limit-1)*100, oracleRMSE)
	}
	// Popularity predicts no ratings: it ranks after MF with ranking metrics only.
	if pop := mv.GetLeaderboard()[1]; pop.GetFamily() != modelv1.ModelFamily_MODEL_FAMILY_POPULARITY ||
		metric(pop.GetMetrics(), "rmse") != -1 || popNDCG <= 0 {
		t.Errorf("popularity's entry %v, want no rmse and an ndcg@10", pop)
	}

	// Evaluate on the test split of the same export: the same pairs, the same errors (pairs
	// with a user or item unknown to the model are predicted from the biases, as in the job).
	ev, err := tr.client.Evaluate(ctx, &trainingv1.EvaluateRequest{Model: ref,
		Data: &trainingv1.DataSpec{Source: &trainingv1.DataSpec_Interactions{Interactions: interactions}}, OmitScores: true})
	if err != nil {
		t.Fatal(err)
	}
	evRMSE := metric(ev.GetMetrics(), "rmse")
	t.Logf("Evaluate on the test split: %d scored (%d cold), %d invalid, RMSE %.4f, precision@10 %.4f", ev.GetRowsScored(), ev.GetRowsCold(),
		ev.GetRowsInvalid(), evRMSE, metric(ev.GetMetrics(), "precision_at_10"))
	if ev.GetRowsScored() != int64(testPairs.Len()) || ev.GetRowsInvalid() != 0 || ev.GetRowsCold() > int64(testPairs.Len()/100) {
		t.Errorf("Evaluate scored %d (%d cold) and refused %d of %d test pairs", ev.GetRowsScored(), ev.GetRowsCold(), ev.GetRowsInvalid(), testPairs.Len())
	}
	if math.Abs(evRMSE-rmse) > 0.01*rmse {
		t.Errorf("Evaluate's RMSE %.4f differs from the job's test RMSE %.4f by more than 1%%", evRMSE, rmse)
	}

	// Inline pairs: labelled test pairs score as the model predicts, unknown users from the
	// global mean and the item's bias.
	var rows []*trainingv1.EvaluationRow
	for r := range 50 {
		rows = append(rows, &trainingv1.EvaluationRow{EntityId: testPairs.UserIDs[testPairs.Users[r]], ItemId: testPairs.ItemIDs[testPairs.Items[r]],
			Label: num(testPairs.Values[r])})
	}
	rows = append(rows, &trainingv1.EvaluationRow{EntityId: "nobody", ItemId: testPairs.ItemIDs[0], Label: num(3)})
	inline, err := tr.client.Evaluate(ctx, &trainingv1.EvaluateRequest{Model: ref, Rows: rows})
	if err != nil {
		t.Fatal(err)
	}
	last := inline.GetScores()[len(rows)-1]
	if len(inline.GetScores()) != len(rows) || last.GetStatus() != trainingv1.ScoredRowStatus_SCORED_ROW_STATUS_OK ||
		!last.GetFromBiases() || last.GetScore() < 1 || last.GetScore() > 5 || inline.GetRowsInvalid() != 0 || inline.GetRowsCold() < 1 {
		t.Fatalf("inline Evaluate: %d scores, last %v, %d invalid, %d cold", len(inline.GetScores()), last, inline.GetRowsInvalid(), inline.GetRowsCold())
	}
	for _, r := range inline.GetScores()[:len(rows)-1] {
		if r.GetStatus() == trainingv1.ScoredRowStatus_SCORED_ROW_STATUS_OK && (r.GetScore() < 1 || r.GetScore() > 5 || r.GetItemId() == "") {
			t.Errorf("row %d: score %v for (%s, %s), want a rating in [1, 5]", r.GetIndex(), r.GetScore(), r.GetEntityId(), r.GetItemId())
		}
	}
	if metric(inline.GetMetrics(), "rmse") <= 0 {
		t.Errorf("inline metrics %v lack rmse", inline.GetMetrics())
	}
}

// start0 starts a job with a fresh request id.
func start0(t *testing.T, c trainingv1.TrainingServiceClient, spec *trainingv1.TrainingSpec) *trainingv1.Job {
	t.Helper()
	return start(t, c, "req-"+spec.GetModelName(), spec)
}
