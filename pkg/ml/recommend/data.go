package recommend

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Interaction is one user–item pair's value, as the feature service's ExportInteractions
// streams it: a rating (explicit feedback) or summed event weights (implicit feedback).
type Interaction struct {
	User  string
	Item  string
	Value float64
	// Time is the pair's last event time in Unix seconds; 0 when unknown.
	Time int64
}

// Interactions is a set of user–item pairs with one value each, in columns. Users and items
// are numbered by their position in UserIDs and ItemIDs; row r is the pair (Users[r],
// Items[r]) with value Values[r] at time Times[r]. A (user, item) pair appears at most once.
// Subsets and splits share the id lists of the set they come from, so a user's index means
// the same user in all of them; models keep only the users and items that have training rows.
type Interactions struct {
	UserIDs []string
	ItemIDs []string
	Users   []int32
	Items   []int32
	Values  []float64
	// Times holds one Unix time per row, or is nil.
	Times []int64
}

// NewInteractions indexes rows, numbering users and items in order of first appearance. It
// fails on an empty id, a value that is not finite, or a (user, item) pair given twice.
func NewInteractions(rows []Interaction) (*Interactions, error) {
	d := &Interactions{
		Users:  make([]int32, len(rows)),
		Items:  make([]int32, len(rows)),
		Values: make([]float64, len(rows)),
		Times:  make([]int64, len(rows)),
	}
	users, items := map[string]int32{}, map[string]int32{}
	index := func(ids *[]string, m map[string]int32, id string) int32 {
		k, ok := m[id]
		if !ok {
			k = int32(len(*ids))
			m[id] = k
			*ids = append(*ids, id)
		}
		return k
	}
	for r, x := range rows {
		if x.User == "" || x.Item == "" {
			return nil, fmt.Errorf("interactions: row %d has an empty user or item id", r)
		}
		d.Users[r] = index(&d.UserIDs, users, x.User)
		d.Items[r] = index(&d.ItemIDs, items, x.Item)
		d.Values[r], d.Times[r] = x.Value, x.Time
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// Len returns the number of rows.
func (d *Interactions) Len() int { return len(d.Users) }

// Validate checks that the columns have one entry per row, indexes are in range, values are
// finite and no (user, item) pair appears twice.
func (d *Interactions) Validate() error {
	n := len(d.Users)
	if len(d.Items) != n || len(d.Values) != n || (d.Times != nil && len(d.Times) != n) {
		return fmt.Errorf("interactions: columns of %d users, %d items, %d values and %d times",
			n, len(d.Items), len(d.Values), len(d.Times))
	}
	if len(d.UserIDs) > math.MaxInt32 || len(d.ItemIDs) > math.MaxInt32 {
		return errors.New("interactions: more than 2³¹ − 1 users or items")
	}
	nu, ni := int32(len(d.UserIDs)), int32(len(d.ItemIDs))
	for r := range n {
		if u, i := d.Users[r], d.Items[r]; u < 0 || u >= nu || i < 0 || i >= ni {
			return fmt.Errorf("interactions: row %d: user %d or item %d out of range (%d users, %d items)", r, u, i, nu, ni)
		}
		if v := d.Values[r]; math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("interactions: row %d: value %v", r, v)
		}
	}
	byUser := newCSR(len(d.UserIDs), d.Users, d.Items, nil)
	for u := range len(d.UserIDs) {
		items := byUser.idx[byUser.ptr[u]:byUser.ptr[u+1]]
		for k := 1; k < len(items); k++ {
			if items[k] == items[k-1] {
				return fmt.Errorf("interactions: user %q has item %q twice", d.UserIDs[u], d.ItemIDs[items[k]])
			}
		}
	}
	return nil
}

// Subset returns the given rows, in that order, sharing the id lists.
func (d *Interactions) Subset(rows []int) *Interactions {
	out := &Interactions{
		UserIDs: d.UserIDs, ItemIDs: d.ItemIDs,
		Users: make([]int32, len(rows)), Items: make([]int32, len(rows)), Values: make([]float64, len(rows)),
	}
	if d.Times != nil {
		out.Times = make([]int64, len(rows))
	}
	for k, r := range rows {
		out.Users[k], out.Items[k], out.Values[k] = d.Users[r], d.Items[r], d.Values[r]
		if d.Times != nil {
			out.Times[k] = d.Times[r]
		}
	}
	return out
}

func (d *Interactions) split(isTest func(r int) bool) (train, test *Interactions) {
	var tr, te []int
	for r := range d.Users {
		if isTest(r) {
			te = append(te, r)
		} else {
			tr = append(tr, r)
		}
	}
	return d.Subset(tr), d.Subset(te)
}

// SplitRandom holds out a share of the pairs for testing: a pair is test when a hash of its
// user id, item id and seed falls below testFraction, so the split does not depend on row
// order and a pair lands on the same side in any export that contains it.
func (d *Interactions) SplitRandom(testFraction float64, seed uint64) (train, test *Interactions, err error) {
	tr, te, err := d.RandomSplitRows(testFraction, seed)
	if err != nil {
		return nil, nil, err
	}
	return d.Subset(tr), d.Subset(te), nil
}

// RandomSplitRows returns the rows SplitRandom puts in training and in test, ascending.
func (d *Interactions) RandomSplitRows(testFraction float64, seed uint64) (train, test []int, err error) {
	if !(testFraction > 0 && testFraction < 1) {
		return nil, nil, fmt.Errorf("random split: test fraction %v, want it in (0, 1)", testFraction)
	}
	for r := range d.Users {
		h := pairHash(d.UserIDs[d.Users[r]], d.ItemIDs[d.Items[r]], seed)
		if float64(h>>11)/(1<<53) < testFraction {
			test = append(test, r)
		} else {
			train = append(train, r)
		}
	}
	return train, test, nil
}

// SplitLastPerUser holds out each user's n latest pairs (by time, then by row order); users
// with no more than n pairs stay entirely in training.
func (d *Interactions) SplitLastPerUser(n int) (train, test *Interactions, err error) {
	if n < 1 {
		return nil, nil, fmt.Errorf("last-per-user split: n = %d, want at least 1", n)
	}
	if d.Times == nil {
		return nil, nil, errors.New("last-per-user split: the interactions have no times")
	}
	byUser := newCSR(len(d.UserIDs), d.Users, nil, nil)
	isTest := make([]bool, d.Len())
	for u := range len(d.UserIDs) {
		rows := byUser.rows[byUser.ptr[u]:byUser.ptr[u+1]]
		if len(rows) <= n {
			continue
		}
		rows = slices.Clone(rows)
		slices.SortStableFunc(rows, func(a, b int32) int { return cmp.Compare(d.Times[a], d.Times[b]) })
		for _, r := range rows[len(rows)-n:] {
			isTest[r] = true
		}
	}
	train, test = d.split(func(r int) bool { return isTest[r] })
	return train, test, nil
}

// SplitByTime holds out the pairs whose time is at or after start.
func (d *Interactions) SplitByTime(start int64) (train, test *Interactions, err error) {
	if d.Times == nil {
		return nil, nil, errors.New("time split: the interactions have no times")
	}
	train, test = d.split(func(r int) bool { return d.Times[r] >= start })
	return train, test, nil
}

// Prune drops the rows of users with fewer than minUser rows, then the rows of items with
// fewer than minItem of the remaining rows (one pass each, not repeated to a fixed point); 0
// keeps everyone. The id lists are shared.
func (d *Interactions) Prune(minUser, minItem int) *Interactions {
	keep := make([]bool, d.Len())
	for r := range keep {
		keep[r] = true
	}
	drop := func(index []int32, n, minCount int) {
		if minCount <= 1 {
			return
		}
		count := make([]int, n)
		for r, k := range index {
			if keep[r] {
				count[k]++
			}
		}
		for r, k := range index {
			keep[r] = keep[r] && count[k] >= minCount
		}
	}
	drop(d.Users, len(d.UserIDs), minUser)
	drop(d.Items, len(d.ItemIDs), minItem)
	var rows []int
	for r, k := range keep {
		if k {
			rows = append(rows, r)
		}
	}
	return d.Subset(rows)
}

// pairHash mixes a (user, item) pair and a seed into 64 bits: FNV-1a over the ids, finished
// by the splitmix64 mixer.
func pairHash(user, item string, seed uint64) uint64 {
	h := uint64(14695981039346656037) ^ seed
	for _, s := range [2]string{user, item} {
		for k := 0; k < len(s); k++ {
			h = (h ^ uint64(s[k])) * 1099511628211
		}
		h = (h ^ 0xff) * 1099511628211 // separator: ("ab", "c") and ("a", "bc") differ
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}

// csr is a sparse matrix by rows: row k's entries are idx[ptr[k]:ptr[k+1]], ascending, with
// values val (nil when not asked for) and the input rows they came from.
type csr struct {
	ptr  []int
	idx  []int32
	val  []float64
	rows []int32
}

// newCSR groups entries (row[r], col[r], val[r]) by row, sorting each row's columns. col and
// val may be nil.
func newCSR(n int, row, col []int32, val []float64) csr {
	m := csr{ptr: make([]int, n+1), rows: make([]int32, len(row))}
	for _, k := range row {
		m.ptr[k+1]++
	}
	for k := range n {
		m.ptr[k+1] += m.ptr[k]
	}
	next := slices.Clone(m.ptr[:n])
	for r, k := range row {
		m.rows[next[k]] = int32(r)
		next[k]++
	}
	if col == nil {
		return m
	}
	m.idx = make([]int32, len(row))
	for k := range n {
		seg := m.rows[m.ptr[k]:m.ptr[k+1]]
		slices.SortFunc(seg, func(a, b int32) int { return cmp.Compare(col[a], col[b]) })
	}
	for p, r := range m.rows {
		m.idx[p] = col[r]
	}
	if val != nil {
		m.val = make([]float64, len(row))
		for p, r := range m.rows {
			m.val[p] = val[r]
		}
	}
	return m
}

// problem is a training set compacted to the users and items that have rows, in both
// orientations.
type problem struct {
	userIDs, itemIDs []string
	byUser, byItem   csr
	// mean, lo and hi are the mean, smallest and largest values.
	mean, lo, hi float64
}

func newProblem(d *Interactions) (*problem, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	if d.Len() == 0 {
		return nil, errors.New("no interactions")
	}
	compact := func(index []int32, ids []string) ([]int32, []string) {
		remap := make([]int32, len(ids))
		for k := range remap {
			remap[k] = -1
		}
		for _, k := range index {
			remap[k] = 0
		}
		var kept []string
		for k, v := range remap {
			if v == 0 {
				remap[k] = int32(len(kept))
				kept = append(kept, ids[k])
			}
		}
		out := make([]int32, len(index))
		for r, k := range index {
			out[r] = remap[k]
		}
		return out, kept
	}
	users, userIDs := compact(d.Users, d.UserIDs)
	items, itemIDs := compact(d.Items, d.ItemIDs)
	p := &problem{
		userIDs: userIDs, itemIDs: itemIDs,
		byUser: newCSR(len(userIDs), users, items, d.Values),
		byItem: newCSR(len(itemIDs), items, users, d.Values),
		lo:     math.Inf(1), hi: math.Inf(-1),
	}
	for _, v := range d.Values {
		p.mean += v
		p.lo, p.hi = min(p.lo, v), max(p.hi, v)
	}
	p.mean /= float64(d.Len())
	return p, nil
}

func (p *problem) nnz() int { return len(p.byUser.idx) }
