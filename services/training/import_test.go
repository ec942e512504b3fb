package training_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/services/training"
)

// tinyXGBoost is an XGBoost JSON model (as Booster.save_model writes it) of one tree on
// features age (numeric: age < 30 goes left, a missing age left) and job (categorical: code
// 1 goes right, any other left, a missing one right), with leaves 0.5 (age ≥ 30), -0.2 and
// 0.3, base score 0.5, objective and booster as given.
func tinyXGBoost(objective, booster string) []byte {
	return fmt.Appendf(nil, `{"learner":{"attributes":{},"feature_names":["age","job"],"feature_types":["float","c"],
 "gradient_booster":{"model":{"gbtree_model_param":{"num_parallel_tree":"1","num_trees":"1"},"tree_info":[0],
  "trees":[{"base_weights":[0,0,0,0,0],"categories":[1],"categories_nodes":[1],"categories_segments":[0],"categories_sizes":[1],
   "default_left":[1,0,0,0,0],"id":0,"left_children":[1,3,-1,-1,-1],"loss_changes":[1,1,0,0,0],"parents":[2147483647,0,0,1,1],
   "right_children":[2,4,-1,-1,-1],"split_conditions":[3E1,NaN,5E-1,-2E-1,3E-1],"split_indices":[0,1,0,0,0],"split_type":[0,1,0,0,0],
   "sum_hessian":[10,6,4,3,3],"tree_param":{"num_deleted":"0","num_feature":"2","num_nodes":"5","size_leaf_vector":"0"}}]},
  "name":%q},
 "learner_model_param":{"base_score":"5E-1","boost_from_average":"1","num_class":"0","num_feature":"2","num_target":"1"},
 "objective":{"name":%q}},
 "version":[1,7,4]}`, booster, objective)
}

// tinyMargin is tinyXGBoost's margin of a row.
func tinyMargin(age float64, job int) float64 {
	switch {
	case age >= 30:
		return 0.5
	case job == 1:
		return 0.3
	}
	return -0.2
}

// tinyHeader is a header that imports tinyXGBoost as model name, reading Bank's age and job.
func tinyHeader(name string) *trainingv1.ImportModelHeader {
	return &trainingv1.ImportModelHeader{
		ModelName: name,
		Format:    &trainingv1.ImportModelHeader_XgboostJson{XgboostJson: &trainingv1.XGBoostJsonFormat{}},
		InputSignature: &modelv1.InputSignature{FeatureSet: "bank-marketing", Features: []*modelv1.FeatureMapping{
			{ModelFeature: "age", Column: &modelv1.InputColumn{Name: "age"}},
			{ModelFeature: "job", Column: &modelv1.InputColumn{Name: "job"}, Categories: []string{"admin.", "blue-collar", "technician"}},
		}},
	}
}

func header(h *trainingv1.ImportModelHeader) *trainingv1.ImportModelRequest {
	return &trainingv1.ImportModelRequest{Kind: &trainingv1.ImportModelRequest_Header{Header: h}}
}

func chunk(b []byte) *trainingv1.ImportModelRequest {
	return &trainingv1.ImportModelRequest{Kind: &trainingv1.ImportModelRequest_Chunk{Chunk: b}}
}

// chunks cuts a file into messages of at most n bytes.
func chunks(file []byte, n int) []*trainingv1.ImportModelRequest {
	var out []*trainingv1.ImportModelRequest
	for len(file) > 0 {
		k := min(n, len(file))
		out = append(out, chunk(file[:k]))
		file = file[k:]
	}
	return out
}

// importStream sends msgs on one ImportModel stream, half-closes and returns the answer.
func importStream(ctx context.Context, c trainingv1.TrainingServiceClient, msgs ...*trainingv1.ImportModelRequest) (*trainingv1.ImportModelResponse, error) {
	stream, err := c.ImportModel(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			if errors.Is(err, io.EOF) {
				break // the server answered already: CloseAndRecv has its status
			}
			return nil, err
		}
	}
	return stream.CloseAndRecv()
}

// versions returns how many versions of a model are registered.
func versions(t *testing.T, c trainingv1.TrainingServiceClient, name string) int {
	t.Helper()
	resp, err := c.ListModels(context.Background(), &trainingv1.ListModelsRequest{NamePrefix: name})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range resp.GetModels() {
		if m.GetName() == name {
			return len(m.GetVersions())
		}
	}
	return 0
}

