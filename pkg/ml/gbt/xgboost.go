package gbt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// Imported is a model read from another library's file, with the names and types its
// features had there.
type Imported struct {
	*Ensemble
	FeatureNames []string
	// FeatureCategorical marks the features the file declares categorical.
	FeatureCategorical []bool
	// Format and Version say what wrote the file, such as "xgboost" and "1.7.4".
	Format, Version string
}

// xgboostModel is the part of XGBoost's JSON model format (Booster.save_model("m.json"),
// version 1.x and 2.x) that scoring needs.
type xgboostModel struct {
	Version []int `json:"version"`
	Learner struct {
		FeatureNames     []string `json:"feature_names"`
		FeatureTypes     []string `json:"feature_types"`
		LearnerModelParm struct {
			BaseScore string `json:"base_score"`
			NumClass  string `json:"num_class"`
			NumFeat   string `json:"num_feature"`
			NumTarget string `json:"num_target"`
		} `json:"learner_model_param"`
		Objective struct {
			Name string `json:"name"`
		} `json:"objective"`
		GradientBooster struct {
			Name  string `json:"name"`
			Model struct {
				Trees    []xgboostTree `json:"trees"`
				TreeInfo []int         `json:"tree_info"`
			} `json:"model"`
		} `json:"gradient_booster"`
	} `json:"learner"`
}

type xgboostTree struct {
	Left       []int32   `json:"left_children"`
	Right      []int32   `json:"right_children"`
	Conditions []float64 `json:"split_conditions"`
	Indices    []int32   `json:"split_indices"`
	DefaultL   []int     `json:"default_left"`
	SplitType  []int     `json:"split_type"`
	Hessian    []float64 `json:"sum_hessian"`
	Categories []int     `json:"categories"`
	CatNodes   []int32   `json:"categories_nodes"`
	CatSegs    []int     `json:"categories_segments"`
	CatSizes   []int     `json:"categories_sizes"`
}

// maxImportedCategory bounds the category codes of an imported categorical split.
const maxImportedCategory = 1 << 16

// ReadXGBoostJSON reads a model saved by XGBoost as JSON. It accepts gbtree boosters with
// one output and the objectives binary:logistic, binary:logitraw, reg:squarederror,
// reg:linear and count:poisson; anything else is an error that says what is unsupported.
func ReadXGBoostJSON(r io.Reader) (*Imported, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading the model: %w", err)
	}
	var m xgboostModel
	if err := json.Unmarshal(jsonNonFinite(raw), &m); err != nil {
		// The type error's own text spells out the Go types it reads into.
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("not an XGBoost JSON model: %s is a JSON %s, which the format does not have there", te.Field, te.Value)
		}
		return nil, fmt.Errorf("not an XGBoost JSON model: %w", err)
	}
	l := &m.Learner
	if l.GradientBooster.Name != "gbtree" {
		return nil, fmt.Errorf("learner.gradient_booster.name: booster %q is not supported (only gbtree)", l.GradientBooster.Name)
	}
	if n := l.LearnerModelParm.NumClass; n != "" && n != "0" {
		return nil, fmt.Errorf("learner.learner_model_param.num_class: %s classes; only binary and regression models are supported", n)
	}
	if n := l.LearnerModelParm.NumTarget; n != "" && n != "1" {
		return nil, fmt.Errorf("learner.learner_model_param.num_target: %s targets; only one is supported", n)
	}
	features, err := strconv.Atoi(l.LearnerModelParm.NumFeat)
	if err != nil || features < 1 || features > 1<<20 {
		return nil, fmt.Errorf("learner.learner_model_param.num_feature: %q is not a feature count", l.LearnerModelParm.NumFeat)
	}
	base, err := strconv.ParseFloat(l.LearnerModelParm.BaseScore, 64)
	if err != nil {
		return nil, fmt.Errorf("learner.learner_model_param.base_score: %q is not a number", l.LearnerModelParm.BaseScore)
	}
	e := &Ensemble{Features: features, Rules: XGBoostRules}
	switch l.Objective.Name {
	case "binary:logistic":
		if base <= 0 || base >= 1 {
			return nil, fmt.Errorf("learner.learner_model_param.base_score: %g is not a probability", base)
		}
		e.Objective, e.Base = Logistic, math.Log(base/(1-base))
	case "binary:logitraw":
		e.Objective, e.Base = Logistic, base
	case "reg:squarederror", "reg:linear":
		e.Objective, e.Base = SquaredError, base
	case "count:poisson":
		if base <= 0 {
			return nil, fmt.Errorf("learner.learner_model_param.base_score: %g is not a positive mean", base)
		}
		e.Objective, e.Base = Poisson, math.Log(base)
	default:
		return nil, fmt.Errorf("learner.objective.name: objective %q is not supported (binary:logistic, binary:logitraw, reg:squarederror, count:poisson are)", l.Objective.Name)
	}
	imp := &Imported{Ensemble: e, Format: "xgboost", Version: versionString(m.Version)}
	if imp.FeatureNames, imp.FeatureCategorical, err = xgboostFeatures(l.FeatureNames, l.FeatureTypes, features); err != nil {
		return nil, err
	}
	for i, xt := range l.GradientBooster.Model.Trees {
		t, err := xt.convert(features)
		if err != nil {
			return nil, fmt.Errorf("learner.gradient_booster.model.trees[%d]: %w", i, err)
		}
		e.Trees = append(e.Trees, t)
	}
	if len(e.Trees) == 0 {
		return nil, errors.New("learner.gradient_booster.model.trees: the model has no trees")
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return imp, nil
}

