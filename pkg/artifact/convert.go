package artifact

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/kernel"
	"github.com/bullseye-ml/bullseye/pkg/ml/linear"
	"github.com/bullseye-ml/bullseye/pkg/ml/logistic"
	"github.com/bullseye-ml/bullseye/pkg/ml/preprocess"
	"github.com/bullseye-ml/bullseye/pkg/ml/svm"
)

// FormatVersion is the ModelArtifact layout this package writes and reads.
const FormatVersion = 1

// MediaType is the ArtifactRef.media_type of a serialised ModelArtifact.
const MediaType = "bullseye.model.v1.ModelArtifact"

// Fitted is a fitted model with the preprocessing it was fitted behind: the pkg/ml side of a
// ModelArtifact. Encode turns it into an artifact and Decode back, without loss for scoring:
// the decoded model scores every row exactly as the original.
type Fitted struct {
	// Family is the model family. It must agree with Model's type: LINEAR_REGRESSION, LASSO
	// and ELASTIC_NET hold a *linear.Model, LOGISTIC_REGRESSION a *logistic.Model,
	// LINEAR_SVM a *svm.LinearModel, KERNEL_SVM a *svm.KernelModel, and NYSTROM_SVM and
	// NYSTROM_LOGISTIC a *kernel.NystroemModel whose inner model is a *svm.LinearModel or a
	// *logistic.Model.
	Family modelv1.ModelFamily
	// Task is what the model predicts.
	Task modelv1.TaskKind
	// Inputs are the raw inputs, one per Pipeline input and in the same order, with the
	// value type each takes.
	Inputs []*modelv1.InputColumn
	// Pipeline is the fitted preprocessing.
	Pipeline *preprocess.Pipeline
	// Model is the fitted model on Pipeline's design matrix.
	Model ml.Model
}

// Encode converts f into a ModelArtifact with the layout (FormatVersion), family, task,
// inputs, preprocessing, parameters, output signature and the solver's convergence set. The
// caller sets the rest: name and version, hyperparameters, classification output, metrics,
// lineage, times.
func Encode(f *Fitted) (*modelv1.ModelArtifact, error) {
	if f.Pipeline == nil || f.Model == nil {
		return nil, fmt.Errorf("encode artifact: %w: no pipeline or no model", ErrInvalid)
	}
	if got, want := f.Model.NumFeatures(), f.Pipeline.NumFeatures(); got != want {
		return nil, fmt.Errorf("encode artifact: %w: the model takes %d features, the pipeline makes %d", ErrInvalid, got, want)
	}
	pre, err := encodePipeline(f.Pipeline, f.Inputs)
	if err != nil {
		return nil, fmt.Errorf("encode artifact: %w", err)
	}
	a := &modelv1.ModelArtifact{
		FormatVersion: FormatVersion,
		Family:        f.Family,
		Task:          f.Task,
		Preprocessing: pre,
	}
	for k, in := range f.Inputs {
		policy := modelv1.MissingPolicy_MISSING_POLICY_REQUIRED
		if f.Pipeline.Inputs[k].Imputes {
			policy = modelv1.MissingPolicy_MISSING_POLICY_IMPUTE
		}
		a.Inputs = append(a.Inputs, &modelv1.InputColumn{Name: in.GetName(), Type: in.GetType(), Missing: policy})
	}
	if err := encodeModel(a, f.Family, f.Model); err != nil {
		return nil, fmt.Errorf("encode artifact of a %v: %w", f.Family, err)
	}
	if c, ok := f.Model.(ml.Converger); ok {
		st := c.Status()
		a.Solver = &modelv1.SolverReport{Converged: st.Converged, Iterations: int32(st.Iterations)}
	}
	l, _ := linkOf(f.Model)
	a.Outputs = signature(f.Task, l != linkNone)
	return a, nil
}

