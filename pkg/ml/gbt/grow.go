package gbt

import "github.com/bullseye-ml/bullseye/pkg/ml/internal/parallel"

// grower grows one tree leaf-wise on the binned training rows.
type grower struct {
	data      *binned
	gh        []gradPair // every training row's gradient pair
	cols      []int      // the columns this tree may split on
	rules     splitRules
	maxLeaves int
	maxDepth  int
	shrink    float64
	team      *parallel.Team
	pool      *histPool

	idx []int32 // the tree's rows, partitioned in place leaf by leaf
	tmp []int32
}

// growing is a leaf of the tree being grown: rows idx[lo:hi] reach it.
type growing struct {
	node   int
	lo, hi int
	depth  int
	total  stat
	hist   histogram
	best   split
}

// grown is a leaf of the finished tree and the rows that reach it.
type grown struct {
	node   int
	lo, hi int
	value  float64
}

// grow fits a tree to the rows in g.idx. It returns the tree (in bins: thresholds are bin
// numbers until the caller converts them) and its leaves.
func (g *grower) grow() (*binTree, []grown) {
	t := &binTree{}
	root := &growing{node: t.add(), lo: 0, hi: len(g.idx)}
	root.hist = g.pool.get()
	g.buildHist(root)
	root.total = g.sumRows(root)
	g.findSplit(root)
	leaves := []*growing{root}
	for len(leaves) < g.maxLeaves {
		k := bestLeaf(leaves)
		if k < 0 {
			break
		}
		l, r := g.splitLeaf(t, leaves[k])
		leaves[k] = l
		leaves = append(leaves, r)
	}
	out := make([]grown, len(leaves))
	for i, l := range leaves {
		g.pool.put(l.hist)
		v := leafValue(l.total, g.rules.l2) * g.shrink
		t.nodes[l.node].value = v
		t.nodes[l.node].cover = float64(l.total.n)
		out[i] = grown{node: l.node, lo: l.lo, hi: l.hi, value: v}
	}
	return t, out
}

func bestLeaf(leaves []*growing) int {
	k := -1
	for i, l := range leaves {
		if l.best.gain > 0 && (k < 0 || l.best.gain > leaves[k].best.gain) {
			k = i
		}
	}
	return k
}

func (g *grower) sumRows(l *growing) stat {
	var s stat
	for _, r := range g.idx[l.lo:l.hi] {
		s = s.add(stat{g.gh[r].g, g.gh[r].h, 1})
	}
	return s
}

func (g *grower) buildHist(l *growing) {
	l.hist.build(g.data, g.cols, g.idx[l.lo:l.hi], g.gh, g.team)
}

func (g *grower) findSplit(l *growing) {
	l.best = split{}
	if g.maxDepth > 0 && l.depth >= g.maxDepth {
		return
	}
	if l.total.n < 2*max(g.rules.minSamplesLeaf, 1) {
		return
	}
	l.best = bestSplit(l.hist, g.cols, g.data, l.total, &g.rules)
}

// splitLeaf splits l by its best split: its rows are partitioned (stably) into the left
// and the right child; the smaller child's histogram is built and the larger's is the
// parent's less it.
func (g *grower) splitLeaf(t *binTree, l *growing) (*growing, *growing) {
	s := l.best
	mid := g.partition(l.lo, l.hi, &s)

	left := &growing{node: t.add(), lo: l.lo, hi: mid, depth: l.depth + 1, total: s.left}
	right := &growing{node: t.add(), lo: mid, hi: l.hi, depth: l.depth + 1, total: s.right}
	t.nodes[l.node].setSplit(s, left.node, right.node, float64(l.total.n))

	small, large := left, right
	if right.hi-right.lo < left.hi-left.lo {
		small, large = right, left
	}
	small.hist = g.pool.get()
	g.buildHist(small)
	large.hist = l.hist
	large.hist.subtract(l.hist, small.hist, g.cols, g.data.layout)
	g.findSplit(left)
	g.findSplit(right)
	return left, right
}

// parallelPartition is the least number of rows a node must have before its partition is
// shared out among goroutines.
const parallelPartition = 1 << 13

// partition orders g.idx[lo:hi] stably into the rows that s sends left, then those it
// sends right, and returns where the right ones begin. Large nodes are cut into pieces
// partitioned at once; the pieces' lefts, then their rights, are then put together.
func (g *grower) partition(lo, hi int, s *split) int {
	route := s.router()
	col := g.data.cols[s.col]
	parts := 1
	if hi-lo >= parallelPartition {
		parts = g.team.Size()
	}
	lefts := make([]int, parts)
	g.team.Split(hi-lo, parts, func(k, plo, phi int) {
		lefts[k] = partitionRows(g.idx[lo+plo:lo+phi], g.tmp[lo+plo:lo+phi], col, &route)
	})
	mid := lo
	for k := range parts {
		plo := lo + k*(hi-lo)/parts
		mid += copy(g.idx[mid:], g.idx[plo:plo+lefts[k]])
	}
	at := mid
	for k := range parts {
		plo, phi := lo+k*(hi-lo)/parts, lo+(k+1)*(hi-lo)/parts
		at += copy(g.idx[at:], g.tmp[plo:phi-lefts[k]])
	}
	return mid
}

// partitionRows moves the rows of idx that route sends left (route[bin] = 1) to its start,
// in order, and the others to the start of tmp, in order; it returns how many went left.
func partitionRows(idx, tmp []int32, col []uint8, route *[256]uint8) int {
	tmp = tmp[:len(idx)]
	left, right := 0, 0
	for _, r := range idx {
		goLeft := int(route[col[r]])
		idx[left] = r
		tmp[right] = r
		left += goLeft
		right += 1 - goLeft
	}
	return left
}

// binTree is a tree whose numeric thresholds are still bin numbers.
type binTree struct {
	nodes []binNode
}

type binNode struct {
	leaf        bool
	col         int
	split       split
	left, right int
	value       float64
	cover       float64
}

func (t *binTree) add() int {
	t.nodes = append(t.nodes, binNode{leaf: true})
	return len(t.nodes) - 1
}

func (n *binNode) setSplit(s split, left, right int, cover float64) {
	n.leaf = false
	n.col = s.col
	n.split = s
	n.left, n.right = left, right
	n.cover = cover
}

// leafOf returns the leaf that the binned row i of data reaches.
func (t *binTree) leafOf(data *binned, i int) int {
	k := 0
	for !t.nodes[k].leaf {
		n := &t.nodes[k]
		if n.split.goesLeft(data.cols[n.col][i]) {
			k = n.left
		} else {
			k = n.right
		}
	}
	return k
}
