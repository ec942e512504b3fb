package gbt

import "github.com/bullseye-ml/bullseye/pkg/ml/internal/parallel"

// binsPerColumn is the width of a column's histogram: the value bins and the missing bin.
const binsPerColumn = MaxBins + 1

// stat is the gradient, hessian and row count of a set of rows.
type stat struct {
	g, h float64
	n    int
}

func (s stat) add(o stat) stat { return stat{s.g + o.g, s.h + o.h, s.n + o.n} }
func (s stat) sub(o stat) stat { return stat{s.g - o.g, s.h - o.h, s.n - o.n} }

// histogram holds binsPerColumn stats for every column, column after column. Only the
// columns a tree may split on are filled.
type histogram []stat

func (h histogram) column(j int) []stat {
	return h[j*binsPerColumn : (j+1)*binsPerColumn : (j+1)*binsPerColumn]
}

// gradPair is a row's gradient and hessian, stored side by side so that a node's rows read
// them in one sequential pass.
type gradPair struct{ g, h float64 }

// build fills h with the stats of rows over the columns cols; gh[i] belongs to rows[i].
// The columns are shared out among threads goroutines; each column is summed by one
// goroutine in row order, so the result does not depend on the number of threads.
func (h histogram) build(data *binned, cols []int, rows []int32, gh []gradPair, threads int) {
	parallel.Split(len(cols), min(threads, len(cols)), func(_, lo, hi int) {
		for _, j := range cols[lo:hi] {
			hc := h.column(j)
			clear(hc)
			col := data.cols[j]
			for i, r := range rows {
				e := &hc[col[r]]
				e.g += gh[i].g
				e.h += gh[i].h
				e.n++
			}
		}
	})
}

// subtract sets h to parent − sibling over the columns cols.
func (h histogram) subtract(parent, sibling histogram, cols []int) {
	for _, j := range cols {
		hc, pc, sc := h.column(j), parent.column(j), sibling.column(j)
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
