package recommend

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/bullseye-ml/bullseye/pkg/ml/internal/parallel"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// Scorer recommends items from a fitted model: it holds the model's id maps and its factors
// laid out for scoring. Recommend scores a batch of users with one blocked matrix product of
// their factor rows and the item factors, each block of products scanned at once by a per-user
// top-k heap that skips the items the user already has and any filtered out; RecommendOne
// scores one user with a matrix–vector product. A Scorer is safe for concurrent use.
type Scorer struct {
	f         *Factors
	users     map[string]int32
	items     map[string]int32 // catalogue index by item id
	catalogue []string         // the model's items, then popular items it has no factors for
	nf        int              // items with factors: catalogue[:nf]
	k         int              // Rank + 1: factor rows carry the item bias and a constant 1
	userRows  []float32        // len(UserIDs) × k: p_u and 1
	userConst []float64        // GlobalBias + b_u
	itemRows  []float32        // nf × k: q_i and b_i
	panels    []float32        // itemRows packed in panels of nr items: k rows of nr values
	popular   []int32          // catalogue indexes, most popular first
	popScore  []float64
	clip      bool
	lo, hi    float64
	work      sync.Pool // *blockWork
}

// Query asks for one user's recommendations.
type Query struct {
	// User is the user's id; unknown users get the model's popularity ranking.
	User string
	// K is the number of items wanted; fewer come back when fewer items qualify, none when
	// K < 1.
	K int
	// Allowed, when non-empty, restricts the candidates to these items; unknown ids are
	// ignored.
	Allowed []string
	// Excluded items are never recommended; unknown ids are ignored.
	Excluded []string
	// IncludeSeen also recommends the items the user had in training.
	IncludeSeen bool
}

// Recommendation is the answer to one query: the items, best first, and their scores (the
// predicted rating for explicit models, clipped to the model's rating range; the preference
// score for implicit ones; the popularity score for the fallback).
type Recommendation struct {
	Items  []string
	Scores []float64
	// Fallback is true when the user was unknown and the list is the popularity ranking.
	Fallback bool
}

// NewScorer validates f and lays it out for scoring. The Scorer keeps f, which must not be
// modified afterwards.
func NewScorer(f *Factors) (*Scorer, error) {
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("scorer: %w", err)
	}
	nu, nf, rank := len(f.UserIDs), len(f.ItemIDs), f.Rank
	k := rank + 1
	s := &Scorer{
		f: f, nf: nf, k: k,
		users: make(map[string]int32, nu), items: make(map[string]int32, nf),
		catalogue: slices.Clip(f.ItemIDs),
		userRows:  make([]float32, nu*k), userConst: make([]float64, nu),
		itemRows: make([]float32, nf*k),
		clip:     f.MinRating != 0 || f.MaxRating != 0, lo: f.MinRating, hi: f.MaxRating,
	}
	for u, id := range f.UserIDs {
		s.users[id] = int32(u)
		copy(s.userRows[u*k:u*k+rank], f.UserFactors[u*rank:u*rank+rank])
		s.userRows[u*k+rank] = 1
		s.userConst[u] = f.GlobalBias
		if len(f.UserBiases) > 0 {
			s.userConst[u] += float64(f.UserBiases[u])
		}
	}
	for i, id := range f.ItemIDs {
		s.items[id] = int32(i)
		copy(s.itemRows[i*k:i*k+rank], f.ItemFactors[i*rank:i*rank+rank])
		if len(f.ItemBiases) > 0 {
			s.itemRows[i*k+rank] = f.ItemBiases[i]
		}
	}
	np := (nf + nr - 1) / nr
	s.panels = make([]float32, np*k*nr)
	for i := range nf {
		pn, c := i/nr, i%nr
		for p := range k {
			s.panels[pn*k*nr+p*nr+c] = s.itemRows[i*k+p]
		}
	}
	for r, id := range f.Popularity.ItemIDs {
		i, ok := s.items[id]
		if !ok {
			i = int32(len(s.catalogue))
			s.items[id] = i
			s.catalogue = append(s.catalogue, id)
		}
		s.popular = append(s.popular, i)
		s.popScore = append(s.popScore, f.Popularity.Scores[r])
	}
	return s, nil
}