func encodePipeline(p *preprocess.Pipeline, inputs []*modelv1.InputColumn) (*modelv1.FittedPreprocessing, error) {
	if len(inputs) != len(p.Inputs) {
		return nil, fmt.Errorf("%w: %d raw inputs for %d pipeline inputs", ErrInvalid, len(inputs), len(p.Inputs))
	}
	out := &modelv1.FittedPreprocessing{
		OutputWidth: int32(len(p.Features)),
		OutputNames: append([]string(nil), p.Features...),
	}
	for k := range p.Inputs {
		in := &p.Inputs[k]
		if inputs[k].GetName() != in.Name {
			return nil, fmt.Errorf("%w: raw input %d is %q, pipeline input %d is %q", ErrInvalid, k, inputs[k].GetName(), k, in.Name)
		}
		typ := inputs[k].GetType()
		if typ == commonv1.ValueType_VALUE_TYPE_UNSPECIFIED {
			return nil, fmt.Errorf("%w: raw input %q has no type", ErrInvalid, in.Name)
		}
		if in.Kind == ml.Numeric && KindOf(typ) != ml.Numeric {
			return nil, fmt.Errorf("%w: numeric pipeline input %q has raw type %v", ErrInvalid, in.Name, typ)
		}
		c := &modelv1.FittedColumn{
			Name:             in.Name,
			Type:             typ,
			OutputOffset:     int32(in.Offset),
			OutputWidth:      int32(in.Width),
			MissingIndicator: in.Indicator,
			KeepMissing:      in.KeepMissing,
		}
		switch {
		case in.Kind == ml.Numeric:
			c.Encoding = modelv1.ColumnEncoding_COLUMN_ENCODING_NUMERIC
			c.ImputeValue = &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: in.Fill}}
			c.LogTransform = in.Log1p
			c.Mean = in.Mean
			c.Scale = in.Scale
			if c.Scale == 0 {
				c.Scale = 1
			}
		case in.Ordinal:
			c.Encoding = modelv1.ColumnEncoding_COLUMN_ENCODING_ORDINAL
			c.ImputeValue = &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: in.FillCategory}}
			c.Vocabulary = append([]string(nil), in.Categories...)
		case in.HashBuckets > 0:
			c.Encoding = modelv1.ColumnEncoding_COLUMN_ENCODING_HASHING
			c.ImputeValue = &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: in.FillCategory}}
			c.HashBuckets = int32(in.HashBuckets)
			c.HashFunction = modelv1.HashFunction_HASH_FUNCTION_FNV1A_64
			c.HashSeed = in.HashSeed
		default:
			c.Encoding = modelv1.ColumnEncoding_COLUMN_ENCODING_ONE_HOT
			c.ImputeValue = &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: in.FillCategory}}
			c.Vocabulary = append([]string(nil), in.Categories...)
			c.UnseenBucket = in.Bucket
		}
		out.Columns = append(out.Columns, c)
	}
	if _, err := decodePipeline(out); err != nil {
		return nil, err
	}
	return out, nil
}

// linearOf returns the parameters of a linear model with the given link and Platt scaling.
func linearOf(m *linear.Model, link modelv1.LinkFunction, platt *svm.Platt) *modelv1.LinearParameters {
	p := &modelv1.LinearParameters{
		Weights:   append([]float64(nil), m.Weights...),
		Intercept: m.Intercept,
		Link:      link,
	}
	if platt != nil {
		p.Platt = &modelv1.PlattScaling{A: platt.A, B: platt.B}
	}
	return p
}

func kernelOf(k kernel.Kernel) (*modelv1.KernelParameters, error) {
	p := &modelv1.KernelParameters{Gamma: k.Gamma, Degree: int32(k.Degree), Coef0: k.Coef0}
	switch k.Kind {
	case kernel.RBF:
		p.Type = modelv1.KernelType_KERNEL_TYPE_RBF
	case kernel.Poly:
		p.Type = modelv1.KernelType_KERNEL_TYPE_POLY
	case kernel.Linear:
		p.Type = modelv1.KernelType_KERNEL_TYPE_LINEAR
	default:
		return nil, fmt.Errorf("%w: kernel %v", ErrUnsupported, k.Kind)
	}
	return p, nil
}

