package artifact

import (
	"fmt"
	"slices"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/gbt"
	"github.com/bullseye-ml/bullseye/pkg/ml/preprocess"
)

// ImportedInput is how one feature of an imported model reads a raw input.
type ImportedInput struct {
	// Column is the raw input: its name, its value type and what is done when it is missing.
	Column *modelv1.InputColumn
	// Categories are a categorical feature's categories in code order: Categories[i] is the
	// value the model knows as code i. Nil for a numeric feature.
	Categories []string
}

// EncodeImported converts a tree ensemble read from another library's file into a
// GRADIENT_BOOSTED_TREES artifact whose preprocessing feeds feature k of the ensemble from
// inputs[k]: a numeric input as its number, a categorical one (a STRING input with
// Categories) as the index of its value in Categories. A missing value, and a category not
// listed, reach the ensemble as missing, which its splits route by their default direction;
// unless the input's policy is MISSING_POLICY_REQUIRED, serving accepts missing values.
// The ensemble's tree parameters record from, with the model's own feature names when from
// has none. The caller sets the rest, as for Encode.
func EncodeImported(imp *gbt.Imported, task modelv1.TaskKind, inputs []ImportedInput, from *modelv1.ImportedFrom) (*modelv1.ModelArtifact, error) {
	if imp == nil || imp.Ensemble == nil {
		return nil, fmt.Errorf("encode imported artifact: %w: no ensemble", ErrInvalid)
	}
	if len(inputs) != imp.Features {
		return nil, fmt.Errorf("encode imported artifact: %w: %d inputs for %d features", ErrInvalid, len(inputs), imp.Features)
	}
	classify := task == modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION
	if (task != modelv1.TaskKind_TASK_KIND_REGRESSION && !classify) || classify != (imp.Objective == gbt.Logistic) {
		return nil, fmt.Errorf("encode imported artifact: %w: a %v ensemble does not perform %v", ErrInvalid, imp.Objective, task)
	}
	p := &preprocess.Pipeline{}
	cols := make([]*modelv1.InputColumn, len(inputs))
	for k, in := range inputs {
		c := in.Column
		if c.GetName() == "" || c.GetType() == commonv1.ValueType_VALUE_TYPE_UNSPECIFIED {
			return nil, fmt.Errorf("encode imported artifact: %w: input %d has no name or no type", ErrInvalid, k)
		}
		pin := preprocess.Input{
			Name: c.GetName(), Offset: k, Width: 1, KeepMissing: true,
			Imputes: Imputes(c),
		}
		categorical, text := in.Categories != nil, KindOf(c.GetType()) == ml.Categorical
		switch {
		case categorical && !text:
			return nil, fmt.Errorf("encode imported artifact: %w: %v input %q feeds a categorical feature: categories are strings", ErrInvalid, c.GetType(), c.GetName())
		case !categorical && text:
			return nil, fmt.Errorf("encode imported artifact: %w: %v input %q feeds a numeric feature", ErrInvalid, c.GetType(), c.GetName())
		case categorical:
			if slices.Contains(in.Categories, "") {
				return nil, fmt.Errorf("encode imported artifact: %w: input %q lists an empty category", ErrInvalid, c.GetName())
			}
			pin.Kind, pin.Ordinal, pin.Categories = ml.Categorical, true, slices.Clone(in.Categories)
		default:
			pin.Kind, pin.Scale = ml.Numeric, 1
		}
		p.Inputs = append(p.Inputs, pin)
		p.Features = append(p.Features, c.GetName())
		cols[k] = &modelv1.InputColumn{Name: c.GetName(), Type: c.GetType(), Missing: c.GetMissing()}
	}
	a, err := Encode(&Fitted{
		Family:   modelv1.ModelFamily_MODEL_FAMILY_GRADIENT_BOOSTED_TREES,
		Task:     task,
		Inputs:   cols,
		Pipeline: p,
		Model:    imp.Ensemble,
	})
	if err != nil {
		return nil, err
	}
	if from != nil {
		from = &modelv1.ImportedFrom{Format: from.GetFormat(), LibraryVersion: from.GetLibraryVersion(),
			Sha256: from.GetSha256(), FeatureNames: slices.Clone(from.GetFeatureNames())}
		if len(from.FeatureNames) == 0 {
			from.FeatureNames = slices.Clone(imp.FeatureNames)
		}
		a.GetTrees().ImportedFrom = from
	}
	return a, nil
}