// Factors returns the model the Scorer was built from.
func (s *Scorer) Factors() *Factors { return s.f }

// UserIndex returns the row of a known user.
func (s *Scorer) UserIndex(id string) (int, bool) {
	u, ok := s.users[id]
	return int(u), ok
}

// ItemIndex returns the index of an item in the Scorer's catalogue: the model's items
// (those with factors) first, then the popular items it has no factors for.
func (s *Scorer) ItemIndex(id string) (int, bool) {
	i, ok := s.items[id]
	return int(i), ok
}

// Catalogue returns the ids of the items the Scorer can recommend, by catalogue index.
func (s *Scorer) Catalogue() []string { return s.catalogue }

// Predict returns the model's score of a (user, item) pair, clipped for explicit models.
// known is false when the user or the item has no factors; the score then falls back to
// the global and the known biases (0 for implicit models).
func (s *Scorer) Predict(user, item string) (score float64, known bool) {
	u, uok := s.users[user]
	i, iok := s.items[item]
	iok = iok && int(i) < s.nf
	return s.predict(int(u), int(i), uok, iok), uok && iok
}

func (s *Scorer) predict(u, i int, uok, iok bool) float64 {
	v := s.f.GlobalBias
	switch {
	case uok && iok:
		k := s.k
		var d float32
		ur, ir := s.userRows[u*k:u*k+k], s.itemRows[i*k:i*k+k]
		for p, x := range ur {
			d += x * ir[p]
		}
		v = s.userConst[u] + float64(d)
	case uok:
		v = s.userConst[u]
	case iok:
		v += float64(s.itemRows[i*s.k+s.k-1])
	}
	return s.clamp(v)
}

func (s *Scorer) clamp(v float64) float64 {
	if s.clip {
		v = min(max(v, s.lo), s.hi)
	}
	return v
}

// iquery is a Query resolved to indexes.
type iquery struct {
	user        int32 // −1 when unknown
	k           int
	restrict    bool    // only allowed items are candidates
	allowed     []int32 // ascending catalogue indexes
	excluded    []int32 // ascending catalogue indexes
	includeSeen bool
}

// result is the answer to an iquery, with catalogue indexes.
type result struct {
	items    []int32
	scores   []float64
	fallback bool
}