func encodeModel(a *modelv1.ModelArtifact, family modelv1.ModelFamily, m ml.Model) error {
	wrong := func() error { return fmt.Errorf("%w: a %T does not belong to family %v", ErrInvalid, m, family) }
	switch family {
	case modelv1.ModelFamily_MODEL_FAMILY_LINEAR_REGRESSION, modelv1.ModelFamily_MODEL_FAMILY_LASSO,
		modelv1.ModelFamily_MODEL_FAMILY_ELASTIC_NET:
		lm, ok := m.(*linear.Model)
		if !ok {
			return wrong()
		}
		a.Parameters = &modelv1.ModelArtifact_Linear{Linear: linearOf(lm, modelv1.LinkFunction_LINK_FUNCTION_IDENTITY, nil)}
	case modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION:
		lm, ok := m.(*logistic.Model)
		if !ok {
			return wrong()
		}
		a.Parameters = &modelv1.ModelArtifact_Linear{Linear: linearOf(&lm.Model, modelv1.LinkFunction_LINK_FUNCTION_LOGISTIC, nil)}
	case modelv1.ModelFamily_MODEL_FAMILY_LINEAR_SVM:
		sm, ok := m.(*svm.LinearModel)
		if !ok {
			return wrong()
		}
		a.Parameters = &modelv1.ModelArtifact_Linear{Linear: linearOf(&sm.Model, modelv1.LinkFunction_LINK_FUNCTION_IDENTITY, sm.Platt)}
	case modelv1.ModelFamily_MODEL_FAMILY_GRADIENT_BOOSTED_TREES:
		e, ok := treesIn(m)
		if !ok {
			return wrong()
		}
		a.Parameters = &modelv1.ModelArtifact_Trees{Trees: encodeTrees(e)}
	case modelv1.ModelFamily_MODEL_FAMILY_KERNEL_SVM:
		km, ok := m.(*svm.KernelModel)
		if !ok {
			return wrong()
		}
		kp, err := kernelOf(km.Kernel)
		if err != nil {
			return err
		}
		p := &modelv1.KernelSvmParameters{
			Kernel:             kp,
			SupportVectorCount: int32(km.SupportVectors.Rows),
			Dimension:          int32(km.SupportVectors.Cols),
			SupportVectors:     append([]float64(nil), km.SupportVectors.Data...),
			DualCoefficients:   append([]float64(nil), km.Coef...),
			Intercept:          -km.Rho,
		}
		if km.Platt != nil {
			p.Platt = &modelv1.PlattScaling{A: km.Platt.A, B: km.Platt.B}
		}
		a.Parameters = &modelv1.ModelArtifact_KernelSvm{KernelSvm: p}
	case modelv1.ModelFamily_MODEL_FAMILY_NYSTROM_SVM, modelv1.ModelFamily_MODEL_FAMILY_NYSTROM_LOGISTIC:
		nm, ok := m.(*kernel.NystroemModel)
		if !ok || nm.Map == nil {
			return wrong()
		}
		kp, err := kernelOf(nm.Map.Kernel)
		if err != nil {
			return err
		}
		p := &modelv1.NystromParameters{
			Kernel:         kp,
			LandmarkCount:  int32(nm.Map.Landmarks.Rows),
			Dimension:      int32(nm.Map.Landmarks.Cols),
			Landmarks:      append([]float64(nil), nm.Map.Landmarks.Data...),
			ComponentCount: int32(nm.Map.Projection.Cols),
			Projection:     append([]float64(nil), nm.Map.Projection.Data...),
		}
		switch inner := nm.Inner.(type) {
		case *logistic.Model:
			if family != modelv1.ModelFamily_MODEL_FAMILY_NYSTROM_LOGISTIC {
				return wrong()
			}
			p.Linear = linearOf(&inner.Model, modelv1.LinkFunction_LINK_FUNCTION_LOGISTIC, nil)
		case *svm.LinearModel:
			if family != modelv1.ModelFamily_MODEL_FAMILY_NYSTROM_SVM {
				return wrong()
			}
			p.Linear = linearOf(&inner.Model, modelv1.LinkFunction_LINK_FUNCTION_IDENTITY, inner.Platt)
		default:
			return fmt.Errorf("%w: Nyström inner model %T", ErrUnsupported, nm.Inner)
		}
		a.Parameters = &modelv1.ModelArtifact_Nystrom{Nystrom: p}
	default:
		return fmt.Errorf("%w: family %v", ErrUnsupported, family)
	}
	return nil
}