func versionString(v []int) string {
	var b bytes.Buffer
	for i, p := range v {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(p))
	}
	return b.String()
}

func xgboostFeatures(names, types []string, n int) ([]string, []bool, error) {
	if len(names) != 0 && len(names) != n {
		return nil, nil, fmt.Errorf("learner.feature_names: %d names for %d features", len(names), n)
	}
	if len(types) != 0 && len(types) != n {
		return nil, nil, fmt.Errorf("learner.feature_types: %d types for %d features", len(types), n)
	}
	out := make([]string, n)
	cat := make([]bool, n)
	for i := range out {
		out[i] = fmt.Sprintf("f%d", i)
		if len(names) != 0 {
			out[i] = names[i]
		}
		if len(types) != 0 {
			switch types[i] {
			case "c":
				cat[i] = true
			case "float", "int", "i", "q":
			default:
				return nil, nil, fmt.Errorf("learner.feature_types[%d]: type %q is not supported", i, types[i])
			}
		}
	}
	return out, cat, nil
}

func (xt *xgboostTree) convert(features int) (Tree, error) {
	n := len(xt.Left)
	if n == 0 {
		return Tree{}, errors.New("no nodes")
	}
	for name, l := range map[string]int{"right_children": len(xt.Right), "split_conditions": len(xt.Conditions), "split_indices": len(xt.Indices), "default_left": len(xt.DefaultL)} {
		if l != n {
			return Tree{}, fmt.Errorf("%s: %d values for %d nodes", name, l, n)
		}
	}
	t := Tree{Nodes: make([]Node, n)}
	for i := range n {
		nd := Node{Left: xt.Left[i], Right: xt.Right[i], Feature: xt.Indices[i], CatSet: -1, DefaultLeft: xt.DefaultL[i] != 0}
		if len(xt.Hessian) == n {
			nd.Cover = xt.Hessian[i]
		}
		if nd.Left < 0 {
			nd.Left, nd.Right, nd.Feature, nd.Value = -1, -1, 0, xt.Conditions[i]
		} else {
			nd.Threshold = xt.Conditions[i]
		}
		t.Nodes[i] = nd
	}
	for k, node := range xt.CatNodes {
		if node < 0 || int(node) >= n || k >= len(xt.CatSegs) || k >= len(xt.CatSizes) {
			return Tree{}, fmt.Errorf("categories_nodes[%d]: node %d or its segment is out of range", k, node)
		}
		lo, size := xt.CatSegs[k], xt.CatSizes[k]
		if lo < 0 || size < 0 || lo+size > len(xt.Categories) {
			return Tree{}, fmt.Errorf("categories_segments[%d]: categories %d to %d of %d", k, lo, lo+size, len(xt.Categories))
		}
		var bits []uint64
		for _, c := range xt.Categories[lo : lo+size] {
			if c < 0 || c >= maxImportedCategory {
				return Tree{}, fmt.Errorf("categories: category %d of node %d is not between 0 and %d", c, node, maxImportedCategory-1)
			}
			for len(bits) <= c>>6 {
				bits = append(bits, 0)
			}
			bits[c>>6] |= 1 << (c & 63)
		}
		t.Nodes[node].CatSet = int32(len(t.CatSets))
		t.CatSets = append(t.CatSets, bits)
	}
	if len(xt.SplitType) == n {
		for i, st := range xt.SplitType {
			if st == 1 && t.Nodes[i].CatSet < 0 && !t.Nodes[i].IsLeaf() {
				return Tree{}, fmt.Errorf("split_type[%d]: a categorical split without categories", i)
			}
		}
	}
	return t, nil
}

// jsonNonFinite rewrites the bare NaN, Infinity and -Infinity that XGBoost writes (outside
// strings) as values encoding/json reads: null for NaN (a zero the reader never uses: it
// stands only where a categorical split has no threshold), ±1e308 for the infinities (±Inf
// once rounded to float32, as XGBoost compares).
func jsonNonFinite(b []byte) []byte {
	if !bytes.Contains(b, []byte("NaN")) && !bytes.Contains(b, []byte("Infinity")) {
		return b
	}
	out := make([]byte, 0, len(b))
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			out = append(out, c)
			switch c {
			case '\\':
				if i+1 < len(b) {
					i++
					out = append(out, b[i])
				}
			case '"':
				inString = false
			}
			continue
		}
		switch {
		case c == '"':
			inString = true
			out = append(out, c)
		case bytes.HasPrefix(b[i:], []byte("NaN")):
			out = append(out, "null"...)
			i += len("NaN") - 1
		case bytes.HasPrefix(b[i:], []byte("-Infinity")):
			out = append(out, "-1e308"...)
			i += len("-Infinity") - 1
		case bytes.HasPrefix(b[i:], []byte("Infinity")):
			out = append(out, "1e308"...)
			i += len("Infinity") - 1
		default:
			out = append(out, c)
		}
	}
	return out
}
