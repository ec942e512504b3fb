package training_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/fault/hostile"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
)

const trainingPrefix = "/bullseye.training.v1.TrainingService/"

// hostileModel is the model the suite trains first, so that bad calls about a real model
// reach the registry.
const hostileModel = "bank-hostile"

func one(m proto.Message) []proto.Message { return []proto.Message{m} }

// unknownJob is a well-formed id of no job.
const unknownJob = "20250101-000000.000-00000000"

// hostileTable is a table of bad inputs for every public RPC of the training service.
func hostileTable() hostile.Table {
	inv := codes.InvalidArgument
	good := func(mut func(*trainingv1.TrainingSpec)) *trainingv1.StartTrainingRequest {
		s := bankSpec("bank-bad", false, logisticC(1))
		mut(s)
		return &trainingv1.StartTrainingRequest{RequestId: "hostile", Spec: s}
	}
	strs := func(n int, s string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = s
		}
		return out
	}
	states := make([]trainingv1.JobState, 10001)
	for i := range states {
		states[i] = trainingv1.JobState_JOB_STATE_RUNNING
	}
	ks := make([]int32, 10001)
	for i := range ks {
		ks[i] = 10
	}
	model := func(name string) *commonv1.ModelRef { return &commonv1.ModelRef{Name: name} }
	alias := func(a string) *commonv1.ModelRef {
		return &commonv1.ModelRef{Name: hostileModel, Selector: &commonv1.ModelRef_Alias{Alias: a}}
	}
	row := func(entity string, features map[string]*commonv1.Value) *trainingv1.EvaluationRow {
		return &trainingv1.EvaluationRow{EntityId: entity, Features: features}
	}
	evalRows := func(rows ...*trainingv1.EvaluationRow) *trainingv1.EvaluateRequest {
		return &trainingv1.EvaluateRequest{Model: model(hostileModel), Rows: rows}
	}
	aRow := row("a", map[string]*commonv1.Value{"age": num(40)})
	evalOpts := func(o *trainingv1.EvaluationOptions) *trainingv1.EvaluateRequest {
		r := evalRows(aRow)
		r.Options = o
		return r
	}
	imp := func(mut func(*trainingv1.ImportModelHeader)) *trainingv1.ImportModelRequest {
		h := tinyHeader("imported-bad")
		mut(h)
		return header(h)
	}
	tinyChunk := chunk(tinyXGBoost("binary:logistic", "gbtree"))
	promote := func(mut func(*trainingv1.PromoteModelRequest)) *trainingv1.PromoteModelRequest {
		r := &trainingv1.PromoteModelRequest{ModelName: hostileModel, ExpectedRevision: 1, ValidateOnly: true}
		mut(r)
		return r
	}
	cutoff := func(ts *timestamppb.Timestamp) func(*trainingv1.TrainingSpec) {
		return func(s *trainingv1.TrainingSpec) {
			s.Data.GetTrainingSet().Cutoff = &featurev1.CutoffSpec{Cutoff: &featurev1.CutoffSpec_FixedTime{FixedTime: ts}}
		}
	}
	return hostile.Table{
		trainingPrefix + "StartTraining": {
			{Name: "empty", Requests: one(&trainingv1.StartTrainingRequest{}), Code: inv, Field: "request_id"},
			{Name: "no spec", Requests: one(&trainingv1.StartTrainingRequest{RequestId: "r"}), Code: inv, Field: "spec"},
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "1 MiB request id", Requests: one(func() proto.Message {
				r := good(func(*trainingv1.TrainingSpec) {})
				r.RequestId = hostile.MB1
				return r
			}()), Code: inv, Field: "request_id"},
			{Name: "invalid UTF-8 request id", Requests: one(func() proto.Message {
				r := good(func(*trainingv1.TrainingSpec) {})
				r.RequestId = hostile.InvalidUTF8
				return r
			}()), Code: inv, Field: "request_id"},
			{Name: "1 MiB model name", Requests: one(good(func(s *trainingv1.TrainingSpec) { s.ModelName = hostile.MB1 })), Code: inv, Field: "spec.model_name"},
			{Name: "invalid UTF-8 model name", Requests: one(good(func(s *trainingv1.TrainingSpec) { s.ModelName = hostile.InvalidUTF8 })), Code: inv, Field: "spec.model_name"},
			{Name: "1 MiB description", Requests: one(good(func(s *trainingv1.TrainingSpec) { s.Description = hostile.MB1 })), Code: inv, Field: "spec.description"},
			{Name: "invalid UTF-8 description", Requests: one(good(func(s *trainingv1.TrainingSpec) { s.Description = hostile.InvalidUTF8 })), Code: inv, Field: "spec.description"},
			{Name: "bad task enum", Requests: one(good(func(s *trainingv1.TrainingSpec) { s.Task = 99 })), Code: inv, Field: "spec.task"},
			{Name: "bad family enum", Requests: one(good(func(s *trainingv1.TrainingSpec) { s.Candidates[0].Family = 999 })), Code: inv, Field: "spec.candidates[0].family"},
			{Name: "NaN hyperparameter", Requests: one(good(func(s *trainingv1.TrainingSpec) { s.Candidates[0] = logisticC(math.NaN()) })), Code: inv, Field: "spec.candidates[0].hyperparameters"},
			{Name: "Inf hyperparameter", Requests: one(good(func(s *trainingv1.TrainingSpec) { s.Candidates[0] = logisticC(math.Inf(1)) })), Code: inv, Field: "spec.candidates[0].hyperparameters"},
			{Name: "Inf range", Requests: one(good(func(s *trainingv1.TrainingSpec) {
				s.Candidates[0].Hyperparameters["c"] = &trainingv1.HyperparameterDomain{Domain: &trainingv1.HyperparameterDomain_Range{
					Range: &trainingv1.HyperparameterRange{Min: 0.1, Max: math.Inf(1), Scale: trainingv1.RangeScale_RANGE_SCALE_LOG, GridPoints: 3}}}
			})), Code: inv, Field: "spec.candidates[0].hyperparameters"},
			{Name: "1 MiB hyperparameter name", Requests: one(good(func(s *trainingv1.TrainingSpec) {
				s.Candidates[0].Hyperparameters[hostile.MB1] = values(num(1))
			})), Code: inv, Field: "spec.candidates[0].hyperparameters key"},
			{Name: "invalid UTF-8 hyperparameter name", Requests: one(good(func(s *trainingv1.TrainingSpec) {
				s.Candidates[0].Hyperparameters[hostile.InvalidUTF8] = values(num(1))
			})), Code: inv, Field: "spec.candidates[0].hyperparameters key"},
			{Name: "10 kB hyperparameter name", Requests: one(good(func(s *trainingv1.TrainingSpec) {
				s.Candidates[0].Hyperparameters[hostile.KB10] = values(num(1))
			})), Code: inv, Field: "spec.candidates[0].hyperparameters"},
			{Name: "10,000 candidates", Requests: one(good(func(s *trainingv1.TrainingSpec) {
				for range 10000 {
					s.Candidates = append(s.Candidates, logisticC(1))
				}
			})), Code: inv, Field: "spec.candidates"},
			{Name: "10,001 excluded columns", Requests: one(good(func(s *trainingv1.TrainingSpec) { s.Preprocessing.ExcludedColumns = strs(10001, "x") })), Code: inv, Field: "spec.preprocessing.excluded_columns"},
			{Name: "1 MiB excluded column", Requests: one(good(func(s *trainingv1.TrainingSpec) { s.Preprocessing.ExcludedColumns = []string{hostile.MB1} })), Code: inv, Field: "spec.preprocessing.excluded_columns[0]"},
			{Name: "invalid UTF-8 excluded column", Requests: one(good(func(s *trainingv1.TrainingSpec) { s.Preprocessing.ExcludedColumns = []string{hostile.InvalidUTF8} })), Code: inv, Field: "spec.preprocessing.excluded_columns[0]"},
			{Name: "invalid UTF-8 label", Requests: one(good(func(s *trainingv1.TrainingSpec) { s.Labels = map[string]string{"team": hostile.InvalidUTF8} })), Code: inv, Field: "spec.labels"},
			{Name: "1 MiB label key", Requests: one(good(func(s *trainingv1.TrainingSpec) { s.Labels = map[string]string{hostile.MB1: "x"} })), Code: inv, Field: "spec.labels key"},
			{Name: "1 MiB feature set name", Requests: one(good(func(s *trainingv1.TrainingSpec) { s.Data.GetTrainingSet().FeatureSet.Name = hostile.MB1 })), Code: inv, Field: "spec.data.training_set.feature_set.name"},
			{Name: "time out of range", Requests: one(good(cutoff(&timestamppb.Timestamp{Seconds: math.MaxInt64}))), Code: inv, Field: "spec.data.training_set.cutoff.fixed_time"},
			{Name: "bad nanos", Requests: one(good(cutoff(&timestamppb.Timestamp{Seconds: 1, Nanos: -5}))), Code: inv, Field: "spec.data.training_set.cutoff.fixed_time"},
			{Name: "negative timeout", Requests: one(good(func(s *trainingv1.TrainingSpec) {
				s.Resources = &trainingv1.ResourceLimits{Timeout: durationpb.New(-time.Hour)}
			})), Code: inv, Field: "spec.resources.timeout"},
			{Name: "NaN threshold", Requests: one(good(func(s *trainingv1.TrainingSpec) {
				s.Evaluation = &trainingv1.EvaluationOptions{Threshold: math.NaN()}
			})), Code: inv, Field: "spec.evaluation.threshold"},
			{Name: "bad scaling enum", Requests: one(good(func(s *trainingv1.TrainingSpec) { s.Preprocessing.Scaling = 42 })), Code: inv, Field: "spec.preprocessing.scaling"},
		},
		trainingPrefix + "GetJob": {
			{Name: "empty", Requests: one(&trainingv1.GetJobRequest{}), Code: inv, Field: "job_id"},
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "1 MiB job id", Requests: one(&trainingv1.GetJobRequest{JobId: hostile.MB1}), Code: inv, Field: "job_id"},
			{Name: "10 kB job id", Requests: one(&trainingv1.GetJobRequest{JobId: hostile.KB10}), Code: inv, Field: "job_id"},
			{Name: "invalid UTF-8 job id", Requests: one(&trainingv1.GetJobRequest{JobId: hostile.InvalidUTF8}), Code: inv, Field: "job_id"},
			{Name: "control character", Requests: one(&trainingv1.GetJobRequest{JobId: "job\x00"}), Code: inv, Field: "job_id"},
			{Name: "bad view enum", Requests: one(&trainingv1.GetJobRequest{JobId: unknownJob, View: 99}), Code: inv, Field: "view"},
			{Name: "unknown", Requests: one(&trainingv1.GetJobRequest{JobId: unknownJob}), Code: codes.NotFound},
		},
		trainingPrefix + "WatchJob": {
			{Name: "empty", Requests: one(&trainingv1.WatchJobRequest{}), Code: inv, Field: "job_id"},
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "1 MiB job id", Requests: one(&trainingv1.WatchJobRequest{JobId: hostile.MB1}), Code: inv, Field: "job_id"},
			{Name: "invalid UTF-8 job id", Requests: one(&trainingv1.WatchJobRequest{JobId: hostile.InvalidUTF8}), Code: inv, Field: "job_id"},
			{Name: "unknown", Requests: one(&trainingv1.WatchJobRequest{JobId: unknownJob}), Code: codes.NotFound},
		},
		trainingPrefix + "CancelJob": {
			{Name: "empty", Requests: one(&trainingv1.CancelJobRequest{}), Code: inv, Field: "job_id"},
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "1 MiB job id", Requests: one(&trainingv1.CancelJobRequest{JobId: hostile.MB1}), Code: inv, Field: "job_id"},
			{Name: "invalid UTF-8 job id", Requests: one(&trainingv1.CancelJobRequest{JobId: hostile.InvalidUTF8}), Code: inv, Field: "job_id"},
			{Name: "10 kB reason", Requests: one(&trainingv1.CancelJobRequest{JobId: unknownJob, Reason: hostile.KB10}), Code: inv, Field: "reason"},
			{Name: "1 MiB reason", Requests: one(&trainingv1.CancelJobRequest{JobId: unknownJob, Reason: hostile.MB1}), Code: inv, Field: "reason"},
			{Name: "invalid UTF-8 reason", Requests: one(&trainingv1.CancelJobRequest{JobId: unknownJob, Reason: hostile.InvalidUTF8}), Code: inv, Field: "reason"},
			{Name: "unknown", Requests: one(&trainingv1.CancelJobRequest{JobId: unknownJob}), Code: codes.NotFound},
		},
		trainingPrefix + "ListJobs": {
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "bogus page token", Requests: one(&trainingv1.ListJobsRequest{PageToken: "bogus"}), Code: inv, Field: "page_token"},
			{Name: "job id as page token", Requests: one(&trainingv1.ListJobsRequest{PageToken: unknownJob}), Code: inv, Field: "page_token"},
			{Name: "1 MiB page token", Requests: one(&trainingv1.ListJobsRequest{PageToken: hostile.MB1}), Code: inv, Field: "page_token"},
			{Name: "invalid UTF-8 page token", Requests: one(&trainingv1.ListJobsRequest{PageToken: hostile.InvalidUTF8}), Code: inv, Field: "page_token"},
			{Name: "negative page size", Requests: one(&trainingv1.ListJobsRequest{PageSize: -1}), Code: inv, Field: "page_size"},
			{Name: "huge page size", Requests: one(&trainingv1.ListJobsRequest{PageSize: math.MaxInt32}), Code: inv, Field: "page_size"},
			{Name: "bad state enum", Requests: one(&trainingv1.ListJobsRequest{States: []trainingv1.JobState{77}}), Code: inv, Field: "states[0]"},
			{Name: "10,001 states", Requests: one(&trainingv1.ListJobsRequest{States: states}), Code: inv, Field: "states"},
			{Name: "1 MiB model name", Requests: one(&trainingv1.ListJobsRequest{ModelName: hostile.MB1}), Code: inv, Field: "model_name"},
			{Name: "invalid UTF-8 model name", Requests: one(&trainingv1.ListJobsRequest{ModelName: hostile.InvalidUTF8}), Code: inv, Field: "model_name"},
			{Name: "bad view enum", Requests: one(&trainingv1.ListJobsRequest{View: -3}), Code: inv, Field: "view"},
		},
		trainingPrefix + "ListModels": {
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "bogus page token", Requests: one(&trainingv1.ListModelsRequest{PageToken: "bogus"}), Code: inv, Field: "page_token"},
			{Name: "1 MiB page token", Requests: one(&trainingv1.ListModelsRequest{PageToken: hostile.MB1}), Code: inv, Field: "page_token"},
			{Name: "invalid UTF-8 page token", Requests: one(&trainingv1.ListModelsRequest{PageToken: hostile.InvalidUTF8}), Code: inv, Field: "page_token"},
			{Name: "negative page size", Requests: one(&trainingv1.ListModelsRequest{PageSize: -1}), Code: inv, Field: "page_size"},
			{Name: "1 MiB prefix", Requests: one(&trainingv1.ListModelsRequest{NamePrefix: hostile.MB1}), Code: inv, Field: "name_prefix"},
			{Name: "invalid UTF-8 prefix", Requests: one(&trainingv1.ListModelsRequest{NamePrefix: hostile.InvalidUTF8}), Code: inv, Field: "name_prefix"},
		},
		trainingPrefix + "GetModel": {
			{Name: "empty", Requests: one(&trainingv1.GetModelRequest{}), Code: inv, Field: "model.name"},
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "1 MiB name", Requests: one(&trainingv1.GetModelRequest{Model: model(hostile.MB1)}), Code: inv, Field: "model.name"},
			{Name: "invalid UTF-8 name", Requests: one(&trainingv1.GetModelRequest{Model: model(hostile.InvalidUTF8)}), Code: inv, Field: "model.name"},
			{Name: "1 MiB alias", Requests: one(&trainingv1.GetModelRequest{Model: alias(hostile.MB1)}), Code: inv, Field: "model.alias"},
			{Name: "invalid UTF-8 alias", Requests: one(&trainingv1.GetModelRequest{Model: alias(hostile.InvalidUTF8)}), Code: inv, Field: "model.alias"},
			{Name: "empty alias", Requests: one(&trainingv1.GetModelRequest{Model: alias("")}), Code: inv, Field: "model.alias"},
			{Name: "negative version", Requests: one(&trainingv1.GetModelRequest{Model: &commonv1.ModelRef{Name: hostileModel, Selector: &commonv1.ModelRef_Version{Version: -1}}}), Code: inv, Field: "model.version"},
			{Name: "unknown model", Requests: one(&trainingv1.GetModelRequest{Model: model("nope")}), Code: codes.NotFound},
			{Name: "unknown alias", Requests: one(&trainingv1.GetModelRequest{Model: alias("nope")}), Code: codes.NotFound},
		},
		trainingPrefix + "Evaluate": {
			{Name: "empty", Requests: one(&trainingv1.EvaluateRequest{}), Code: inv, Field: "model.name"},
			{Name: "no rows", Requests: one(&trainingv1.EvaluateRequest{Model: model(hostileModel)}), Code: inv, Field: "rows"},
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "1 MiB name", Requests: one(&trainingv1.EvaluateRequest{Model: model(hostile.MB1), Rows: []*trainingv1.EvaluationRow{aRow}}), Code: inv, Field: "model.name"},
			{Name: "invalid UTF-8 alias", Requests: one(&trainingv1.EvaluateRequest{Model: alias(hostile.InvalidUTF8), Rows: []*trainingv1.EvaluationRow{aRow}}), Code: inv, Field: "model.alias"},
			{Name: "invalid UTF-8 entity id", Requests: one(evalRows(aRow, row(hostile.InvalidUTF8, nil))), Code: inv, Field: "rows[1].entity_id"},
			{Name: "1 MiB entity id", Requests: one(evalRows(row(hostile.MB1, nil))), Code: inv, Field: "rows[0].entity_id"},
			{Name: "1 MiB feature name", Requests: one(evalRows(row("a", map[string]*commonv1.Value{hostile.MB1: num(1)}))), Code: inv, Field: "rows[0].features key"},
			{Name: "invalid UTF-8 feature value", Requests: one(evalRows(row("a", map[string]*commonv1.Value{"job": str(hostile.InvalidUTF8)}))), Code: inv, Field: "rows[0].features"},
			{Name: "NaN threshold", Requests: one(evalOpts(&trainingv1.EvaluationOptions{Threshold: math.NaN()})), Code: inv, Field: "options.threshold"},
			{Name: "Inf threshold", Requests: one(evalOpts(&trainingv1.EvaluationOptions{Threshold: math.Inf(-1)})), Code: inv, Field: "options.threshold"},
			{Name: "10,001 ranking k", Requests: one(evalOpts(&trainingv1.EvaluationOptions{RankingK: ks})), Code: inv, Field: "options.ranking_k"},
			{Name: "bad partition enum", Requests: one(&trainingv1.EvaluateRequest{Model: model(hostileModel), Rows: []*trainingv1.EvaluationRow{aRow}, Partition: 9}), Code: inv, Field: "partition"},
			{Name: "rows and data", Requests: one(&trainingv1.EvaluateRequest{Model: model(hostileModel), Rows: []*trainingv1.EvaluationRow{aRow},
				Data: &trainingv1.DataSpec{Source: &trainingv1.DataSpec_TrainingSet{TrainingSet: bankTrainingSet()}}}), Code: inv, Field: "rows"},
			{Name: "unknown model", Requests: one(&trainingv1.EvaluateRequest{Model: model("nope"), Rows: []*trainingv1.EvaluationRow{aRow}}), Code: codes.NotFound},
		},
		trainingPrefix + "PromoteModel": {
			{Name: "empty", Requests: one(&trainingv1.PromoteModelRequest{}), Code: inv, Field: "model_name"},
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "1 MiB name", Requests: one(promote(func(r *trainingv1.PromoteModelRequest) { r.ModelName = hostile.MB1 })), Code: inv, Field: "model_name"},
			{Name: "invalid UTF-8 name", Requests: one(promote(func(r *trainingv1.PromoteModelRequest) { r.ModelName = hostile.InvalidUTF8 })), Code: inv, Field: "model_name"},
			{Name: "1 MiB alias", Requests: one(promote(func(r *trainingv1.PromoteModelRequest) { r.SetAliases = map[string]int64{hostile.MB1: 1} })), Code: inv, Field: "set_aliases key"},
			{Name: "10 kB alias", Requests: one(promote(func(r *trainingv1.PromoteModelRequest) { r.SetAliases = map[string]int64{hostile.KB10: 1} })), Code: inv, Field: "set_aliases"},
			{Name: "invalid UTF-8 alias", Requests: one(promote(func(r *trainingv1.PromoteModelRequest) { r.SetAliases = map[string]int64{hostile.InvalidUTF8: 1} })), Code: inv, Field: "set_aliases key"},
			{Name: "1 MiB removed alias", Requests: one(promote(func(r *trainingv1.PromoteModelRequest) { r.RemoveAliases = []string{hostile.MB1} })), Code: inv, Field: "remove_aliases[0]"},
			{Name: "10,001 removed aliases", Requests: one(promote(func(r *trainingv1.PromoteModelRequest) { r.RemoveAliases = strs(10001, "a") })), Code: inv, Field: "remove_aliases"},
			{Name: "10 kB reason", Requests: one(promote(func(r *trainingv1.PromoteModelRequest) { r.Reason = hostile.KB10 })), Code: inv, Field: "reason"},
			{Name: "1 MiB reason", Requests: one(promote(func(r *trainingv1.PromoteModelRequest) { r.Reason = hostile.MB1 })), Code: inv, Field: "reason"},
			{Name: "invalid UTF-8 reason", Requests: one(promote(func(r *trainingv1.PromoteModelRequest) { r.Reason = hostile.InvalidUTF8 })), Code: inv, Field: "reason"},
			{Name: "1 MiB gate metric", Requests: one(promote(func(r *trainingv1.PromoteModelRequest) { r.GateMetric = hostile.MB1 })), Code: inv, Field: "gate_metric"},
			{Name: "invalid UTF-8 gate metric", Requests: one(promote(func(r *trainingv1.PromoteModelRequest) { r.GateMetric = hostile.InvalidUTF8 })), Code: inv, Field: "gate_metric"},
			{Name: "10,001 live versions", Requests: one(promote(func(r *trainingv1.PromoteModelRequest) {
				r.Live = &modelv1.TrafficSplit{}
				for range 10001 {
					r.Live.Versions = append(r.Live.Versions, &modelv1.VersionWeight{Version: 1, Weight: 1})
				}
			})), Code: inv, Field: "live.versions"},
			{Name: "unknown model", Requests: one(promote(func(r *trainingv1.PromoteModelRequest) { r.ModelName = "nope" })), Code: codes.NotFound},
		},
		trainingPrefix + "ImportModel": {
			{Name: "empty", Requests: one(&trainingv1.ImportModelRequest{}), Code: inv, Field: "header"},
			{Name: "no message", Code: inv, Field: "header"},
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "1 MiB name", Requests: []proto.Message{imp(func(h *trainingv1.ImportModelHeader) { h.ModelName = hostile.MB1 }), tinyChunk}, Code: inv, Field: "header.model_name"},
			{Name: "invalid UTF-8 name", Requests: []proto.Message{imp(func(h *trainingv1.ImportModelHeader) { h.ModelName = hostile.InvalidUTF8 }), tinyChunk}, Code: inv, Field: "header.model_name"},
			{Name: "10 kB name", Requests: []proto.Message{imp(func(h *trainingv1.ImportModelHeader) { h.ModelName = hostile.KB10 }), tinyChunk}, Code: inv, Field: "header.model_name"},
			{Name: "1 MiB description", Requests: []proto.Message{imp(func(h *trainingv1.ImportModelHeader) { h.Description = hostile.MB1 }), tinyChunk}, Code: inv, Field: "header.description"},
			{Name: "invalid UTF-8 model feature", Requests: []proto.Message{imp(func(h *trainingv1.ImportModelHeader) {
				h.InputSignature.Features[0].ModelFeature = hostile.InvalidUTF8
			}), tinyChunk}, Code: inv, Field: "header.input_signature.features[0].model_feature"},
			{Name: "1 MiB column", Requests: []proto.Message{imp(func(h *trainingv1.ImportModelHeader) {
				h.InputSignature.Features[1].Column.Name = hostile.MB1
			}), tinyChunk}, Code: inv, Field: "header.input_signature.features[1].column.name"},
			{Name: "1 MiB category", Requests: []proto.Message{imp(func(h *trainingv1.ImportModelHeader) {
				h.InputSignature.Features[1].Categories[0] = hostile.MB1
			}), tinyChunk}, Code: inv, Field: "header.input_signature.features[1].categories[0]"},
			{Name: "10,001 categories", Requests: []proto.Message{imp(func(h *trainingv1.ImportModelHeader) {
				h.InputSignature.Features[1].Categories = strs(10001, "a")
			}), tinyChunk}, Code: inv, Field: "header.input_signature.features[1].categories"},
			{Name: "10 kB feature set", Requests: []proto.Message{imp(func(h *trainingv1.ImportModelHeader) { h.InputSignature.FeatureSet = hostile.KB10 }), tinyChunk},
				Code: inv, Field: "header.input_signature.feature_set"},
			{Name: "control character in the feature set", Requests: []proto.Message{imp(func(h *trainingv1.ImportModelHeader) { h.InputSignature.FeatureSet = "bank\x00" }), tinyChunk},
				Code: inv, Field: "header.input_signature.feature_set"},
			{Name: "bad type enum", Requests: []proto.Message{imp(func(h *trainingv1.ImportModelHeader) { h.InputSignature.Features[0].Column.Type = 99 }), tinyChunk},
				Code: inv, Field: "header.input_signature.features[0].column.type"},
			{Name: "bad missing policy enum", Requests: []proto.Message{imp(func(h *trainingv1.ImportModelHeader) { h.InputSignature.Features[0].Column.Missing = -2 }), tinyChunk},
				Code: inv, Field: "header.input_signature.features[0].column.missing"},
			{Name: "bad task enum", Requests: []proto.Message{imp(func(h *trainingv1.ImportModelHeader) { h.Task = 42 }), tinyChunk}, Code: inv, Field: "header.task"},
			{Name: "NaN threshold", Requests: []proto.Message{imp(func(h *trainingv1.ImportModelHeader) {
				h.Classification = &modelv1.ClassificationOutput{Threshold: math.NaN()}
			}), tinyChunk}, Code: inv, Field: "header.classification.threshold"},
			{Name: "negative size", Requests: []proto.Message{imp(func(h *trainingv1.ImportModelHeader) { h.SizeBytes = -1 }), tinyChunk}, Code: inv, Field: "header.size_bytes"},
			{Name: "huge size", Requests: []proto.Message{imp(func(h *trainingv1.ImportModelHeader) { h.SizeBytes = math.MaxInt64 }), tinyChunk}, Code: inv, Field: "header.size_bytes"},
			{Name: "10 kB label", Requests: []proto.Message{imp(func(h *trainingv1.ImportModelHeader) { h.Labels = map[string]string{"k": hostile.KB10} }), tinyChunk},
				Code: inv, Field: `header.labels["k"]`},
			{Name: "chunk first", Requests: []proto.Message{tinyChunk, imp(func(*trainingv1.ImportModelHeader) {})}, Code: inv, Field: "chunk"},
			{Name: "header twice", Requests: []proto.Message{imp(func(*trainingv1.ImportModelHeader) {}), imp(func(*trainingv1.ImportModelHeader) {})}, Code: inv, Field: "header"},
			{Name: "1 MiB of garbage", Requests: []proto.Message{imp(func(*trainingv1.ImportModelHeader) {}), chunk([]byte(hostile.MB1))}, Code: inv, Field: "chunk"},
			{Name: "invalid UTF-8 in the file", Requests: []proto.Message{imp(func(*trainingv1.ImportModelHeader) {}), chunk([]byte(`{"learner": "` + hostile.InvalidUTF8 + `"}`))},
				Code: inv, Field: "chunk"},
			{Name: "unknown feature set", Requests: []proto.Message{imp(func(h *trainingv1.ImportModelHeader) { h.InputSignature.FeatureSet = "nope" }), tinyChunk}, Code: codes.NotFound},
		},
	}
}