func (s *Scorer) resolve(q Query) iquery {
	iq := iquery{user: -1, k: q.K, includeSeen: q.IncludeSeen, restrict: len(q.Allowed) > 0}
	if u, ok := s.users[q.User]; ok {
		iq.user = u
	}
	ids := func(list []string) []int32 {
		var out []int32
		for _, id := range list {
			if i, ok := s.items[id]; ok {
				out = append(out, i)
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	iq.allowed, iq.excluded = ids(q.Allowed), ids(q.Excluded)
	return iq
}

func (s *Scorer) answer(r result) Recommendation {
	out := Recommendation{Items: make([]string, len(r.items)), Scores: r.scores, Fallback: r.fallback}
	for k, i := range r.items {
		out.Items[k] = s.catalogue[i]
	}
	return out
}

// Recommend answers a batch of queries; the answers are in query order. The users known to
// the model are scored together in one blocked matrix product, in parallel on up to
// GOMAXPROCS goroutines; unknown users get the popularity ranking, filtered the same way.
func (s *Scorer) Recommend(qs []Query) []Recommendation {
	iqs := make([]iquery, len(qs))
	for q := range qs {
		iqs[q] = s.resolve(qs[q])
	}
	rs := s.topK(iqs)
	out := make([]Recommendation, len(qs))
	for q := range rs {
		out[q] = s.answer(rs[q])
	}
	return out
}

// RecommendOne answers one query on the calling goroutine, scoring a known user with one
// matrix–vector product (gonum's Sgemv) over all items: the one-user-at-a-time path.
func (s *Scorer) RecommendOne(q Query) Recommendation {
	return s.answer(s.one(s.resolve(q)))
}

func (s *Scorer) one(q iquery) result {
	if q.k < 1 {
		return result{}
	}
	if q.user < 0 || s.f.Rank == 0 || s.nf == 0 {
		return s.popularTop(q)
	}
	w := s.getWork()
	defer s.work.Put(w)
	if cap(w.row) < s.nf {
		w.row = make([]float32, s.nf)
	}
	row := w.row[:s.nf]
	u := int(q.user)
	blas32.Gemv(blas.NoTrans, 1, blas32.General{Rows: s.nf, Cols: s.k, Stride: s.k, Data: s.itemRows},
		blas32.Vector{N: s.k, Inc: 1, Data: s.userRows[u*s.k : u*s.k+s.k]}, 0,
		blas32.Vector{N: s.nf, Inc: 1, Data: row})
	var h topHeap
	h.reset(q.k)
	st := s.newScan(q)
	st.scan(row, 0, &h)
	return s.finish(q, &h)
}

// finish turns a user's heap into a result with the user's constant added.
func (s *Scorer) finish(q iquery, h *topHeap) result {
	items, sc := h.sorted()
	r := result{items: items, scores: make([]float64, len(items))}
	c := s.userConst[q.user]
	for k, v := range sc {
		r.scores[k] = s.clamp(c + float64(v))
	}
	return r
}

// popularTop answers a query from the popularity ranking, skipping a known user's seen items
// unless asked to include them.
func (s *Scorer) popularTop(q iquery) result {
	r := result{fallback: q.user < 0}
	if q.k < 1 {
		return r
	}
	var seen []uint32
	if q.user >= 0 && !q.includeSeen {
		seen = s.f.Seen(int(q.user))
	}
	for p, i := range s.popular {
		if q.restrict {
			if _, ok := slices.BinarySearch(q.allowed, i); !ok {
				continue
			}
		}
		if _, ok := slices.BinarySearch(q.excluded, i); ok {
			continue
		}
		if _, ok := slices.BinarySearch(seen, uint32(i)); ok && int(i) < s.nf {
			continue
		}
		r.items = append(r.items, i)
		r.scores = append(r.scores, s.popScore[p])
		if len(r.items) == q.k {
			break
		}
	}
	return r
}

// scanState walks one user's candidate items in ascending order across the blocks of a
// product, with cursors into the user's sorted allowed, seen and excluded lists.
type scanState struct {
	restrict          bool
	allowed, excluded []int32
	seen              []uint32
	pa, ps, px        int
}

func (s *Scorer) newScan(q iquery) scanState {
	st := scanState{restrict: q.restrict, allowed: q.allowed, excluded: q.excluded}
	if !q.includeSeen {
		st.seen = s.f.Seen(int(q.user))
	}
	return st
}

// skip reports whether item i, at or after every item asked before, is seen or excluded.
func (st *scanState) skip(i int32) bool {
	for st.ps < len(st.seen) && int32(st.seen[st.ps]) < i {
		st.ps++
	}
	if st.ps < len(st.seen) && int32(st.seen[st.ps]) == i {
		return true
	}
	ex := st.excluded
	for st.px < len(ex) && ex[st.px] < i {
		st.px++
	}
	return st.px < len(ex) && ex[st.px] == i
}

// scan offers the scores row of items lo, lo+1, ... to h.
func (st *scanState) scan(row []float32, lo int, h *topHeap) {
	hi := int32(lo + len(row))
	if st.restrict {
		al := st.allowed
		for st.pa < len(al) && int(al[st.pa]) < lo { // a part of the items may start past them
			st.pa++
		}
		for ; st.pa < len(al) && al[st.pa] < hi; st.pa++ {
			i := al[st.pa]
			v := row[int(i)-lo]
			if h.full() && v <= h.min() {
				continue
			}
			if !st.skip(i) {
				h.push(v, i)
			}
		}
		return
	}
	thr := float32(math.Inf(-1))
	if h.full() {
		thr = h.min()
	}
	for j, v := range row {
		if v <= thr {
			continue
		}
		i := int32(lo + j)
		if st.skip(i) {
			continue
		}
		h.push(v, i)
		if h.full() {
			thr = h.min()
		}
	}
}

// Blocking of the batched product: users in blocks of blockUsers (whole micro-panels), items
// in chunks of chunkPanels panels, so that a block's packed user rows and a chunk's score
// block stay in cache while the item panels stream through.
const (
	blockUsers  = 8 * mr
	chunkPanels = 32
)

// blockWork is one goroutine's scratch space.
type blockWork struct {
	a     []float32 // packed user rows: blockUsers/mr panels of k × mr
	c     []float32 // scores: blockUsers × chunkPanels·nr
	heaps []topHeap
	scans []scanState
	row   []float32 // RecommendOne's scores
}

func (s *Scorer) getWork() *blockWork {
	if w, ok := s.work.Get().(*blockWork); ok {
		return w
	}
	return &blockWork{
		a:     make([]float32, blockUsers*s.k),
		c:     make([]float32, blockUsers*chunkPanels*nr),
		heaps: make([]topHeap, blockUsers),
		scans: make([]scanState, blockUsers),
	}
}

// topK answers resolved queries.
func (s *Scorer) topK(qs []iquery) []result {
	out := make([]result, len(qs))
	var known []int
	for q := range qs {
		switch {
		case qs[q].k < 1:
		case qs[q].user < 0 || s.f.Rank == 0 || s.nf == 0:
			out[q] = s.popularTop(qs[q])
		default:
			known = append(known, q)
		}
	}
	if len(known) == 0 {
		return out
	}
	np := (s.nf + nr - 1) / nr
	blocks := (len(known) + blockUsers - 1) / blockUsers
	// With fewer blocks than goroutines, each block's items are split into parts whose
	// top-k lists are merged.
	parts := 1
	if p := runtime.GOMAXPROCS(0); blocks < p {
		parts = min((p+blocks-1)/blocks, max(np/chunkPanels, 1))
	}
	heaps := make([]topHeap, len(known)*parts)
	parallel.Do(blocks*parts, 0, func(t int) {
		b, part := t/parts, t%parts
		qlo, qhi := b*blockUsers, min((b+1)*blockUsers, len(known))
		s.block(qs, known[qlo:qhi], part*np/parts, (part+1)*np/parts, heaps[qlo*parts+part:], parts)
	})
	for n, q := range known {
		h := &heaps[n*parts]
		for part := 1; part < parts; part++ {
			o := &heaps[n*parts+part]
			for e := range o.score {
				h.push(o.score[e], o.item[e])
			}
		}
		out[q] = s.finish(qs[q], h)
	}
	return out
}

// block scores the queries qidx (at most blockUsers, all with known users) against item
// panels [plo, phi), leaving query n's top k in heaps[n·stride].
func (s *Scorer) block(qs []iquery, qidx []int, plo, phi int, heaps []topHeap, stride int) {
	w := s.getWork()
	defer s.work.Put(w)
	k, n := s.k, len(qidx)
	panelsA := (n + mr - 1) / mr
	a := w.a[:panelsA*k*mr]
	clear(a)
	for r, q := range qidx {
		u := int(qs[q].user)
		row := s.userRows[u*k : u*k+k]
		base := (r/mr)*k*mr + r%mr
		for p, v := range row {
			a[base+p*mr] = v
		}
		w.heaps[r].reset(qs[q].k)
		w.scans[r] = s.newScan(qs[q])
	}
	const ldc = chunkPanels * nr
	for clo := plo; clo < phi; clo += chunkPanels {
		chi := min(clo+chunkPanels, phi)
		for pn := clo; pn < chi; pn++ {
			bp := s.panels[pn*k*nr : (pn+1)*k*nr]
			for m := range panelsA {
				tile6x16(k, a[m*k*mr:(m+1)*k*mr], bp, w.c[m*mr*ldc+(pn-clo)*nr:], ldc)
			}
		}
		width := min(chi*nr, s.nf) - clo*nr
		for r := range n {
			w.scans[r].scan(w.c[r*ldc:r*ldc+width], clo*nr, &w.heaps[r])
		}
	}
	for r := range n {
		h := &heaps[r*stride]
		h.k = w.heaps[r].k
		h.score = append(h.score[:0], w.heaps[r].score...)
		h.item = append(h.item[:0], w.heaps[r].item...)
	}
}
