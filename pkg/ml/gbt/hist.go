package gbt

import "github.com/bullseye-ml/bullseye/pkg/ml/internal/parallel"

// stat is the gradient, hessian and row count of a set of rows.
type stat struct {
	g, h float64
	n    int
}

func (s stat) add(o stat) stat { return stat{s.g + o.g, s.h + o.h, s.n + o.n} }
func (s stat) sub(o stat) stat { return stat{s.g - o.g, s.h - o.h, s.n - o.n} }

// histogram holds the stats of every bin of every column, laid out by a layout. Only the
// columns a tree may split on are filled.
type histogram []stat

// layout places the columns' bins in a histogram: column j's value bins from off[j], its
// missing bin last, before off[j+1]. A column takes as many stats as it has bins.
type layout struct{ off []int }

func newLayout(binners []*binner) layout {
	off := make([]int, len(binners)+1)
	for j, b := range binners {
		off[j+1] = off[j] + b.bins() + 1
	}
	return layout{off}
}

func (l layout) size() int { return l.off[len(l.off)-1] }

func (l layout) column(h histogram, j int) []stat {
	return h[l.off[j]:l.off[j+1]:l.off[j+1]]
}

// gradPair is a row's gradient and hessian.
type gradPair struct{ g, h float64 }

// parallelCells is the least number of (row, column) cells a histogram must have before
// its columns are shared out among goroutines.
const parallelCells = 1 << 15

// parallelRows is the least number of rows a per-row loop must have before its rows are
// shared out among goroutines.
const parallelRows = 1 << 12

// build fills h with the stats of rows over the columns cols; gh is indexed by row. Each
// goroutine sums a share of the columns over all the rows in their order, so the result
// does not depend on the number of threads. Rows are read whole: a row's updates go to
// different columns and do not wait for each other, as a column's successive rows, often
// in one bin, would.
func (h histogram) build(data *binned, cols []int, rows []int32, gh []gradPair, team *parallel.Team) {
	parts := min(team.Size(), len(cols))
	if len(rows)*len(cols) < parallelCells {
		parts = 1
	}
	team.Split(len(cols), parts, func(_, lo, hi int) {
		mine := cols[lo:hi]
		for _, j := range mine {
			clear(data.column(h, j))
		}
		if first, last := mine[0], mine[len(mine)-1]; last-first == len(mine)-1 {
			h.addSpan(data, first, last+1, rows, gh)
			return
		}
		h.addColumns(data, mine, rows, gh)
	})
}

// addSpan adds the rows to the bins of the columns [c0, c1).
func (h histogram) addSpan(data *binned, c0, c1 int, rows []int32, gh []gradPair) {
	off := data.off[c0:c1]
	for _, r := range rows {
		bins, p := data.row(r)[c0:c1], gh[r]
		off := off[:len(bins)]
		for k, b := range bins {
			e := &h[off[k]+int(b)]
			e.g += p.g
			e.h += p.h
			e.n++
		}
	}
}

// addColumns adds the rows to the bins of the columns cols.
func (h histogram) addColumns(data *binned, cols []int, rows []int32, gh []gradPair) {
	off := data.off
	for _, r := range rows {
		bins, p := data.row(r), gh[r]
		for _, j := range cols {
			e := &h[off[j]+int(bins[j])]
			e.g += p.g
			e.h += p.h
			e.n++
		}
	}
}

// subtract sets h to parent − sibling over the columns cols.
func (h histogram) subtract(parent, sibling histogram, cols []int, l layout) {
	for _, j := range cols {
		hc, pc, sc := l.column(h, j), l.column(parent, j), l.column(sibling, j)
		for b := range hc {
			hc[b] = pc[b].sub(sc[b])
		}
	}
}

// histPool reuses histograms of one size.
type histPool struct {
	size int
	free []histogram
}

func (p *histPool) get() histogram {
	if n := len(p.free); n > 0 {
		h := p.free[n-1]
		p.free = p.free[:n-1]
		return h
	}
	return make(histogram, p.size)
}

func (p *histPool) put(h histogram) {
	if h != nil {
		p.free = append(p.free, h)
	}
}