// TestHostileInputs sends every public RPC of the training service its table of bad inputs
// over the wire, each answered with its code and the field at fault, and proves after each
// method's cases that the service still lists, reads and scores the model it trained. No
// error message or log line repeats a long bad value.
func TestHostileInputs(t *testing.T) {
	e := newEnv(t, bankSmall)
	tr := e.startTraining("trainer-a")
	s := bankSpec(hostileModel, false, logisticC(1))
	s.CrossValidation = &trainingv1.CrossValidationSpec{Folds: proto.Int32(0)}
	job := finished(t, tr.client, start(t, tr.client, "hostile-model", s).GetJobId(), time.Minute)
	succeeded(t, job)

	table := hostileTable()
	hostile.Cover(t, table, &trainingv1.TrainingService_ServiceDesc)
	calls := hostile.Run(t, tr.conn, hostile.Streams(&trainingv1.TrainingService_ServiceDesc), table, func(t *testing.T) {
		hostileCanary(t, tr.client, job)
	})
	t.Logf("%d hostile calls", calls)
	if logs := tr.logs.String(); strings.Contains(logs, hostile.KB10[:1000]) || strings.Contains(logs, hostile.MB1[:1000]) {
		t.Error("the logs repeat a long bad value")
	}
	if logs := tr.logs.String(); strings.Contains(logs, "Failed to marshal") {
		t.Error("a status could not be sent")
	}
}

