package gbt

import (
	"fmt"
	"math"

	"github.com/bullseye-ml/bullseye/pkg/ml/logistic"
	"gonum.org/v1/gonum/mat"
)

// Ensemble is a fitted boosted ensemble: the margin of a row is Base plus the value of the
// leaf it reaches in every tree.
type Ensemble struct {
	Objective Objective
	// Base is the margin before any tree.
	Base float64
	// Features is the number of input columns.
	Features int
	Trees    []Tree
	// Rules says how a split sends a value left.
	Rules Rules
}

// Rules is how splits route values.
type Rules int

const (
	// NativeRules: a numeric x ≤ Threshold goes left; a category in the set goes left, any
	// other right.
	NativeRules Rules = iota
	// XGBoostRules: x and Threshold are rounded to float32 and x < Threshold goes left; a
	// category in the set goes right, any other left. Imported XGBoost models use them.
	XGBoostRules
)

// Tree is one tree as a flat array of nodes; node 0 is the root.
type Tree struct {
	Nodes []Node
	// CatSets are the category sets of categorical splits, as bitsets over category codes.
	CatSets [][]uint64
}

// Node is a split or a leaf. A leaf has Left < 0.
type Node struct {
	Left, Right int32
	Feature     int32
	// CatSet is the index in Tree.CatSets of a categorical split's set, or −1: a category
	// in the set goes left, any other goes right.
	CatSet int32
	// DefaultLeft sends a missing value (NaN) left.
	DefaultLeft bool
	// Threshold: a numeric value x ≤ Threshold goes left.
	Threshold float64
	// Value is a leaf's contribution to the margin.
	Value float64
	// Cover is the number of training rows (or, for imported models, the hessian sum) that
	// reached the node.
	Cover float64
}

// IsLeaf reports whether the node is a leaf.
func (n *Node) IsLeaf() bool { return n.Left < 0 }

// goesLeft reports whether value v of the node's feature goes to its left child.
func (t *Tree) goesLeft(n *Node, v float64, rules Rules) bool {
	if math.IsNaN(v) {
		return n.DefaultLeft
	}
	if n.CatSet >= 0 {
		return t.inSet(n.CatSet, v) != (rules == XGBoostRules)
	}
	if rules == XGBoostRules {
		return float32(v) < float32(n.Threshold)
	}
	return v <= n.Threshold
}

func (t *Tree) inSet(set int32, v float64) bool {
	bits := t.CatSets[set]
	if v < 0 || v >= float64(64*len(bits)) || v != math.Trunc(v) {
		return false
	}
	c := int(v)
	return bits[c>>6]&(1<<(c&63)) != 0
}

// leaf returns the index of the leaf that row x reaches.
func (t *Tree) leaf(x []float64, rules Rules) int {
	k := int32(0)
	nodes := t.Nodes
	for {
		n := &nodes[k]
		if n.Left < 0 {
			return int(k)
		}
		if t.goesLeft(n, x[n.Feature], rules) {
			k = n.Left
		} else {
			k = n.Right
		}
	}
}

// Validate checks that the ensemble is well formed: every child index within its tree and
// below no ancestor (so that walks end), features within Features, category sets present.
func (e *Ensemble) Validate() error {
	if e.Features < 1 {
		return fmt.Errorf("features: %d", e.Features)
	}
	for ti := range e.Trees {
		t := &e.Trees[ti]
		if len(t.Nodes) == 0 {
			return fmt.Errorf("trees[%d]: no nodes", ti)
		}
		for ni := range t.Nodes {
			n := &t.Nodes[ni]
			if n.IsLeaf() {
				if math.IsNaN(n.Value) || math.IsInf(n.Value, 0) {
					return fmt.Errorf("trees[%d].nodes[%d]: leaf value %g is not finite", ti, ni, n.Value)
				}
				continue
			}
			if int(n.Left) <= ni || int(n.Right) <= ni || int(n.Left) >= len(t.Nodes) || int(n.Right) >= len(t.Nodes) {
				return fmt.Errorf("trees[%d].nodes[%d]: children %d and %d are not later nodes of the tree", ti, ni, n.Left, n.Right)
			}
			if n.Feature < 0 || int(n.Feature) >= e.Features {
				return fmt.Errorf("trees[%d].nodes[%d]: feature %d is not below %d", ti, ni, n.Feature, e.Features)
			}
			if n.CatSet >= int32(len(t.CatSets)) || n.CatSet < -1 {
				return fmt.Errorf("trees[%d].nodes[%d]: category set %d is not among the tree's %d", ti, ni, n.CatSet, len(t.CatSets))
			}
			if n.CatSet < 0 && math.IsNaN(n.Threshold) {
				return fmt.Errorf("trees[%d].nodes[%d]: threshold is NaN", ti, ni)
			}
		}
	}
	return nil
}

// Margins returns the margin of every row of x, scoring the batch tree by tree: each tree's
// nodes stay in cache while all rows pass through it.
func (e *Ensemble) Margins(x *mat.Dense) []float64 {
	r, c := x.Dims()
	if c != e.Features {
		panic(fmt.Sprintf("gbt: %d columns for a model of %d features", c, e.Features))
	}
	out := make([]float64, r)
	raw := x.RawMatrix()
	e.MarginsInto(raw.Data, raw.Stride, out)
	return out
}

// MarginsInto sets out[i] to the margin of row i of the row-major matrix data whose rows
// start stride values apart.
func (e *Ensemble) MarginsInto(data []float64, stride int, out []float64) {
	for i := range out {
		out[i] = e.Base
	}
	for ti := range e.Trees {
		t := &e.Trees[ti]
		for i := range out {
			row := data[i*stride : i*stride+e.Features]
			out[i] += t.Nodes[t.leaf(row, e.Rules)].Value
		}
	}
}

// Predict returns the prediction of every row: log-odds for Logistic, the value for
// SquaredError, the mean for Poisson.
func (e *Ensemble) Predict(x *mat.Dense) *mat.VecDense {
	m := e.Margins(x)
	if e.Objective == Poisson {
		for i, v := range m {
			m[i] = math.Exp(v)
		}
	}
	return mat.NewVecDense(len(m), m)
}

// PredictProba returns the probability of the positive class of a Logistic ensemble.
func (e *Ensemble) PredictProba(x *mat.Dense) *mat.VecDense {
	m := e.Margins(x)
	for i, v := range m {
		m[i] = logistic.Sigmoid(v)
	}
	return mat.NewVecDense(len(m), m)
}

// HasProbabilities reports whether PredictProba means anything: only for Logistic.
func (e *Ensemble) HasProbabilities() bool { return e.Objective == Logistic }

// NumFeatures returns the number of input columns.
func (e *Ensemble) NumFeatures() int { return e.Features }