// TestImportModel imports an XGBoost model that reads Bank's age and job, and scores rows
// with the registered version as XGBoost would: numbers compared as float32, categories by
// the mapping's codes, an unlisted category and a missing value sent the default way.
func TestImportModel(t *testing.T) {
	e := newEnv(t, bankSmall)
	tr := e.startTraining("trainer-a")
	ctx := context.Background()
	h := tinyHeader("tiny-xgb")
	h.Description = "a hand-written tree"
	h.Labels = map[string]string{"origin": "notebook"}
	h.InputSignature.Features[1].Column.Missing = modelv1.MissingPolicy_MISSING_POLICY_REQUIRED
	file := tinyXGBoost("binary:logistic", "gbtree")
	h.SizeBytes = int64(len(file))
	resp, err := importStream(ctx, tr.client, append([]*trainingv1.ImportModelRequest{header(h)}, chunks(file, 100)...)...)
	if err != nil {
		t.Fatal(err)
	}
	v := resp.GetModelVersion()
	if v.GetModelName() != "tiny-xgb" || v.GetVersion() != 1 || v.GetFamily() != modelv1.ModelFamily_MODEL_FAMILY_GRADIENT_BOOSTED_TREES ||
		v.GetTask() != modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION || v.GetDescription() != h.GetDescription() || v.GetLabels()["origin"] != "notebook" {
		t.Errorf("registered %v", v)
	}
	in := v.GetInputs()
	if len(in) != 2 || in[0].GetName() != "age" || in[0].GetType() != commonv1.ValueType_VALUE_TYPE_NUMBER || in[0].GetMissing() != modelv1.MissingPolicy_MISSING_POLICY_IMPUTE ||
		in[1].GetName() != "job" || in[1].GetType() != commonv1.ValueType_VALUE_TYPE_STRING || in[1].GetMissing() != modelv1.MissingPolicy_MISSING_POLICY_REQUIRED {
		t.Errorf("inputs %v: want age (NUMBER, from the feature set; imputed) and job (STRING; required, as mapped)", in)
	}
	l := v.GetLineage()
	sig := &modelv1.InputSignature{}
	if l.GetFeatureSet() != "bank-marketing" || l.GetFeatureSetVersion() != 1 || l.GetJobId() != "" || l.GetData().UnmarshalTo(sig) != nil || sig.GetFeatureSetVersion() != 1 {
		t.Errorf("lineage %v: want feature set bank-marketing version 1 and the signature, its version resolved", l)
	}
	if v.GetArtifact().GetSha256() == "" {
		t.Error("no artifact")
	}
	got, err := tr.client.GetModel(ctx, &trainingv1.GetModelRequest{Model: &commonv1.ModelRef{Name: "tiny-xgb", Selector: &commonv1.ModelRef_Version{Version: 1}}})
	if err != nil || !proto.Equal(got.GetModelVersion(), v) {
		t.Fatalf("GetModel: %v, %v", got.GetModelVersion(), err)
	}

	jobs := []string{"admin.", "blue-collar", "technician", "retired"}
	var rows []*trainingv1.EvaluationRow
	var want []float64
	for _, age := range []float64{18, 29.999999, 29.9999999999, 30, 61} {
		for k, job := range jobs {
			rows = append(rows, &trainingv1.EvaluationRow{EntityId: fmt.Sprint(len(rows)), Features: map[string]*commonv1.Value{"age": num(age), "job": str(job)}})
			code := k
			if job == "retired" {
				code = 1 // not listed: missing, sent right as code 1 is
			}
			// XGBoost compares float32(age) < float32(30).
			want = append(want, tinyMargin(float64(float32(age)), code))
		}
	}
	rows = append(rows, &trainingv1.EvaluationRow{EntityId: "no age", Features: map[string]*commonv1.Value{"job": str("technician")}})
	want = append(want, tinyMargin(0, 2)) // a missing age goes left
	rows = append(rows, &trainingv1.EvaluationRow{EntityId: "no job", Features: map[string]*commonv1.Value{"age": num(20)}})
	want = append(want, tinyMargin(20, 1)) // a missing job goes right
	ev, err := tr.client.Evaluate(ctx, &trainingv1.EvaluateRequest{Model: &commonv1.ModelRef{Name: "tiny-xgb", Selector: &commonv1.ModelRef_Version{Version: 1}}, Rows: rows})
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.GetScores()) != len(rows) {
		t.Fatalf("%d rows scored of %d", len(ev.GetScores()), len(rows))
	}
	for i, r := range ev.GetScores() {
		p := 1 / (1 + math.Exp(-want[i]))
		if r.GetStatus() != trainingv1.ScoredRowStatus_SCORED_ROW_STATUS_OK || math.Abs(r.GetScore()-want[i]) > 1e-7 || math.Abs(r.GetProbability()-p) > 1e-7 {
			t.Errorf("row %d (%v): score %v, probability %v; want %v, %v", i, rows[i].GetFeatures(), r.GetScore(), r.GetProbability(), want[i], p)
		}
	}

	// A version of the same model, imported with a request id: a retry with the id registers
	// nothing more and returns the same version.
	retried := tinyHeader("tiny-xgb")
	retried.RequestId = "import-7f3a"
	for i, wantCreated := range []bool{true, false} {
		resp, err := importStream(ctx, tr.client, append([]*trainingv1.ImportModelRequest{header(retried)}, chunks(file, 1<<20)...)...)
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetCreated() != wantCreated || resp.GetModelVersion().GetVersion() != 2 {
			t.Errorf("import %d with request id %s: version %d, created %v; want version 2, created %v", i+1,
				retried.RequestId, resp.GetModelVersion().GetVersion(), resp.GetCreated(), wantCreated)
		}
	}
	// Its routing: promoted like a trained one.
	p, err := tr.client.PromoteModel(ctx, &trainingv1.PromoteModelRequest{ModelName: "tiny-xgb",
		Live: &modelv1.TrafficSplit{Versions: []*modelv1.VersionWeight{{Version: 2, Weight: 1}}}})
	if err != nil || p.GetModel().GetLatestVersion() != 2 {
		t.Fatalf("PromoteModel: %v, %v", p.GetModel(), err)
	}
	// A regression model cannot join a classifier's versions.
	h = tinyHeader("tiny-xgb")
	_, err = importStream(ctx, tr.client, header(h), chunk(tinyXGBoost("reg:squarederror", "gbtree")))
	if code, reason, _ := codeAndReason(err); code != codes.FailedPrecondition || reason != "TASK_MISMATCH" {
		t.Errorf("a regression version of a classifier: %v", err)
	}
	if n := versions(t, tr.client, "tiny-xgb"); n != 2 {
		t.Errorf("%d versions, want 2", n)
	}
}