// hostileCanary lists the jobs and reads the suite's job, lists its model and scores a row.
func hostileCanary(t *testing.T, c trainingv1.TrainingServiceClient, job *trainingv1.Job) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := c.ListJobs(ctx, &trainingv1.ListJobsRequest{ModelName: hostileModel})
	if err != nil || len(list.GetJobs()) != 1 || list.GetJobs()[0].GetJobId() != job.GetJobId() {
		t.Fatalf("canary ListJobs: %v, %v", list.GetJobs(), err)
	}
	if _, err := c.GetJob(ctx, &trainingv1.GetJobRequest{JobId: job.GetJobId()}); err != nil {
		t.Fatalf("canary GetJob: %v", err)
	}
	models, err := c.ListModels(ctx, &trainingv1.ListModelsRequest{NamePrefix: "bank-"})
	if err != nil || len(models.GetModels()) != 1 {
		t.Fatalf("canary ListModels: %v, %v", models.GetModels(), err)
	}
	resp, err := c.Evaluate(ctx, &trainingv1.EvaluateRequest{Model: &commonv1.ModelRef{Name: hostileModel, Selector: &commonv1.ModelRef_Version{Version: job.GetModelVersion()}},
		Rows: []*trainingv1.EvaluationRow{{EntityId: "a", Features: map[string]*commonv1.Value{"age": num(40), "job": str("admin.")}}}})
	if err != nil || len(resp.GetScores()) != 1 {
		t.Fatalf("canary Evaluate: %v, %v", resp.GetScores(), err)
	}
}

