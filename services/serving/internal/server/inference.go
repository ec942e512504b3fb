package server

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/pkg/gen/inference"
	"github.com/bullseye-ml/bullseye/pkg/registry"
	"github.com/bullseye-ml/bullseye/services/serving/internal/oip"
	"github.com/bullseye-ml/bullseye/services/serving/internal/scoring"
)

// inferenceServer answers the Open Inference Protocol v2.
type inferenceServer struct {
	inference.UnimplementedGRPCInferenceServiceServer
	s *Server
}

// ServerLive implements GRPCInferenceService.ServerLive: the process answers.
func (is *inferenceServer) ServerLive(ctx context.Context, _ *inference.ServerLiveRequest) (*inference.ServerLiveResponse, error) {
	return &inference.ServerLiveResponse{Live: true}, nil
}

// ServerReady implements GRPCInferenceService.ServerReady: the instance is ready (the models
// live at start are loaded and the feature service answers).
func (is *inferenceServer) ServerReady(ctx context.Context, _ *inference.ServerReadyRequest) (*inference.ServerReadyResponse, error) {
	return &inference.ServerReadyResponse{Ready: is.s.ready()}, nil
}

// ModelReady implements GRPCInferenceService.ModelReady.
func (is *inferenceServer) ModelReady(ctx context.Context, req *inference.ModelReadyRequest) (*inference.ModelReadyResponse, error) {
	var c fault.Violations
	c.CheckName("name", req.GetName())
	c.CheckString("version", req.GetVersion(), fault.MaxNameBytes, false)
	if err := c.Err(); err != nil {
		return nil, statuses.Status(ctx, is.s.logger, "ModelReady", err)
	}
	return &inference.ModelReadyResponse{Ready: is.s.store.ModelReady(req.GetName(), req.GetVersion())}, nil
}

// ServerMetadata implements GRPCInferenceService.ServerMetadata.
func (is *inferenceServer) ServerMetadata(ctx context.Context, _ *inference.ServerMetadataRequest) (*inference.ServerMetadataResponse, error) {
	return &inference.ServerMetadataResponse{Name: "bullseye", Version: is.s.version, Extensions: []string{}}, nil
}

// ModelMetadata implements GRPCInferenceService.ModelMetadata: the versions held and the
// tensors of the selected version (the live one with the largest share by default).
func (is *inferenceServer) ModelMetadata(ctx context.Context, req *inference.ModelMetadataRequest) (*inference.ModelMetadataResponse, error) {
	var c fault.Violations
	c.CheckName("name", req.GetName())
	c.CheckString("version", req.GetVersion(), fault.MaxNameBytes, false)
	if err := c.Err(); err != nil {
		return nil, statuses.Status(ctx, is.s.logger, "ModelMetadata", err)
	}
	lease, err := is.s.store.Acquire(registry.RefOf(req.GetName(), req.GetVersion()))
	if err != nil {
		return nil, statuses.Status(ctx, is.s.logger, "ModelMetadata", err)
	}
	defer lease.Release()
	m := lease.Top()
	resp := &inference.ModelMetadataResponse{
		Name:     m.Name,
		Platform: "bullseye",
		Inputs:   oip.InputMetadata(m.Inputs),
		Outputs:  oip.OutputMetadata(m),
	}
	if st, err := is.s.store.Status(registry.RefOf(req.GetName(), "")); err == nil {
		// Oldest first.
		vs := st.GetVersions()
		for i := len(vs) - 1; i >= 0; i-- {
			if vs[i].GetState() == servingv1.ModelState_MODEL_STATE_AVAILABLE {
				resp.Versions = append(resp.Versions, strconv.FormatInt(vs[i].GetVersion(), 10))
			}
		}
	}
	return resp, nil
}

// ModelInfer implements GRPCInferenceService.ModelInfer through the same core as Predict.
// Rows carry inline features only: there is no customer id, so no lookup and no consent check.
func (is *inferenceServer) ModelInfer(ctx context.Context, req *inference.ModelInferRequest) (*inference.ModelInferResponse, error) {
	start := time.Now()
	label := ""
	resp, err := is.infer(ctx, req, &label)
	err = statuses.Status(ctx, is.s.logger, "ModelInfer", err)
	is.s.metrics.observe(label, "ModelInfer", err, start)
	return resp, err
}

