// Package modelimport reads what TrainingService.ImportModel takes: a stream of a header and
// the chunks of a model file fitted elsewhere, the file in its format, and the input
// signature that maps the model's features to the columns of a feature set, checked against
// both. It builds the version and the artifact to register; it registers nothing itself.
//
// Every mistake is a fault.Violations naming the field at fault under "header" (the mapping's
// as "header.input_signature.features[3].column.name"), or "chunk" for the file's content.
package modelimport

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/gbt"
	"github.com/bullseye-ml/bullseye/pkg/registry"
	"github.com/bullseye-ml/bullseye/pkg/values"
	"github.com/bullseye-ml/bullseye/services/training/internal/spec"
)

// DefaultMaxBytes is the default limit of an imported file's size: 256 MiB.
const DefaultMaxBytes = 256 << 20

// FormatXGBoostJSON is the ImportedFrom.format of XGBoost's JSON models.
const FormatXGBoostJSON = "xgboost-json"

const (
	maxDescription = 16 << 10 // as TrainingSpec.description
	maxHeaderBytes = 512 << 10
	signatureField = "header.input_signature"
	featuresField  = signatureField + ".features"
)

// Recv receives the next message of an ImportModel stream, io.EOF after the half-close.
type Recv func() (*trainingv1.ImportModelRequest, error)

// ReadHeader receives the stream's first message, which must be a header.
func ReadHeader(recv Recv) (*trainingv1.ImportModelHeader, error) {
	msg, err := recv()
	switch {
	case errors.Is(err, io.EOF):
		return nil, fault.Invalid("header", "required: the stream ended before its first message, the header")
	case err != nil:
		return nil, fault.Transport(err)
	}
	switch k := msg.GetKind().(type) {
	case *trainingv1.ImportModelRequest_Header:
		return k.Header, nil
	case *trainingv1.ImportModelRequest_Chunk:
		return nil, fault.Invalid("chunk", "came before the header: the first message must be the header")
	}
	return nil, fault.Invalid("header", "required: the first message must be the header")
}

// ReadFile receives the file's chunks up to the half-close and returns the file. It fails when
// a message is not a chunk, when the file would pass maxBytes, and when the header gives a
// size the file does not have.
func ReadFile(recv Recv, h *trainingv1.ImportModelHeader, maxBytes int64) ([]byte, error) {
	var file bytes.Buffer
	for n := 2; ; n++ {
		msg, err := recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fault.Transport(err)
		}
		chunk, ok := msg.GetKind().(*trainingv1.ImportModelRequest_Chunk)
		if !ok {
			if msg.GetHeader() != nil {
				return nil, fault.Invalid("header", "sent again, in message %d: only the first message is the header", n)
			}
			return nil, fault.Invalid("chunk", "message %d carries neither a chunk nor a header", n)
		}
		if int64(file.Len())+int64(len(chunk.Chunk)) > maxBytes {
			return nil, fault.Invalid("chunk", "the file passes this server's limit of %s at message %d", size(maxBytes), n)
		}
		if want := h.GetSizeBytes(); want > 0 && int64(file.Len())+int64(len(chunk.Chunk)) > want {
			return nil, fault.Invalid("header.size_bytes", "the file is longer than the %d bytes the header gives", want)
		}
		file.Write(chunk.Chunk)
	}
	if want := h.GetSizeBytes(); want > 0 && int64(file.Len()) != want {
		return nil, fault.Invalid("header.size_bytes", "the stream ended after %d bytes of the %d the header gives", file.Len(), want)
	}
	if file.Len() == 0 {
		return nil, fault.Invalid("chunk", "required: the stream carried no bytes of the file")
	}
	return file.Bytes(), nil
}

