package yamlpb

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
)

// TestMistakesAtTheirYAMLPosition checks that each kind of mistake is
// reported at its line and column in the YAML file, with the field's path,
// and that every mistake of a file is reported, not only the first.
func TestMistakesAtTheirYAMLPosition(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "misspelt nested field",
			src: `modelName: m
data:
  trainingSet:
    featureSet: {name: bank}
    cutof: {fixedTime: "2011-01-01T00:00:00Z"}
`,
			want: []string{`spec.yaml:5:5: data.trainingSet: unknown field "cutof" of bullseye.feature.v1.TrainingSetSpec; did you mean "cutoff"?`},
		},
		{
			name: "misspelt field of a list element, every mistake",
			src: `modelName: m
candidats: []
candidates:
  - family: MODEL_FAMILY_LOGISTIC_REGRESSION
  - famly: MODEL_FAMILY_LINEAR_SVM
`,
			want: []string{
				`spec.yaml:2:1: unknown field "candidats" of bullseye.training.v1.TrainingSpec; did you mean "candidates"?`,
				`spec.yaml:5:5: candidates[1]: unknown field "famly" of bullseye.training.v1.CandidateSpec; did you mean "family"?`,
			},
		},
		{
			name: "misspelt enum value",
			src:  "task: TASK_KIND_BINARY_CLASIFICATION\n",
			want: []string{`spec.yaml:1:7: task: invalid value for enum field task: "TASK_KIND_BINARY_CLASIFICATION"; did you mean "TASK_KIND_BINARY_CLASSIFICATION"?`},
		},
		{
			name: "wrong shape",
			src:  "modelName: [m]\ndata: yes\n",
			want: []string{
				`spec.yaml:1:12: modelName: want a single string value, got a list`,
				`spec.yaml:2:7: data: want a mapping (the fields of bullseye.training.v1.DataSpec), got "yes"`,
			},
		},
		{
			name: "wrong scalar type",
			src: `data:
  trainingSet:
    label: {name: 3}
    cutoff: {fixedTime: "2011-01-01"}
`,
			want: []string{
				`spec.yaml:3:19: data.trainingSet.label.name: invalid value for string field name: 3`,
				`spec.yaml:4:25: data.trainingSet.cutoff.fixedTime: invalid google.protobuf.Timestamp value "2011-01-01"`,
			},
		},
		{
			name: "map values",
			src:  "labels:\n  team: growth\n  year: [2025]\n",
			want: []string{`spec.yaml:3:9: labels["year"]: want a single string value, got a list`},
		},
		{
			name: "field given twice, by its JSON and its proto name",
			src:  "modelName: a\nmodel_name: b\n",
			want: []string{`spec.yaml:2:1: model_name: field "modelName" is given twice (first at line 1)`},
		},
		{
			name: "two members of a one-of",
			src:  "data:\n  trainingSet: {}\n  interactions: {}\n",
			want: []string{`spec.yaml:3:3: data.interactions: "interactions" and "trainingSet" (line 2) are both of the one-of "source": give one`},
		},
		{
			name: "null list element",
			src:  "candidates:\n  - family: MODEL_FAMILY_LOGISTIC_REGRESSION\n  - ~\n",
			want: []string{`spec.yaml:3:5: candidates[1]: a list element cannot be null`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Unmarshal("spec.yaml", []byte(tc.src), &trainingv1.TrainingSpec{})
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("error:\n%s\nwant:\n%s", err, strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestDuration checks a well-known type inside a list element: a bad
// duration is reported where it is written.
func TestDuration(t *testing.T) {
	src := `name: purchases
features:
  - name: spend_90d
    aggregate:
      aggregation: AGGREGATION_SUM
      window: 90d
`
	err := Unmarshal("features.yaml", []byte(src), &featurev1.FeatureSet{})
	if err == nil || !strings.HasPrefix(err.Error(), `features.yaml:6:15: features[0].aggregate.window: invalid google.protobuf.Duration value "90d"`) {
		t.Errorf("error %v, want the bad window at 6:15", err)
	}
}

// TestAliasesMergesAndEmpty checks the YAML that has no JSON counterpart:
// anchors and aliases, merge keys, and an empty file.
func TestAliasesMergesAndEmpty(t *testing.T) {
	src := `modelName: m
candidates:
  - &lr {family: MODEL_FAMILY_LOGISTIC_REGRESSION}
  - *lr
  - {<<: *lr, family: MODEL_FAMILY_LINEAR_SVM}
`
	got := &trainingv1.TrainingSpec{}
	if err := Unmarshal("spec.yaml", []byte(src), got); err != nil {
		t.Fatal(err)
	}
	want := &trainingv1.TrainingSpec{}
	js := `{"modelName": "m", "candidates": [{"family": "MODEL_FAMILY_LOGISTIC_REGRESSION"}, {"family": "MODEL_FAMILY_LOGISTIC_REGRESSION"}, {"family": "MODEL_FAMILY_LINEAR_SVM"}]}`
	if err := protojson.Unmarshal([]byte(js), want); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	empty := &trainingv1.TrainingSpec{ModelName: "left over"}
	if err := Unmarshal("empty.yaml", []byte("# nothing\n"), empty); err != nil || !proto.Equal(empty, &trainingv1.TrainingSpec{}) {
		t.Errorf("empty file: %v, error %v; want an empty spec", empty, err)
	}
}

// TestExamplesReadAsBefore checks that every example spec and mapping reads
// as it did through a YAML-to-JSON conversion and protojson.
func TestExamplesReadAsBefore(t *testing.T) {
	files, err := filepath.Glob("../../../../examples/*/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found (%v)", err)
	}
	for _, f := range files {
		var got, want proto.Message
		switch base := filepath.Base(f); {
		case base == "mapping.yaml":
			got, want = &ingestv1.ImportMapping{}, &ingestv1.ImportMapping{}
		case base == "features.yaml":
			got, want = &featurev1.FeatureSet{}, &featurev1.FeatureSet{}
		case strings.HasPrefix(base, "train-"):
			got, want = &trainingv1.TrainingSpec{}, &trainingv1.TrainingSpec{}
		default:
			t.Errorf("%s: which message is it?", f)
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := Unmarshal(f, data, got); err != nil {
			t.Errorf("%v", err)
			continue
		}
		js, err := yaml.YAMLToJSON(data)
		if err != nil {
			t.Fatal(err)
		}
		if err := protojson.Unmarshal(js, want); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !proto.Equal(got, want) {
			t.Errorf("%s reads as\n%v\nwant\n%v", f, got, want)
		}
	}
}

// TestProtojsonMessage checks that protojson's position in its JSON input
// is left out of the messages, whichever space follows its "proto:".
func TestProtojsonMessage(t *testing.T) {
	err := protojson.Unmarshal([]byte(`{"modelName": 3}`), &trainingv1.TrainingSpec{})
	if got, want := protojsonMessage(err), "invalid value for string field modelName: 3"; got != want {
		t.Errorf("protojsonMessage(%q) = %q, want %q", err, got, want)
	}
	for in, want := range map[string]string{
		"proto:\u00a0(line 1:9): unknown field \"x\"":      `unknown field "x"`,
		"proto: syntax error (line 1:2): unexpected token": "syntax error: unexpected token",
	} {
		if got := protojsonMessage(errString(in)); got != want {
			t.Errorf("protojsonMessage(%q) = %q, want %q", in, got, want)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// TestSuggest checks the names offered for a misspelt one: the name it
// begins, else the nearest, else none.
func TestSuggest(t *testing.T) {
	names := []string{"MODEL_FAMILY_LASSO", "MODEL_FAMILY_LOGISTIC_REGRESSION", "MODEL_FAMILY_LINEAR_SVM"}
	for got, want := range map[string]string{
		"MODEL_FAMILY_LOGISTIC": `; did you mean "MODEL_FAMILY_LOGISTIC_REGRESSION"?`,
		"MODEL_FAMILY_LASO":     `; did you mean "MODEL_FAMILY_LASSO"?`,
		"KMEANS":                "",
	} {
		if s := suggest(got, names); s != want {
			t.Errorf("suggest(%q) = %q, want %q", got, s, want)
		}
	}
}
