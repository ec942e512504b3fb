package artifact

import (
	"fmt"
	"slices"

	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/gbt"
)

// treesIn returns the ensemble of a boosted-trees model, fitted or imported.
func treesIn(m ml.Model) (*gbt.Ensemble, bool) {
	switch e := m.(type) {
	case *gbt.Ensemble:
		return e, true
	case *gbt.Fitted:
		return e.Ensemble, true
	case *gbt.Imported:
		return e.Ensemble, true
	}
	return nil, false
}

var treeObjectives = map[gbt.Objective]modelv1.TreeObjective{
	gbt.Logistic:     modelv1.TreeObjective_TREE_OBJECTIVE_LOGISTIC,
	gbt.SquaredError: modelv1.TreeObjective_TREE_OBJECTIVE_SQUARED_ERROR,
	gbt.Poisson:      modelv1.TreeObjective_TREE_OBJECTIVE_POISSON,
}

// encodeTrees writes an ensemble as parallel node arrays, losslessly.
func encodeTrees(e *gbt.Ensemble) *modelv1.TreeEnsemble {
	out := &modelv1.TreeEnsemble{
		Objective:    treeObjectives[e.Objective],
		BaseMargin:   e.Base,
		FeatureCount: int32(e.Features),
		Rules:        modelv1.SplitRules_SPLIT_RULES_NATIVE,
	}
	if e.Rules == gbt.XGBoostRules {
		out.Rules = modelv1.SplitRules_SPLIT_RULES_XGBOOST
	}
	for ti := range e.Trees {
		t := &e.Trees[ti]
		n := len(t.Nodes)
		pt := &modelv1.Tree{
			Left: make([]int32, n), Right: make([]int32, n), Feature: make([]int32, n),
			Threshold: make([]float64, n), Value: make([]float64, n), Cover: make([]float64, n),
			DefaultLeft: make([]bool, n), CategorySet: make([]int32, n),
		}
		for i, nd := range t.Nodes {
			pt.Left[i], pt.Right[i], pt.Feature[i] = nd.Left, nd.Right, nd.Feature
			pt.Threshold[i], pt.Value[i], pt.Cover[i] = nd.Threshold, nd.Value, nd.Cover
			pt.DefaultLeft[i], pt.CategorySet[i] = nd.DefaultLeft, nd.CatSet
		}
		for _, set := range t.CatSets {
			pt.CategorySets = append(pt.CategorySets, &modelv1.CategorySet{Bits: slices.Clone(set)})
		}
		out.Trees = append(out.Trees, pt)
	}
	return out
}

// decodeTrees reads an ensemble back and checks that every walk through it ends.
func decodeTrees(p *modelv1.TreeEnsemble) (*gbt.Ensemble, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: no tree ensemble", ErrInvalid)
	}
	e := &gbt.Ensemble{Base: p.GetBaseMargin(), Features: int(p.GetFeatureCount())}
	found := false
	for o, po := range treeObjectives {
		if po == p.GetObjective() {
			e.Objective, found = o, true
		}
	}
	if !found {
		return nil, fmt.Errorf("%w: tree objective %v", ErrInvalid, p.GetObjective())
	}
	switch p.GetRules() {
	case modelv1.SplitRules_SPLIT_RULES_UNSPECIFIED, modelv1.SplitRules_SPLIT_RULES_NATIVE:
	case modelv1.SplitRules_SPLIT_RULES_XGBOOST:
		e.Rules = gbt.XGBoostRules
	default:
		return nil, fmt.Errorf("%w: split rules %v", ErrInvalid, p.GetRules())
	}
	for ti, pt := range p.GetTrees() {
		n := len(pt.GetLeft())
		for name, l := range map[string]int{"right": len(pt.GetRight()), "feature": len(pt.GetFeature()), "threshold": len(pt.GetThreshold()),
			"value": len(pt.GetValue()), "cover": len(pt.GetCover()), "default_left": len(pt.GetDefaultLeft()), "category_set": len(pt.GetCategorySet())} {
			if l != n {
				return nil, fmt.Errorf("%w: trees[%d].%s has %d values for %d nodes", ErrInvalid, ti, name, l, n)
			}
		}
		t := gbt.Tree{Nodes: make([]gbt.Node, n)}
		for i := range n {
			t.Nodes[i] = gbt.Node{
				Left: pt.GetLeft()[i], Right: pt.GetRight()[i], Feature: pt.GetFeature()[i],
				Threshold: pt.GetThreshold()[i], Value: pt.GetValue()[i], Cover: pt.GetCover()[i],
				DefaultLeft: pt.GetDefaultLeft()[i], CatSet: pt.GetCategorySet()[i],
			}
		}
		for _, set := range pt.GetCategorySets() {
			t.CatSets = append(t.CatSets, slices.Clone(set.GetBits()))
		}
		e.Trees = append(e.Trees, t)
	}
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return e, nil
}