// TestListPages walks the jobs and the models one by one with the tokens the server gives:
// every one is seen once, and a token of one list is refused by the other.
func TestListPages(t *testing.T) {
	e := newEnv(t, bankSmall)
	tr := e.startTraining("trainer-a")
	ctx := context.Background()
	want := map[string]bool{}
	for _, name := range []string{"bank-page-a", "bank-page-b", "bank-page-c"} {
		s := bankSpec(name, false, logisticC(1))
		s.CrossValidation = &trainingv1.CrossValidationSpec{Folds: proto.Int32(0)}
		job := finished(t, tr.client, start(t, tr.client, name, s).GetJobId(), time.Minute)
		succeeded(t, job)
		want[job.GetJobId()] = true
	}
	seen, tok, jobTok := map[string]bool{}, "", ""
	for range 10 {
		resp, err := tr.client.ListJobs(ctx, &trainingv1.ListJobsRequest{PageSize: 1, PageToken: tok})
		if err != nil {
			t.Fatalf("ListJobs page %d: %v", len(seen), err)
		}
		for _, j := range resp.GetJobs() {
			if seen[j.GetJobId()] {
				t.Errorf("job %s listed twice", j.GetJobId())
			}
			seen[j.GetJobId()] = true
		}
		if tok = resp.GetNextPageToken(); tok == "" {
			break
		}
		jobTok = tok
	}
	if len(seen) != len(want) {
		t.Errorf("listed %v, want %v", seen, want)
	}
	models, tok := 0, ""
	for range 10 {
		resp, err := tr.client.ListModels(ctx, &trainingv1.ListModelsRequest{PageSize: 1, PageToken: tok, NamePrefix: "bank-page-"})
		if err != nil {
			t.Fatalf("ListModels page %d: %v", models, err)
		}
		models += len(resp.GetModels())
		if tok = resp.GetNextPageToken(); tok == "" {
			break
		}
		if _, err := tr.client.ListJobs(ctx, &trainingv1.ListJobsRequest{PageToken: tok}); codeOf(err) != codes.InvalidArgument {
			t.Errorf("ListJobs with a token of ListModels: %v, want INVALID_ARGUMENT", err)
		}
	}
	if models != 3 {
		t.Errorf("listed %d models, want 3", models)
	}
	if _, err := tr.client.ListModels(ctx, &trainingv1.ListModelsRequest{PageToken: jobTok}); codeOf(err) != codes.InvalidArgument {
		t.Errorf("ListModels with a token of ListJobs: %v, want INVALID_ARGUMENT", err)
	}
}
