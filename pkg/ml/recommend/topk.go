package recommend

import "slices"

// topHeap keeps the k best (score, item) pairs seen, as a min-heap on (score, −item): the
// root is the worst kept pair, and between equal scores the lower item index is better.
type topHeap struct {
	k     int
	score []float32
	item  []int32
}

func (h *topHeap) reset(k int) {
	h.k = k
	h.score = h.score[:0]
	h.item = h.item[:0]
}

// full reports whether k pairs are kept; then min is the worst kept score.
func (h *topHeap) full() bool { return len(h.score) >= h.k }

func (h *topHeap) min() float32 { return h.score[0] }

// worse reports whether pair a ranks below pair b.
func (h *topHeap) worse(a, b int) bool {
	sa, sb := h.score[a], h.score[b]
	return sa < sb || (sa == sb && h.item[a] > h.item[b])
}

// push offers a pair; callers skip the pairs that cannot enter (score below a full heap's
// min) before calling, which keeps the scan loop tight.
func (h *topHeap) push(s float32, item int32) {
	if len(h.score) < h.k {
		h.score = append(h.score, s)
		h.item = append(h.item, item)
		for c := len(h.score) - 1; c > 0; {
			p := (c - 1) / 2
			if !h.worse(c, p) {
				break
			}
			h.swap(c, p)
			c = p
		}
		return
	}
	if s < h.score[0] || (s == h.score[0] && item > h.item[0]) {
		return
	}
	h.score[0], h.item[0] = s, item
	n := len(h.score)
	for p := 0; ; {
		c := 2*p + 1
		if c >= n {
			break
		}
		if c+1 < n && h.worse(c+1, c) {
			c++
		}
		if !h.worse(c, p) {
			break
		}
		h.swap(c, p)
		p = c
	}
}

func (h *topHeap) swap(a, b int) {
	h.score[a], h.score[b] = h.score[b], h.score[a]
	h.item[a], h.item[b] = h.item[b], h.item[a]
}

// sorted returns the kept pairs best first, emptying nothing.
func (h *topHeap) sorted() ([]int32, []float32) {
	idx := make([]int, len(h.score))
	for k := range idx {
		idx[k] = k
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case h.worse(b, a):
			return -1
		case h.worse(a, b):
			return 1
		}
		return 0
	})
	items, scores := make([]int32, len(idx)), make([]float32, len(idx))
	for k, i := range idx {
		items[k], scores[k] = h.item[i], h.score[i]
	}
	return items, scores
}