// size writes a byte count for people.
func size(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// CheckHeader returns the mistakes a header shows on its own, before the file and the
// feature set are read: fields under "header".
func CheckHeader(h *trainingv1.ImportModelHeader, maxBytes int64) fault.Violations {
	var v fault.Violations
	if v.CheckMessage("header", h); len(v) > 0 {
		return v
	}
	if n := proto.Size(h); n > maxHeaderBytes {
		v.Add("header", "is %d bytes long; the limit is %d (the registered version records the input signature)", n, maxHeaderBytes)
		return v
	}
	if !registry.ValidName(h.GetModelName()) {
		v.Add("header.model_name", "required: must be 1 to 63 characters of [a-z0-9-], starting with a letter")
	}
	if id := h.GetRequestId(); id != "" && !spec.ValidRequestID(id) {
		v.Add("header.request_id", "1 to 128 characters of [A-Za-z0-9._:-], or empty")
	}
	if len(h.GetDescription()) > maxDescription {
		v.Add("header.description", "at most %d bytes", maxDescription)
	}
	switch h.GetTask() {
	case modelv1.TaskKind_TASK_KIND_UNSPECIFIED, modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION, modelv1.TaskKind_TASK_KIND_REGRESSION:
	default:
		v.Add("header.task", "%v: an imported model classifies (BINARY_CLASSIFICATION) or regresses (REGRESSION)", h.GetTask())
	}
	switch h.GetFormat().(type) {
	case *trainingv1.ImportModelHeader_XgboostJson:
	default:
		v.Add("header.format", "required: the file's format (xgboost_json)")
	}
	switch n := h.GetSizeBytes(); {
	case n < 0:
		v.Add("header.size_bytes", "must not be negative (0: not given)")
	case n > maxBytes:
		v.Add("header.size_bytes", "%d bytes pass this server's limit of %s", n, size(maxBytes))
	}
	checkClassification(&v, h)
	spec.ValidateLabels(&v, h.GetLabels(), "header.labels")
	checkSignature(&v, h.GetInputSignature())
	return v
}

func checkClassification(v *fault.Violations, h *trainingv1.ImportModelHeader) {
	c := h.GetClassification()
	if c == nil {
		return
	}
	const f = "header.classification"
	if h.GetTask() == modelv1.TaskKind_TASK_KIND_REGRESSION {
		v.Add(f, "binary classification only; the task is REGRESSION")
	}
	if th := c.GetThreshold(); math.IsNaN(th) || th < 0 || th >= 1 {
		v.Add(f+".threshold", "must be strictly between 0 and 1 (0 means 0.5)")
	}
	if (c.GetPositiveLabel() == nil) != (c.GetNegativeLabel() == nil) {
		v.Add(f, "give both labels, positive_label and negative_label, or neither")
	}
	for name, l := range map[string]*commonv1.Value{"positive_label": c.GetPositiveLabel(), "negative_label": c.GetNegativeLabel()} {
		if l != nil && l.GetKind() == nil {
			v.Add(f+"."+name, "has no value")
		}
	}
}

// checkSignature checks the mapping on its own: names present and each once, known enums.
func checkSignature(v *fault.Violations, s *modelv1.InputSignature) {
	if s == nil {
		v.Add(signatureField, "required: how the model's features read a feature set's columns")
		return
	}
	if v.CheckName(signatureField+".feature_set", s.GetFeatureSet()) && len(s.GetFeatureSet()) > 63 {
		v.Add(signatureField+".feature_set", "at most 63 bytes, as feature set names are")
	}
	if s.GetFeatureSetVersion() < 0 {
		v.Add(signatureField+".feature_set_version", "must be 1 or more, or 0 for the latest")
	}
	if len(s.GetFeatures()) == 0 {
		v.Add(featuresField, "required: one mapping per feature of the model")
	}
	features, columns := map[string]int{}, map[string]int{}
	for i, m := range s.GetFeatures() {
		if len(*v) > fault.MaxReported {
			return
		}
		f := fmt.Sprintf("%s[%d]", featuresField, i)
		switch name := m.GetModelFeature(); {
		case name == "":
			v.Add(f+".model_feature", "required: the feature's name in the model file")
		case seen(features, name, i):
			v.Add(f+".model_feature", "maps feature %s again: features[%d] maps it; each feature is mapped once", fault.Quote(name), features[name])
		}
		c := m.GetColumn()
		switch name := c.GetName(); {
		case name == "":
			v.Add(f+".column.name", "required: the feature set column the feature reads")
		case seen(columns, name, i):
			v.Add(f+".column.name", "column %s is read by features[%d] too: each column feeds one feature", fault.Quote(name), columns[name])
		}
		checkEnum(v, f+".column.type", c.GetType())
		checkEnum(v, f+".column.missing", c.GetMissing())
		cats := map[string]int{}
		for k, cat := range m.GetCategories() {
			switch {
			case cat == "":
				v.Add(fmt.Sprintf("%s.categories[%d]", f, k), "must not be empty: an empty value is a missing one")
			case seen(cats, cat, k):
				v.Add(fmt.Sprintf("%s.categories[%d]", f, k), "repeats categories[%d]: each category has one code", cats[cat])
			}
		}
	}
}

// seen reports whether name was recorded in first before, recording it at i otherwise.
func seen(first map[string]int, name string, i int) bool {
	if _, ok := first[name]; ok {
		return true
	}
	first[name] = i
	return false
}

func checkEnum(v *fault.Violations, field string, e protoreflect.Enum) {
	if e.Descriptor().Values().ByNumber(e.Number()) == nil {
		v.Add(field, "unknown value %d", e.Number())
	}
}

// use is how a model's splits test one of its features.
type use struct {
	categorical bool // declared categorical by the file, or tested by category by a split
	maxCode     int  // the largest category code a split tests; -1 for none
}

func uses(imp *gbt.Imported) []use {
	out := make([]use, imp.Features)
	for j := range out {
		out[j] = use{categorical: imp.FeatureCategorical[j], maxCode: -1}
	}
	for ti := range imp.Trees {
		t := &imp.Trees[ti]
		for ni := range t.Nodes {
			n := &t.Nodes[ni]
			if n.IsLeaf() || n.CatSet < 0 {
				continue
			}
			u := &out[n.Feature]
			u.categorical = true
			set := t.CatSets[n.CatSet]
			for w := len(set) - 1; w >= 0; w-- {
				if set[w] != 0 {
					u.maxCode = max(u.maxCode, 64*w+bits.Len64(set[w])-1)
					break
				}
			}
		}
	}
	return out
}

// Build reads the file in the header's format, checks the input signature against the model
// and the feature set fs (the version the signature names, resolved), and returns the
// version and the artifact to register: registry.Register fills in the number, the time and
// the artifact's location. codeVersion is the training service's, for the lineage.
func Build(h *trainingv1.ImportModelHeader, file []byte, fs *featurev1.FeatureSet, codeVersion string) (*modelv1.ModelVersion, *modelv1.ModelArtifact, error) {
	imp, err := gbt.ReadXGBoostJSON(bytes.NewReader(file))
	if err != nil {
		return nil, nil, fault.Invalid("chunk", "the file is not a model the xgboost_json format can score: %v", err)
	}
	var v fault.Violations
	task := modelv1.TaskKind_TASK_KIND_REGRESSION
	if imp.Objective == gbt.Logistic {
		task = modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION
	}
	if t := h.GetTask(); t != modelv1.TaskKind_TASK_KIND_UNSPECIFIED && t != task {
		v.Add("header.task", "%v, but the file's %v objective makes a %v model", t, imp.Objective, task)
	}
	if h.GetClassification() != nil && task != modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION {
		v.Add("header.classification", "binary classification only; the file's %v objective makes a %v model", imp.Objective, task)
	}
	inputs := mapInputs(&v, h.GetInputSignature(), imp, fs)
	if err := v.Err(); err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(file)
	a, err := artifact.EncodeImported(imp, task, inputs, &modelv1.ImportedFrom{
		Format: FormatXGBoostJSON, LibraryVersion: imp.Version, Sha256: hex.EncodeToString(sum[:]), FeatureNames: imp.FeatureNames,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the imported model: %w", err)
	}
	if task == modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION {
		a.Classification = classification(h.GetClassification())
	}
	sig := proto.Clone(h.GetInputSignature()).(*modelv1.InputSignature)
	sig.FeatureSetVersion = fs.GetVersion()
	data, err := anypb.New(sig)
	if err != nil {
		return nil, nil, fmt.Errorf("recording the input signature: %w", err)
	}
	a.Lineage = &modelv1.Lineage{
		FeatureSet:        fs.GetName(),
		FeatureSetVersion: fs.GetVersion(),
		Data:              data,
		CodeVersion:       codeVersion,
	}
	a.Solver = &modelv1.SolverReport{Converged: true}
	ts := &trainingv1.TrainingSpec{Task: task}
	metric, _ := spec.Metric(ts)
	mv := &modelv1.ModelVersion{
		ModelName:          h.GetModelName(),
		Family:             a.GetFamily(),
		Task:               task,
		SelectionMetric:    metric,
		SelectionDirection: spec.Direction(ts),
		Lineage:            a.GetLineage(),
		Inputs:             a.GetInputs(),
		Description:        h.GetDescription(),
		Labels:             h.GetLabels(),
		Converged:          true,
		Outputs:            a.GetOutputs(),
	}
	return mv, a, nil
}

// classification is the classification output of an imported classifier: the header's, with
// the labels true and false and the threshold 0.5 where it gives none.
func classification(c *modelv1.ClassificationOutput) *modelv1.ClassificationOutput {
	out := &modelv1.ClassificationOutput{
		PositiveLabel: &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: true}},
		NegativeLabel: &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: false}},
		Threshold:     spec.DefaultThreshold,
	}
	if c.GetPositiveLabel() != nil && c.GetNegativeLabel() != nil {
		out.PositiveLabel, out.NegativeLabel = c.GetPositiveLabel(), c.GetNegativeLabel()
	}
	if c.GetThreshold() > 0 {
		out.Threshold = c.GetThreshold()
	}
	return out
}

