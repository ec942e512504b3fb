package gbt

import "fmt"

// Explainer computes TreeSHAP contributions of an ensemble with what each row needs worked
// out once: the expected value and every tree's depth. It is safe for concurrent use.
type Explainer struct {
	e        *Ensemble
	depths   []int
	maxDepth int
	expected float64
}

// Explainer returns an explainer of e, which must not change afterwards.
func (e *Ensemble) Explainer() *Explainer {
	x := &Explainer{e: e, depths: make([]int, len(e.Trees)), expected: e.Base}
	for ti := range e.Trees {
		t := &e.Trees[ti]
		x.depths[ti] = t.depth(0)
		x.maxDepth = max(x.maxDepth, x.depths[ti])
		x.expected += t.expected(0)
	}
	return x
}

// ExpectedValue is the margin averaged over the training rows as the trees saw them
// (weighted by node cover): the base that contributions are measured from.
func (e *Ensemble) ExpectedValue() float64 { return e.Explainer().ExpectedValue() }

// Contributions is e.Explainer().Contributions, for one row.
func (e *Ensemble) Contributions(x []float64, phi []float64) { e.Explainer().Contributions(x, phi) }

// ExpectedValue is the margin averaged over the training rows as the trees saw them
// (weighted by node cover): the base that contributions are measured from.
func (x *Explainer) ExpectedValue() float64 { return x.expected }

// Contributions sets phi to the exact TreeSHAP attribution of every feature for row (Lundberg,
// Erion and Lee 2018, Algorithm 2, path-dependent): the contributions add up to the row's
// margin less ExpectedValue.
func (x *Explainer) Contributions(row []float64, phi []float64) {
	e := x.e
	if len(row) < e.Features || len(phi) != e.Features {
		panic(fmt.Sprintf("gbt: contributions of %d values into %d for %d features", len(row), len(phi), e.Features))
	}
	clear(phi)
	s := shapper{buf: make([]pathElement, pathStorage(x.maxDepth))}
	for ti := range e.Trees {
		s.recurse(&e.Trees[ti], row, phi, e.Rules, 0, 0, 0, 1, 1, -1)
	}
}

func (t *Tree) expected(k int32) float64 {
	n := &t.Nodes[k]
	if n.IsLeaf() {
		return n.Value
	}
	l, r := &t.Nodes[n.Left], &t.Nodes[n.Right]
	if n.Cover <= 0 {
		return (t.expected(n.Left) + t.expected(n.Right)) / 2
	}
	return (l.Cover*t.expected(n.Left) + r.Cover*t.expected(n.Right)) / n.Cover
}

// depth returns the depth of the subtree at node k (0 for a leaf).
func (t *Tree) depth(k int32) int {
	n := &t.Nodes[k]
	if n.IsLeaf() {
		return 0
	}
	return 1 + max(t.depth(n.Left), t.depth(n.Right))
}

// pathElement is an element of the unique path of features from the root to a node.
type pathElement struct {
	feature int
	zero    float64 // the share of cover along the path where the feature is left out
	one     float64 // 1 when x follows the path at the feature's splits, else 0
	weight  float64
}

// shapper holds the path storage of one row's recursion through a tree: each level copies
// its parent's path into a fresh segment.
type shapper struct {
	buf []pathElement
}

// pathStorage is the storage the recursion needs in a tree of the given depth: segments of
// 1, 2, ..., depth+2 elements.
func pathStorage(depth int) int { return (depth + 2) * (depth + 3) / 2 }

// recurse visits node k with the unique path stored at s.buf[start:start+depth] and extends
// it by the feature of the parent's split.
func (s *shapper) recurse(t *Tree, x, phi []float64, rules Rules, k int32, start, depth int, zero, one float64, feature int) {
	path := s.buf[start : start+depth+1]
	extend(path, depth, zero, one, feature)
	n := &t.Nodes[k]
	if n.IsLeaf() {
		for i := 1; i <= depth; i++ {
			w := unwoundSum(path, depth, i)
			el := path[i]
			phi[el.feature] += w * (el.one - el.zero) * n.Value
		}
		return
	}
	hot, cold := n.Right, n.Left
	if t.goesLeft(n, x[n.Feature], rules) {
		hot, cold = n.Left, n.Right
	}
	inZero, inOne := 1.0, 1.0
	f := int(n.Feature)
	for i := 0; i <= depth; i++ {
		if path[i].feature == f {
			inZero, inOne = path[i].zero, path[i].one
			unwind(path, depth, i)
			depth--
			break
		}
	}
	cover := n.Cover
	hotShare, coldShare := 0.5, 0.5
	if cover > 0 {
		hotShare, coldShare = t.Nodes[hot].Cover/cover, t.Nodes[cold].Cover/cover
	}
	next := start + len(path)
	for _, child := range [2]struct {
		k         int32
		zero, one float64
	}{{hot, hotShare * inZero, inOne}, {cold, coldShare * inZero, 0}} {
		copy(s.buf[next:next+depth+1], path[:depth+1])
		s.recurse(t, x, phi, rules, child.k, next, depth+1, child.zero, child.one, f)
	}
}

func extend(path []pathElement, depth int, zero, one float64, feature int) {
	w := 0.0
	if depth == 0 {
		w = 1
	}
	path[depth] = pathElement{feature: feature, zero: zero, one: one, weight: w}
	for i := depth - 1; i >= 0; i-- {
		path[i+1].weight += one * path[i].weight * float64(i+1) / float64(depth+1)
		path[i].weight = zero * path[i].weight * float64(depth-i) / float64(depth+1)
	}
}

func unwind(path []pathElement, depth, at int) {
	one, zero := path[at].one, path[at].zero
	next := path[depth].weight
	for i := depth - 1; i >= 0; i-- {
		if one != 0 {
			tmp := path[i].weight
			path[i].weight = next * float64(depth+1) / (float64(i+1) * one)
			next = tmp - path[i].weight*zero*float64(depth-i)/float64(depth+1)
		} else {
			path[i].weight = path[i].weight * float64(depth+1) / (zero * float64(depth-i))
		}
	}
	for i := at; i < depth; i++ {
		path[i].feature, path[i].zero, path[i].one = path[i+1].feature, path[i+1].zero, path[i+1].one
	}
}

func unwoundSum(path []pathElement, depth, at int) float64 {
	one, zero := path[at].one, path[at].zero
	next := path[depth].weight
	total := 0.0
	for i := depth - 1; i >= 0; i-- {
		switch {
		case one != 0:
			tmp := next * float64(depth+1) / (float64(i+1) * one)
			total += tmp
			next = path[i].weight - tmp*zero*float64(depth-i)/float64(depth+1)
		case zero != 0:
			total += path[i].weight / zero / (float64(depth-i) / float64(depth+1))
		}
	}
	return total
}