// TestImportModelRefusesBadInput sends ImportModel every kind of mistake, each answered
// INVALID_ARGUMENT naming the field at fault, with nothing registered; so does a stream
// cancelled half-way.
func TestImportModelRefusesBadInput(t *testing.T) {
	e := newEnv(t, bankSmall)
	const limit = 16 << 10
	tr := e.startTraining("trainer-a", func(c *training.Config) { c.MaxImportBytes = limit })
	ctx := context.Background()
	const name = "tiny-bad"
	good := tinyXGBoost("binary:logistic", "gbtree")
	if _, err := importStream(ctx, tr.client, header(tinyHeader(name)), chunk(good)); err != nil {
		t.Fatal(err)
	}
	with := func(mut func(h *trainingv1.ImportModelHeader)) *trainingv1.ImportModelRequest {
		h := tinyHeader(name)
		mut(h)
		return header(h)
	}
	mapping := func(i int, mut func(m *modelv1.FeatureMapping)) *trainingv1.ImportModelRequest {
		return with(func(h *trainingv1.ImportModelHeader) { mut(h.InputSignature.Features[i]) })
	}
	column := func(i int, name string) *trainingv1.ImportModelRequest {
		return mapping(i, func(m *modelv1.FeatureMapping) { m.Column.Name = name })
	}
	plain := header(tinyHeader(name))
	for _, tc := range []struct {
		name  string
		msgs  []*trainingv1.ImportModelRequest
		field string
	}{
		{"a file that is no JSON", []*trainingv1.ImportModelRequest{plain, chunk([]byte("PK\x03\x04 a zip file"))}, "chunk"},
		{"a JSON file that is no model", []*trainingv1.ImportModelRequest{plain, chunk([]byte(`{"learner": 3}`))}, "chunk"},
		{"a multi-class objective", []*trainingv1.ImportModelRequest{plain, chunk(tinyXGBoost("rank:pairwise", "gbtree"))}, "chunk"},
		{"a linear booster", []*trainingv1.ImportModelRequest{plain, chunk(tinyXGBoost("binary:logistic", "gblinear"))}, "chunk"},
		{"an unknown column", []*trainingv1.ImportModelRequest{column(1, "jobb"), chunk(good)}, "header.input_signature.features[1].column.name"},
		{"a categorical feature on a numeric column", []*trainingv1.ImportModelRequest{column(1, "campaign"), chunk(good)}, "header.input_signature.features[1].column.type"},
		{"a numeric feature on a categorical column", []*trainingv1.ImportModelRequest{column(0, "marital"), chunk(good)}, "header.input_signature.features[0].column.type"},
		{"a type the feature set does not give", []*trainingv1.ImportModelRequest{mapping(0, func(m *modelv1.FeatureMapping) {
			m.Column.Type = commonv1.ValueType_VALUE_TYPE_INT
		}), chunk(good)}, "header.input_signature.features[0].column.type"},
		{"a feature unmapped", []*trainingv1.ImportModelRequest{with(func(h *trainingv1.ImportModelHeader) {
			h.InputSignature.Features = h.InputSignature.Features[:1]
		}), chunk(good)}, "header.input_signature.features"},
		{"a feature mapped twice", []*trainingv1.ImportModelRequest{with(func(h *trainingv1.ImportModelHeader) {
			h.InputSignature.Features = append(h.InputSignature.Features, &modelv1.FeatureMapping{ModelFeature: "age", Column: &modelv1.InputColumn{Name: "duration"}})
		}), chunk(good)}, "header.input_signature.features[2].model_feature"},
		{"a column read twice", []*trainingv1.ImportModelRequest{column(1, "age"), chunk(good)}, "header.input_signature.features[1].column.name"},
		{"a request id with a slash", []*trainingv1.ImportModelRequest{with(func(h *trainingv1.ImportModelHeader) { h.RequestId = "a/b" }), chunk(good)}, "header.request_id"},
		{"a feature the model lacks", []*trainingv1.ImportModelRequest{with(func(h *trainingv1.ImportModelHeader) {
			h.InputSignature.Features = append(h.InputSignature.Features, &modelv1.FeatureMapping{ModelFeature: "salary", Column: &modelv1.InputColumn{Name: "duration"}})
		}), chunk(good)}, "header.input_signature.features[2].model_feature"},
		{"a categorical feature without categories", []*trainingv1.ImportModelRequest{mapping(1, func(m *modelv1.FeatureMapping) { m.Categories = nil }), chunk(good)},
			"header.input_signature.features[1].categories"},
		{"a code the categories do not reach", []*trainingv1.ImportModelRequest{mapping(1, func(m *modelv1.FeatureMapping) { m.Categories = m.Categories[:1] }), chunk(good)},
			"header.input_signature.features[1].categories"},
		{"categories of a numeric feature", []*trainingv1.ImportModelRequest{mapping(0, func(m *modelv1.FeatureMapping) { m.Categories = []string{"young"} }), chunk(good)},
			"header.input_signature.features[0].categories"},
		{"a repeated category", []*trainingv1.ImportModelRequest{mapping(1, func(m *modelv1.FeatureMapping) { m.Categories = []string{"a", "b", "a"} }), chunk(good)},
			"header.input_signature.features[1].categories[2]"},
		{"no column", []*trainingv1.ImportModelRequest{mapping(1, func(m *modelv1.FeatureMapping) { m.Column = nil }), chunk(good)},
			"header.input_signature.features[1].column.name"},
		{"no signature", []*trainingv1.ImportModelRequest{with(func(h *trainingv1.ImportModelHeader) { h.InputSignature = nil }), chunk(good)}, "header.input_signature"},
		{"no feature set", []*trainingv1.ImportModelRequest{with(func(h *trainingv1.ImportModelHeader) { h.InputSignature.FeatureSet = "" }), chunk(good)},
			"header.input_signature.feature_set"},
		{"no format", []*trainingv1.ImportModelRequest{with(func(h *trainingv1.ImportModelHeader) { h.Format = nil }), chunk(good)}, "header.format"},
		{"a task the objective does not perform", []*trainingv1.ImportModelRequest{with(func(h *trainingv1.ImportModelHeader) {
			h.Task = modelv1.TaskKind_TASK_KIND_REGRESSION
		}), chunk(good)}, "header.task"},
		{"a recommender task", []*trainingv1.ImportModelRequest{with(func(h *trainingv1.ImportModelHeader) {
			h.Task = modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT
		}), chunk(good)}, "header.task"},
		{"a bad model name", []*trainingv1.ImportModelRequest{with(func(h *trainingv1.ImportModelHeader) { h.ModelName = "Tiny_Bad" }), chunk(good)}, "header.model_name"},
		{"one class label", []*trainingv1.ImportModelRequest{with(func(h *trainingv1.ImportModelHeader) {
			h.Classification = &modelv1.ClassificationOutput{PositiveLabel: str("yes")}
		}), chunk(good)}, "header.classification"},
		{"a threshold of 1", []*trainingv1.ImportModelRequest{with(func(h *trainingv1.ImportModelHeader) {
			h.Classification = &modelv1.ClassificationOutput{Threshold: 1}
		}), chunk(good)}, "header.classification.threshold"},
		{"a header over 512 KiB", []*trainingv1.ImportModelRequest{mapping(1, func(m *modelv1.FeatureMapping) {
			for i := range 6000 {
				m.Categories = append(m.Categories, fmt.Sprintf("%0100d", i))
			}
		}), chunk(good)}, "header"},
		{"no header", nil, "header"},
		{"an empty first message", []*trainingv1.ImportModelRequest{{}, chunk(good)}, "header"},
		{"a chunk before the header", []*trainingv1.ImportModelRequest{chunk(good), plain}, "chunk"},
		{"the header twice", []*trainingv1.ImportModelRequest{plain, chunk(good[:10]), plain, chunk(good[10:])}, "header"},
		{"no file", []*trainingv1.ImportModelRequest{plain}, "chunk"},
		{"a file over the limit", append([]*trainingv1.ImportModelRequest{plain}, chunks(make([]byte, limit+1), 4<<10)...), "chunk"},
		{"a size over the limit", []*trainingv1.ImportModelRequest{with(func(h *trainingv1.ImportModelHeader) { h.SizeBytes = limit + 1 }), chunk(good)}, "header.size_bytes"},
		{"a file shorter than its size", []*trainingv1.ImportModelRequest{with(func(h *trainingv1.ImportModelHeader) { h.SizeBytes = int64(len(good)) + 1 }), chunk(good)},
			"header.size_bytes"},
		{"a file longer than its size", []*trainingv1.ImportModelRequest{with(func(h *trainingv1.ImportModelHeader) { h.SizeBytes = int64(len(good)) - 1 }), chunk(good)},
			"header.size_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := importStream(ctx, tr.client, tc.msgs...)
			if code := codeOf(err); code != codes.InvalidArgument {
				t.Fatalf("%v, want INVALID_ARGUMENT", err)
			}
			fields := violations(err)
			found := false
			for _, f := range fields {
				found = found || f == tc.field
			}
			if !found {
				t.Errorf("violations %q (%v), want %s", fields, err, tc.field)
			}
			if n := versions(t, tr.client, name); n != 1 {
				t.Errorf("%d versions registered, want the first one only", n)
			}
		})
	}

	if _, err := importStream(ctx, tr.client, with(func(h *trainingv1.ImportModelHeader) { h.InputSignature.FeatureSet = "no-such-set" }), chunk(good)); codeOf(err) != codes.NotFound {
		t.Errorf("an unknown feature set: %v, want NOT_FOUND", err)
	}

	// A stream cancelled before its half-close: the server has read the header and a
	// chunk, then the stream ends with CANCELLED and takes no version number.
	cctx, cancel := context.WithCancel(ctx)
	stream, err := tr.client.ImportModel(cctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(plain); err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(chunk(good)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	if _, err := stream.CloseAndRecv(); codeOf(err) != codes.Canceled {
		t.Errorf("a cancelled stream: %v", err)
	}
	resp, err := importStream(ctx, tr.client, plain, chunk(good))
	if err != nil || resp.GetModelVersion().GetVersion() != 2 {
		t.Fatalf("the import after the cancelled one: %v, %v; want version 2", resp.GetModelVersion(), err)
	}
	if logs := tr.logs.String(); strings.Count(logs, `"model imported"`) != 2 {
		t.Errorf("the logs say %d imports, want 2", strings.Count(logs, `"model imported"`))
	}
}