// Decode converts an artifact back into a fitted pipeline and model. It checks the layout
// version and that the parameters and preprocessing are consistent, and returns ErrInvalid
// or ErrUnsupported (recommenders) otherwise.
func Decode(a *modelv1.ModelArtifact) (*Fitted, error) {
	if a.GetFormatVersion() != FormatVersion {
		return nil, fmt.Errorf("decode artifact: %w: layout version %d, this reader knows %d", ErrInvalid, a.GetFormatVersion(), FormatVersion)
	}
	if a.GetPreprocessing() == nil {
		if _, ok := a.GetParameters().(*modelv1.ModelArtifact_Factorization); ok {
			return nil, fmt.Errorf("decode artifact: %w: factorisation models (use DecodeFactors)", ErrUnsupported)
		}
		if _, ok := a.GetParameters().(*modelv1.ModelArtifact_Clv); ok {
			return nil, fmt.Errorf("decode artifact: %w: customer lifetime value models (use DecodeCLV)", ErrUnsupported)
		}
		return nil, fmt.Errorf("decode artifact: %w: no preprocessing", ErrInvalid)
	}
	p, err := decodePipeline(a.GetPreprocessing())
	if err != nil {
		return nil, fmt.Errorf("decode artifact: %w", err)
	}
	f := &Fitted{Family: a.GetFamily(), Task: a.GetTask(), Pipeline: p}
	if len(a.GetInputs()) != len(p.Inputs) {
		return nil, fmt.Errorf("decode artifact: %w: %d inputs for %d preprocessing columns", ErrInvalid, len(a.GetInputs()), len(p.Inputs))
	}
	for k, in := range a.GetInputs() {
		if in.GetName() != p.Inputs[k].Name {
			return nil, fmt.Errorf("decode artifact: %w: input %d is %q, preprocessing column %d is %q", ErrInvalid, k, in.GetName(), k, p.Inputs[k].Name)
		}
		f.Inputs = append(f.Inputs, &modelv1.InputColumn{Name: in.GetName(), Type: in.GetType(), Missing: in.GetMissing()})
		p.Inputs[k].Imputes = Imputes(in)
	}
	conv := ml.Convergence{Converged: a.GetSolver().GetConverged(), Iterations: int(a.GetSolver().GetIterations())}
	if f.Model, err = decodeModel(a, conv); err != nil {
		return nil, fmt.Errorf("decode artifact of a %v: %w", a.GetFamily(), err)
	}
	if got, want := f.Model.NumFeatures(), p.NumFeatures(); got != want {
		return nil, fmt.Errorf("decode artifact: %w: the model takes %d features, the preprocessing makes %d", ErrInvalid, got, want)
	}
	return f, nil
}

