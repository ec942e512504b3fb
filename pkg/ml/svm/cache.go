package svm

// rowCache is LIBSVM's kernel cache: an LRU cache of rows of Q, each row a prefix
// Q[i][0:len) that grows on demand, within a budget of float32 entries. Rows are indexed by
// position in the solver's permuted order; swap follows the solver's swaps.
type rowCache struct {
	l          int
	budget     int // entries still free
	data       [][]float32
	length     []int
	prev, next []int // LRU list over indices; l is the sentinel
	spare      []float32
}

func newRowCache(l int, bytes int) *rowCache {
	c := &rowCache{
		l:      l,
		budget: max(bytes/4, 2*l), // always room for two full rows
		data:   make([][]float32, l),
		length: make([]int, l),
		prev:   make([]int, l+1),
		next:   make([]int, l+1),
	}
	c.prev[l], c.next[l] = l, l
	return c
}

func (c *rowCache) unlink(i int) {
	c.next[c.prev[i]] = c.next[i]
	c.prev[c.next[i]] = c.prev[i]
}

func (c *rowCache) pushBack(i int) {
	c.next[i] = c.l
	c.prev[i] = c.prev[c.l]
	c.next[c.prev[c.l]] = i
	c.prev[c.l] = i
}

func (c *rowCache) evict(i int) {
	c.unlink(i)
	c.budget += c.l
	c.spare = c.data[i]
	c.data[i] = nil
	c.length[i] = 0
}

// get returns row i, valid on [0, start) already, and to be filled by the caller on
// [start, n). The row has capacity l.
func (c *rowCache) get(i, n int) (row []float32, start int) {
	if c.length[i] > 0 {
		c.unlink(i)
	}
	start = c.length[i]
	if c.data[i] == nil {
		for c.budget < c.l {
			c.evict(c.next[c.l])
		}
		c.budget -= c.l
		if c.spare != nil {
			c.data[i], c.spare = c.spare, nil
		} else {
			c.data[i] = make([]float32, c.l)
		}
	}
	if n > start {
		c.length[i] = n
	}
	c.pushBack(i)
	return c.data[i], start
}

// swap exchanges the rows of indices i and j. The entries i and j inside the cached rows
// are exchanged later, by permute, so that a batch of swaps visits each cached row once.
func (c *rowCache) swap(i, j int) {
	if i == j {
		return
	}
	if c.length[i] > 0 {
		c.unlink(i)
	}
	if c.length[j] > 0 {
		c.unlink(j)
	}
	c.data[i], c.data[j] = c.data[j], c.data[i]
	c.length[i], c.length[j] = c.length[j], c.length[i]
	if c.length[i] > 0 {
		c.pushBack(i)
	}
	if c.length[j] > 0 {
		c.pushBack(j)
	}
}

// permute applies a sequence of swaps, in order, to the entries of every cached row, as if
// each swap had been applied to every row in turn: a row whose prefix covers both indices
// of a swap has them exchanged; a row covering only the smaller one is evicted.
func (c *rowCache) permute(pairs [][2]int) {
	if len(pairs) == 0 {
		return
	}
	for h := c.next[c.l]; h != c.l; {
		nx := c.next[h]
		row, n := c.data[h], c.length[h]
		for _, p := range pairs {
			i, j := min(p[0], p[1]), max(p[0], p[1])
			if n <= i {
				continue
			}
			if n <= j {
				c.evict(h)
				break
			}
			row[i], row[j] = row[j], row[i]
		}
		h = nx
	}
}
