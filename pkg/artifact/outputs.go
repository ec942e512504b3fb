package artifact

import (
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
)

// The names of the outputs today's families give (modelv1.OutputSignature).
const (
	// OutputScore is every model's raw output.
	OutputScore = "score"
	// OutputProbability is a binary classifier's probability of the positive class.
	OutputProbability = "probability"
	// OutputLabel is a binary classifier's predicted class label.
	OutputLabel = "label"
	// OutputValue is a regression model's predicted value, or an explicit recommender's
	// predicted rating.
	OutputValue = "value"
)

// Outputs returns the output signature of artifact a: the one it records, or, for an
// artifact written before signatures were recorded, the one its task declares (with a
// probability when hasProbability, as its scorer's Info says).
func Outputs(a *modelv1.ModelArtifact, hasProbability bool) *modelv1.OutputSignature {
	if len(a.GetOutputs().GetOutputs()) > 0 {
		return a.GetOutputs()
	}
	return signature(a.GetTask(), hasProbability)
}

// signature declares the outputs of a model of a task.
func signature(task modelv1.TaskKind, hasProbability bool) *modelv1.OutputSignature {
	number := func(name, description string) *modelv1.OutputSpec {
		return &modelv1.OutputSpec{Name: name, Kind: modelv1.OutputKind_OUTPUT_KIND_NUMBER, Description: description}
	}
	sig := &modelv1.OutputSignature{}
	switch task {
	case modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION:
		sig.Outputs = append(sig.Outputs, number(OutputScore, "the raw output: log-odds, or an SVM's decision value"))
		if hasProbability {
			sig.Outputs = append(sig.Outputs, number(OutputProbability, "the probability of the positive class"))
		}
		sig.Outputs = append(sig.Outputs, &modelv1.OutputSpec{Name: OutputLabel, Kind: modelv1.OutputKind_OUTPUT_KIND_LABEL,
			Description: "the predicted class label"})
	case modelv1.TaskKind_TASK_KIND_REGRESSION:
		sig.Outputs = append(sig.Outputs, number(OutputScore, "the raw output, the predicted value"),
			number(OutputValue, "the predicted value"))
	case modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT:
		sig.Outputs = append(sig.Outputs, number(OutputScore, "the raw output, the predicted rating"),
			number(OutputValue, "the predicted rating"))
	case modelv1.TaskKind_TASK_KIND_CUSTOMER_LIFETIME_VALUE:
		return CLVSignature(true)
	case modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT:
		sig.Outputs = append(sig.Outputs, number(OutputScore, "the predicted preference, meaningful as a ranking only"))
	}
	return sig
}