func decodePipeline(fp *modelv1.FittedPreprocessing) (*preprocess.Pipeline, error) {
	p := &preprocess.Pipeline{Features: append([]string(nil), fp.GetOutputNames()...)}
	offset := 0
	seen := map[string]bool{}
	for k, c := range fp.GetColumns() {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: preprocessing column %d (%q): %s", ErrInvalid, k, c.GetName(), fmt.Sprintf(format, args...))
		}
		if c.GetName() == "" || seen[c.GetName()] {
			return nil, bad("empty or repeated name")
		}
		seen[c.GetName()] = true
		in := preprocess.Input{
			Name:        c.GetName(),
			Offset:      int(c.GetOutputOffset()),
			Width:       int(c.GetOutputWidth()),
			Indicator:   c.GetMissingIndicator(),
			KeepMissing: c.GetKeepMissing(),
		}
		if in.Offset != offset {
			return nil, bad("offset %d, want %d", in.Offset, offset)
		}
		if c.GetType() == commonv1.ValueType_VALUE_TYPE_UNSPECIFIED {
			return nil, bad("no type")
		}
		extra := 0
		if in.Indicator {
			extra = 1
		}
		var want int
		switch c.GetEncoding() {
		case modelv1.ColumnEncoding_COLUMN_ENCODING_NUMERIC:
			if KindOf(c.GetType()) != ml.Numeric {
				return nil, bad("numeric encoding of a %v input", c.GetType())
			}
			in.Kind = ml.Numeric
			var fill float64
			switch v := c.GetImputeValue().GetKind().(type) {
			case nil:
			case *commonv1.Value_NumberValue:
				fill = v.NumberValue
			case *commonv1.Value_IntValue:
				fill = float64(v.IntValue)
			default:
				return nil, bad("impute value %v is not a number", c.GetImputeValue())
			}
			if math.IsNaN(fill) || math.IsInf(fill, 0) {
				return nil, bad("impute value %v", fill)
			}
			in.Fill = fill
			in.Log1p = c.GetLogTransform()
			in.Mean, in.Scale = c.GetMean(), c.GetScale()
			if in.Scale == 0 || math.IsNaN(in.Scale) || math.IsNaN(in.Mean) {
				return nil, bad("mean %v, scale %v", in.Mean, in.Scale)
			}
			want = 1 + extra
		case modelv1.ColumnEncoding_COLUMN_ENCODING_ONE_HOT:
			in.Kind = ml.Categorical
			fill, err := Category(c.GetImputeValue())
			if err != nil {
				return nil, bad("impute value %v", c.GetImputeValue())
			}
			in.FillCategory = fill
			in.Categories = append([]string(nil), c.GetVocabulary()...)
			in.Bucket = c.GetUnseenBucket()
			want = len(in.Categories) + extra
			if in.Bucket {
				want++
			}
		case modelv1.ColumnEncoding_COLUMN_ENCODING_ORDINAL:
			in.Kind = ml.Categorical
			fill, err := Category(c.GetImputeValue())
			if err != nil {
				return nil, bad("impute value %v", c.GetImputeValue())
			}
			in.FillCategory = fill
			in.Ordinal = true
			in.Categories = append([]string(nil), c.GetVocabulary()...)
			want = 1 + extra
		case modelv1.ColumnEncoding_COLUMN_ENCODING_HASHING:
			in.Kind = ml.Categorical
			fill, err := Category(c.GetImputeValue())
			if err != nil {
				return nil, bad("impute value %v", c.GetImputeValue())
			}
			in.FillCategory = fill
			if f := c.GetHashFunction(); f != modelv1.HashFunction_HASH_FUNCTION_UNSPECIFIED && f != modelv1.HashFunction_HASH_FUNCTION_FNV1A_64 {
				return nil, fmt.Errorf("%w: preprocessing column %q: hash function %v", ErrUnsupported, c.GetName(), f)
			}
			if c.GetSignedHash() {
				return nil, fmt.Errorf("%w: preprocessing column %q: signed hashing", ErrUnsupported, c.GetName())
			}
			if c.GetHashBuckets() < 1 {
				return nil, bad("%d hash buckets", c.GetHashBuckets())
			}
			in.HashBuckets = int(c.GetHashBuckets())
			in.HashSeed = c.GetHashSeed()
			want = in.HashBuckets + extra
		default:
			return nil, bad("encoding %v", c.GetEncoding())
		}
		if in.Width != want {
			return nil, bad("width %d, want %d", in.Width, want)
		}
		offset += in.Width
		p.Inputs = append(p.Inputs, in)
	}
	if int(fp.GetOutputWidth()) != offset || len(p.Features) != offset {
		return nil, fmt.Errorf("%w: preprocessing output width %d with %d names, the columns make %d",
			ErrInvalid, fp.GetOutputWidth(), len(p.Features), offset)
	}
	return p, nil
}