// mapInputs checks the signature against the model's features and the feature set's columns
// and returns the model's inputs in feature order.
func mapInputs(v *fault.Violations, sig *modelv1.InputSignature, imp *gbt.Imported, fs *featurev1.FeatureSet) []artifact.ImportedInput {
	feature := make(map[string]int, imp.Features)
	for j, name := range imp.FeatureNames {
		feature[name] = j
	}
	column := make(map[string]*featurev1.FeatureColumn, len(fs.GetColumns()))
	for _, c := range fs.GetColumns() {
		column[c.GetName()] = c
	}
	use := uses(imp)
	inputs := make([]artifact.ImportedInput, imp.Features)
	mapped := make([]bool, imp.Features)
	for i, m := range sig.GetFeatures() {
		f := fmt.Sprintf("%s[%d]", featuresField, i)
		j, ok := feature[m.GetModelFeature()]
		if !ok {
			v.Add(f+".model_feature", "the model has no feature %s; its features are %s", fault.Quote(m.GetModelFeature()), list(imp.FeatureNames))
			continue
		}
		mapped[j] = true
		name := m.GetColumn().GetName()
		col, ok := column[name]
		if !ok {
			v.Add(f+".column.name", "feature set %s version %d has no column %s", fs.GetName(), fs.GetVersion(), fault.Quote(name))
			continue
		}
		typ := col.GetType()
		if t := m.GetColumn().GetType(); t != commonv1.ValueType_VALUE_TYPE_UNSPECIFIED && t != typ {
			v.Add(f+".column.type", "%v, but column %s of feature set %s version %d holds %s (%v)", t, fault.Quote(name), fs.GetName(), fs.GetVersion(), values.TypeName(typ), typ)
			continue
		}
		text := artifact.KindOf(typ) == ml.Categorical
		u, cats := use[j], m.GetCategories()
		switch {
		case u.categorical && !text:
			v.Add(f+".column.type", "feature %s is categorical (the file declares it so, or its splits test categories) and reads a STRING column; column %s holds %s (%v)",
				fault.Quote(m.GetModelFeature()), fault.Quote(name), values.TypeName(typ), typ)
			continue
		case !u.categorical && text:
			v.Add(f+".column.type", "feature %s is numeric (its splits compare numbers) and reads a NUMBER, INT, BOOL or TIME column; column %s holds %s (%v)",
				fault.Quote(m.GetModelFeature()), fault.Quote(name), values.TypeName(typ), typ)
			continue
		case u.categorical && len(cats) == 0:
			v.Add(f+".categories", "required for categorical feature %s: its categories in code order (categories[i] is code i)", fault.Quote(m.GetModelFeature()))
			continue
		case !u.categorical && len(cats) > 0:
			v.Add(f+".categories", "feature %s is numeric: categories are for categorical features", fault.Quote(m.GetModelFeature()))
			continue
		case u.maxCode >= len(cats):
			v.Add(f+".categories", "the model's splits test category code %d of feature %s, and the list stops at code %d: list every category up to code %d at least",
				u.maxCode, fault.Quote(m.GetModelFeature()), len(cats)-1, u.maxCode)
			continue
		}
		in := artifact.ImportedInput{Column: &modelv1.InputColumn{Name: name, Type: typ, Missing: m.GetColumn().GetMissing()}}
		if u.categorical {
			in.Categories = cats
		}
		inputs[j] = in
	}
	for j, ok := range mapped {
		if !ok && len(*v) <= fault.MaxReported {
			v.Add(featuresField, "the model's feature %s (feature %d of %d) is not mapped: each feature reads one column", fault.Quote(imp.FeatureNames[j]), j, imp.Features)
		}
	}
	return inputs
}

// list writes names for a message: the first few, quoted, and how many more.
func list(names []string) string {
	const most = 8
	var q []string
	for _, n := range names[:min(len(names), most)] {
		q = append(q, fault.Quote(n))
	}
	s := strings.Join(q, ", ")
	if len(names) > most {
		s += fmt.Sprintf(" and %d more", len(names)-most)
	}
	return s
}