func (is *inferenceServer) infer(ctx context.Context, req *inference.ModelInferRequest, label *string) (*inference.ModelInferResponse, error) {
	if err := checkInferDoor(req); err != nil {
		return nil, err
	}
	lease, err := is.s.store.Acquire(registry.RefOf(req.GetModelName(), req.GetModelVersion()))
	if err != nil {
		return nil, err
	}
	*label = req.GetModelName()
	m := lease.Top()
	if m.Recommender() {
		lease.Release()
		return nil, fault.Invalid("model_name", "model %q is a recommender; ModelInfer takes feature models (use Recommend)", m.Name)
	}
	rows, err := oip.Decode(req, m)
	if err != nil {
		lease.Release()
		return nil, err
	}
	out := make([]scoring.Outcome, len(rows))
	f := fanout{groups: []*group{{m: m, idx: make([]int, len(rows))}}}
	for i := range rows {
		f.groups[0].idx[i] = i
	}
	fl, err := dispatch(ctx, lease, &f, out, func(*scoring.Model, []int) []scoring.Row { return rows }, nil)
	if err != nil {
		fl.abandon()
		return nil, err
	}
	if err := fl.wait(ctx); err != nil {
		return nil, err
	}
	if bad := rowViolations(req, out); len(bad) > 0 {
		return nil, bad
	}
	var names []string
	for _, o := range req.GetOutputs() {
		names = append(names, o.GetName())
	}
	tensors, raws, err := oip.Encode(m, out, names, len(req.GetRawInputContents()) > 0)
	if err != nil {
		return nil, err
	}
	resp := &inference.ModelInferResponse{
		ModelName:         m.Name,
		ModelVersion:      strconv.FormatInt(m.Version, 10),
		Id:                req.GetId(),
		Outputs:           tensors,
		RawOutputContents: raws,
	}
	if imputed := imputedInputs(m, out); imputed != "" {
		resp.Parameters = map[string]*inference.InferParameter{
			oip.ParameterImputedInputs: {ParameterChoice: &inference.InferParameter_StringParam{StringParam: imputed}},
		}
	}
	return resp, nil
}

// imputedInputs names, comma-separated in the model's input order, the inputs some row was
// missing and the model imputed; "" when none was.
func imputedInputs(m *scoring.Model, out []scoring.Outcome) string {
	seen := map[string]bool{}
	for _, o := range out {
		for _, name := range o.Imputed {
			seen[name] = true
		}
	}
	if len(seen) == 0 {
		return ""
	}
	var names []string
	for _, in := range m.Inputs {
		if seen[in.GetName()] {
			names = append(names, in.GetName())
		}
	}
	return strings.Join(names, ",")
}

// checkInferDoor checks the strings of an inference request that become lookups or are echoed
// against the shared bounds, before anything else is done with them.
func checkInferDoor(req *inference.ModelInferRequest) error {
	var c fault.Violations
	c.CheckName("model_name", req.GetModelName())
	c.CheckString("model_version", req.GetModelVersion(), fault.MaxNameBytes, false)
	c.CheckString("id", req.GetId(), fault.MaxIDBytes, false)
	checkParameters(&c, "parameters", req.GetParameters())
	if c.CheckLen("inputs", len(req.GetInputs()), fault.MaxListLen) {
		for i, in := range req.GetInputs() {
			field := "inputs[" + strconv.Itoa(i) + "]"
			c.CheckName(field+".name", in.GetName())
			c.CheckName(field+".datatype", in.GetDatatype())
			checkParameters(&c, field+".parameters", in.GetParameters())
		}
	}
	if c.CheckLen("outputs", len(req.GetOutputs()), fault.MaxListLen) {
		for i, o := range req.GetOutputs() {
			field := "outputs[" + strconv.Itoa(i) + "]"
			c.CheckName(field+".name", o.GetName())
			checkParameters(&c, field+".parameters", o.GetParameters())
		}
	}
	return c.Err()
}

// checkParameters checks a map of inference parameters: at most fault.MaxListLen of them, each
// key a name under the shared bounds and each string value text under them (fault.MaxTextBytes).
func checkParameters(c *fault.Violations, field string, ps map[string]*inference.InferParameter) {
	if len(ps) == 0 || !c.CheckLen(field, len(ps), fault.MaxListLen) {
		return
	}
	for k, p := range ps {
		if !fault.ValidName(k) {
			c.CheckName(field+" key "+fault.Quote(k), k)
			continue
		}
		if s, ok := p.GetParameterChoice().(*inference.InferParameter_StringParam); ok {
			c.CheckString(field+"["+k+"]", s.StringParam, fault.MaxTextBytes, false)
		}
	}
}

// rowViolations returns the violations of the rows that could not be scored: one per input
// and reason, naming the input's tensor (or "inputs" for one not given), the first such row
// and how many rows share it.
func rowViolations(req *inference.ModelInferRequest, out []scoring.Outcome) fault.Violations {
	type key struct{ field, reason string }
	var bad fault.Violations
	first := map[key]int{}
	rows := map[key]int{}
	for i, o := range out {
		if o.Status == scoring.StatusOK {
			continue
		}
		field := "inputs"
		name := strings.TrimPrefix(o.Problem.GetField(), "features.")
		for j, in := range req.GetInputs() {
			if in.GetName() == name {
				field = fmt.Sprintf("inputs[%d]", j)
			}
		}
		k := key{field, o.Problem.GetReason()}
		rows[k]++
		if _, ok := first[k]; ok {
			continue
		}
		first[k] = len(bad)
		bad = append(bad, fault.Violation{Field: field, Description: fmt.Sprintf("row %d: %s", i, o.Problem.GetDescription())})
	}
	for k, at := range first {
		if n := rows[k]; n > 1 {
			bad[at].Description += fmt.Sprintf(" (and %d more rows)", n-1)
		}
	}
	return bad
}