func decodeLinear(lp *modelv1.LinearParameters, conv ml.Convergence) (linear.Model, *svm.Platt, error) {
	if lp == nil {
		return linear.Model{}, nil, fmt.Errorf("%w: no linear parameters", ErrInvalid)
	}
	m := linear.Model{Weights: append([]float64(nil), lp.GetWeights()...), Intercept: lp.GetIntercept(), Convergence: conv}
	var platt *svm.Platt
	if p := lp.GetPlatt(); p != nil {
		platt = &svm.Platt{A: p.GetA(), B: p.GetB()}
	}
	return m, platt, nil
}

func decodeKernel(kp *modelv1.KernelParameters) (kernel.Kernel, error) {
	k := kernel.Kernel{Gamma: kp.GetGamma(), Degree: int(kp.GetDegree()), Coef0: kp.GetCoef0()}
	switch kp.GetType() {
	case modelv1.KernelType_KERNEL_TYPE_RBF:
		k.Kind = kernel.RBF
	case modelv1.KernelType_KERNEL_TYPE_POLY:
		k.Kind = kernel.Poly
	case modelv1.KernelType_KERNEL_TYPE_LINEAR:
		k.Kind = kernel.Linear
	default:
		return k, fmt.Errorf("%w: kernel type %v", ErrInvalid, kp.GetType())
	}
	if err := k.Validate(); err != nil {
		return k, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return k, nil
}

func matrix(rows, cols int32, data []float64, what string) (ml.Matrix, error) {
	if rows < 1 || cols < 1 || int(rows)*int(cols) != len(data) {
		return ml.Matrix{}, fmt.Errorf("%w: %s is %d×%d with %d values", ErrInvalid, what, rows, cols, len(data))
	}
	return ml.Matrix{Rows: int(rows), Cols: int(cols), Data: append([]float64(nil), data...)}, nil
}

func decodeModel(a *modelv1.ModelArtifact, conv ml.Convergence) (ml.Model, error) {
	family := a.GetFamily()
	switch family {
	case modelv1.ModelFamily_MODEL_FAMILY_LINEAR_REGRESSION, modelv1.ModelFamily_MODEL_FAMILY_LASSO,
		modelv1.ModelFamily_MODEL_FAMILY_ELASTIC_NET, modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION,
		modelv1.ModelFamily_MODEL_FAMILY_LINEAR_SVM:
		lm, platt, err := decodeLinear(a.GetLinear(), conv)
		if err != nil {
			return nil, err
		}
		link := a.GetLinear().GetLink()
		switch family {
		case modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION:
			if link != modelv1.LinkFunction_LINK_FUNCTION_LOGISTIC || platt != nil {
				return nil, fmt.Errorf("%w: logistic regression with link %v", ErrInvalid, link)
			}
			return &logistic.Model{Model: lm}, nil
		case modelv1.ModelFamily_MODEL_FAMILY_LINEAR_SVM:
			if link == modelv1.LinkFunction_LINK_FUNCTION_LOGISTIC {
				return nil, fmt.Errorf("%w: linear SVM with a logistic link", ErrInvalid)
			}
			return &svm.LinearModel{Model: lm, Platt: platt}, nil
		}
		if link == modelv1.LinkFunction_LINK_FUNCTION_LOGISTIC || platt != nil {
			return nil, fmt.Errorf("%w: regression with link %v", ErrInvalid, link)
		}
		return &lm, nil
	case modelv1.ModelFamily_MODEL_FAMILY_GRADIENT_BOOSTED_TREES:
		return decodeTrees(a.GetTrees())
	case modelv1.ModelFamily_MODEL_FAMILY_KERNEL_SVM:
		kp := a.GetKernelSvm()
		if kp == nil {
			return nil, fmt.Errorf("%w: no kernel SVM parameters", ErrInvalid)
		}
		k, err := decodeKernel(kp.GetKernel())
		if err != nil {
			return nil, err
		}
		sv, err := matrix(kp.GetSupportVectorCount(), kp.GetDimension(), kp.GetSupportVectors(), "the support vector matrix")
		if err != nil {
			return nil, err
		}
		if len(kp.GetDualCoefficients()) != sv.Rows {
			return nil, fmt.Errorf("%w: %d dual coefficients for %d support vectors", ErrInvalid, len(kp.GetDualCoefficients()), sv.Rows)
		}
		m := &svm.KernelModel{Kernel: k, SupportVectors: sv, Coef: append([]float64(nil), kp.GetDualCoefficients()...),
			Rho: -kp.GetIntercept(), Convergence: conv}
		if p := kp.GetPlatt(); p != nil {
			m.Platt = &svm.Platt{A: p.GetA(), B: p.GetB()}
		}
		return m, nil
	case modelv1.ModelFamily_MODEL_FAMILY_NYSTROM_SVM, modelv1.ModelFamily_MODEL_FAMILY_NYSTROM_LOGISTIC:
		np := a.GetNystrom()
		if np == nil {
			return nil, fmt.Errorf("%w: no Nyström parameters", ErrInvalid)
		}
		k, err := decodeKernel(np.GetKernel())
		if err != nil {
			return nil, err
		}
		lm, err := matrix(np.GetLandmarkCount(), np.GetDimension(), np.GetLandmarks(), "the landmark matrix")
		if err != nil {
			return nil, err
		}
		proj, err := matrix(np.GetLandmarkCount(), np.GetComponentCount(), np.GetProjection(), "the projection matrix")
		if err != nil {
			return nil, err
		}
		inner, platt, err := decodeLinear(np.GetLinear(), conv)
		if err != nil {
			return nil, err
		}
		if len(inner.Weights) != proj.Cols {
			return nil, fmt.Errorf("%w: %d weights for %d Nyström components", ErrInvalid, len(inner.Weights), proj.Cols)
		}
		m := &kernel.NystroemModel{Map: &kernel.NystroemMap{Kernel: k, Landmarks: lm, Projection: proj}}
		link := np.GetLinear().GetLink()
		if family == modelv1.ModelFamily_MODEL_FAMILY_NYSTROM_LOGISTIC {
			if link != modelv1.LinkFunction_LINK_FUNCTION_LOGISTIC || platt != nil {
				return nil, fmt.Errorf("%w: Nyström logistic regression with link %v", ErrInvalid, link)
			}
			m.Inner = &logistic.Model{Model: inner}
		} else {
			if link == modelv1.LinkFunction_LINK_FUNCTION_LOGISTIC {
				return nil, fmt.Errorf("%w: Nyström SVM with a logistic link", ErrInvalid)
			}
			m.Inner = &svm.LinearModel{Model: inner, Platt: platt}
		}
		return m, nil
	case modelv1.ModelFamily_MODEL_FAMILY_MF_ALS, modelv1.ModelFamily_MODEL_FAMILY_MF_SGD,
		modelv1.ModelFamily_MODEL_FAMILY_IMPLICIT_ALS, modelv1.ModelFamily_MODEL_FAMILY_BPR,
		modelv1.ModelFamily_MODEL_FAMILY_POPULARITY:
		return nil, fmt.Errorf("%w: recommender family %v (use DecodeFactors)", ErrUnsupported, family)
	}
	return nil, fmt.Errorf("%w: family %v", ErrInvalid, family)
}

// Marshal serialises a deterministically (the same artifact gives the same bytes) and
// returns the bytes with their SHA-256 digest in lowercase hex, as ArtifactRef.sha256.
func Marshal(a *modelv1.ModelArtifact) ([]byte, string, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(a)
	if err != nil {
		return nil, "", fmt.Errorf("marshal artifact: %w", err)
	}
	return b, Digest(b), nil
}

// Digest returns the SHA-256 digest of b in lowercase hex.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Unmarshal verifies that b has the SHA-256 digest sha (lowercase hex; ErrChecksum
// otherwise) and parses it. It does not check the artifact's content: Decode and NewScorer do.
func Unmarshal(b []byte, sha string) (*modelv1.ModelArtifact, error) {
	if got := Digest(b); got != sha {
		return nil, fmt.Errorf("unmarshal artifact: %w: digest %s, want %s", ErrChecksum, got, sha)
	}
	a := &modelv1.ModelArtifact{}
	if err := proto.Unmarshal(b, a); err != nil {
		return nil, fmt.Errorf("unmarshal artifact: %w: %v", ErrInvalid, err)
	}
	return a, nil
}
