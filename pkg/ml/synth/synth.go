// Package synth generates user–item interaction data with known structure, for testing and
// benchmarking recommenders. A planted model gives each user a bias and rank-r factors and
// each item a bias and factors; a rating is Mean + b_u + b_i + p_u·q_i plus Gaussian noise of
// a known standard deviation. Which items a user has is drawn without replacement with weight
// exposure · exp(Affinity · preference): a Zipf-like popularity skew times the user's own
// taste. Users have a heavy-tailed number of rows (at least MinPerUser each), and timestamps
// fall in per-user activity windows. Implicit draws the same way and gives each pair an event
// count instead of a rating.
//
// The presets have the shapes of MovieLens 100K and 1M, and the defaults are calibrated on
// MovieLens 1M's published figures: the ratings, rounded, have a mean of about 3.6 and a
// standard deviation of about 1.0 (MovieLens 1M: 3.58 and 1.12) with a similar histogram; the
// planted noise σ = 0.85 is the error of the oracle, and a model of biases alone can at best
// reach √(0.3² + 0.85²) ≈ 0.90 (biased MF on MovieLens 1M reaches about 0.86, biases alone
// about 0.91). The planted model's own prediction of each row (the oracle) is kept, as is the
// rating before rounding, so that a fitted model's error can be compared with the best
// achievable.
//
// The output is a function of the Config alone: the same seed gives the same data on any
// machine and with any GOMAXPROCS.
package synth

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/internal/parallel"
	"github.com/bullseye-ml/bullseye/pkg/ml/recommend"
)

// Config describes a data set. Zero fields take the defaults of the MovieLens presets.
type Config struct {
	// Users, Items and Ratings are the exact numbers of users, items and rows; every user
	// and every item has at least one row.
	Users, Items, Ratings int
	// Rank is the planted rank; 0 means 10.
	Rank int
	// Mean is the planted global mean μ; 0 means 3.0. Users rate what they like (see
	// Affinity), so the mean observed rating is higher: about 3.6 with the defaults, as
	// MovieLens 1M's 3.58.
	Mean float64
	// UserBiasStd and ItemBiasStd are the standard deviations of the planted biases; 0
	// means 0.4 and 0.5.
	UserBiasStd, ItemBiasStd float64
	// Signal is the standard deviation of the planted interaction term p_u·q_i; 0 means 0.3.
	// Each factor coordinate is Gaussian with variance Signal / √Rank.
	Signal float64
	// Noise is the standard deviation σ of the Gaussian noise added to each rating; 0 means
	// 0.85, negative means none.
	Noise float64
	// Skew is the exponent s of the item exposure: the item of popularity rank k (from 1, a
	// random order of the items) is drawn with weight k^−s; 0 means 0.6.
	Skew float64
	// Affinity is how much the planted preference drives which items a user has: pairs are
	// drawn with weight exposure · exp(Affinity · z_ui), z_ui the user's standardised
	// preference (b_i + p_u·q_i) / PreferenceStd, so users mostly rate what they like, as in
	// MovieLens. 0 means 1.5; negative means exposure alone (ratings missing at random given
	// popularity).
	Affinity float64
	// MinPerUser is the least number of rows of a user; 0 means 20, as MovieLens.
	MinPerUser int
	// Spread is the standard deviation of the log of a user's rows above MinPerUser; 0
	// means 1.
	Spread float64
	// Round rounds ratings to whole numbers clipped to [MinRating, MaxRating]; the raw
	// ratings are kept in Data.Raw either way.
	Round bool
	// MinRating and MaxRating bound rounded ratings; both 0 means 1 and 5.
	MinRating, MaxRating float64
	// Start and End bound the timestamps (Unix seconds); both 0 means MovieLens 1M's range,
	// 2000-04-25 to 2003-02-28.
	Start, End int64
	// Seed seeds everything.
	Seed uint64
}

// MovieLens100K is shaped like MovieLens 100K: 943 users, 1,682 items, 100,000 rows.
func MovieLens100K() Config { return Config{Users: 943, Items: 1682, Ratings: 100_000, Seed: 100} }

// MovieLens1M is shaped like MovieLens 1M: 6,040 users, 3,706 items, 1,000,209 rows.
func MovieLens1M() Config { return Config{Users: 6040, Items: 3706, Ratings: 1_000_209, Seed: 1000} }

func (c *Config) defaults(implicit bool) error {
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Rank == 0 {
		c.Rank = 10
	}
	if c.MinPerUser == 0 {
		c.MinPerUser = 20
	}
	def(&c.Mean, 3.0)
	def(&c.UserBiasStd, 0.4)
	def(&c.ItemBiasStd, 0.5)
	def(&c.Signal, 0.3)
	def(&c.Noise, 0.85)
	def(&c.Skew, 0.6)
	def(&c.Spread, 1)
	def(&c.Affinity, 1.5)
	c.Affinity = max(c.Affinity, 0)
	if c.MinRating == 0 && c.MaxRating == 0 {
		c.MinRating, c.MaxRating = 1, 5
	}
	if c.Start == 0 && c.End == 0 {
		c.Start, c.End = 956_703_932, 1_046_454_590
	}
	switch {
	case c.Users < 1 || c.Items < 1:
		return fmt.Errorf("synth: %d users and %d items", c.Users, c.Items)
	case c.Rank < 1 || c.Signal < 0 || c.UserBiasStd < 0 || c.ItemBiasStd < 0 || c.Skew < 0 || c.Spread < 0:
		return errors.New("synth: negative rank, signal, bias deviation, skew or spread")
	case c.MinPerUser > c.Items:
		return fmt.Errorf("synth: %d rows per user but %d items", c.MinPerUser, c.Items)
	case c.Ratings < c.Users*c.MinPerUser || c.Ratings < c.Items:
		return fmt.Errorf("synth: %d rows cannot give %d users %d rows each and every one of %d items a row",
			c.Ratings, c.Users, c.MinPerUser, c.Items)
	case c.Ratings > c.Users*maxPerUser(c.Items):
		return fmt.Errorf("synth: %d rows do not fit %d users of at most %d rows", c.Ratings, c.Users, maxPerUser(c.Items))
	case c.MinRating > c.MaxRating || c.Start > c.End:
		return errors.New("synth: empty rating or time range")
	}
	return nil
}

// maxPerUser caps a user's rows at 65 % of the items (MovieLens 1M's heaviest user has 62 %).
func maxPerUser(items int) int { return max(1, items*65/100) }

// Planted is the generating model: r_ui = Mean + UserBias[u] + ItemBias[i] + p_u·q_i + noise.
type Planted struct {
	Rank     int
	Mean     float64
	UserBias []float64
	ItemBias []float64
	// UserFactors and ItemFactors are row-major, users × Rank and items × Rank.
	UserFactors []float64
	ItemFactors []float64
	// Noise is the noise's standard deviation σ.
	Noise float64
	// Exposure holds each item's log exposure weight, −Skew·ln(popularity rank).
	Exposure []float64
	// Affinity and PreferenceStd are Config.Affinity and the standard deviation of
	// Preference, by which it is standardised when drawing pairs.
	Affinity, PreferenceStd float64
}

// Predict returns the planted model's rating of item i by user u, without noise: the
// oracle.
func (p *Planted) Predict(u, i int) float64 {
	return p.Mean + p.UserBias[u] + p.Preference(u, i)
}

// Preference returns b_i + p_u·q_i, the part of the rating that ranks a user's items.
func (p *Planted) Preference(u, i int) float64 {
	k := p.Rank
	s := p.ItemBias[i]
	for f := range k {
		s += p.UserFactors[u*k+f] * p.ItemFactors[i*k+f]
	}
	return s
}

// Data is a generated data set.
type Data struct {
	// Config is the configuration with defaults filled in.
	Config Config
	// Interactions holds the rows, grouped by user and in time order within a user. User
	// and item ids are "1", "2", ... as in MovieLens, and index u is id u+1. Values are the
	// ratings (rounded with Config.Round), or for Implicit the event counts.
	Interactions *recommend.Interactions
	// Raw holds each row's rating before rounding; for Implicit, the planted preference.
	Raw []float64
	// Oracle holds each row's planted prediction without noise (Planted.Predict); for
	// Implicit, the planted preference (Planted.Preference).
	Oracle []float64
	// Planted is the generating model.
	Planted *Planted

	implicit bool
}

// Generate makes an explicit-feedback data set: ratings of the pairs drawn, from the planted
// model plus noise.
func Generate(c Config) (*Data, error) { return generate(c, false) }

// Implicit makes an implicit-feedback data set: each user's items are drawn with weight
// exposure · exp(Affinity · z_ui), so the users' planted preferences show in what they have,
// and each pair's value is an event count 1 + Poisson(exp(z_ui / 2)). Raw and Oracle hold the
// planted preference b_i + p_u·q_i of each row.
func Implicit(c Config) (*Data, error) { return generate(c, true) }

func generate(c Config, implicit bool) (*Data, error) {
	if err := c.defaults(implicit); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(c.Seed, 0x73796e))
	pl := plant(&c, rng)
	counts := activity(&c, rng)
	weights := exposure(&c, rng)
	pl.Exposure = weights

	// Each user's items, drawn without replacement by Gumbel top-k on log weights.
	nu, ni := c.Users, c.Items
	prefStd := pl.PreferenceStd
	items := make([][]int32, nu)
	parallel.For(nu, 16, func(_, lo, hi int) {
		keys := make([]float64, ni)
		order := make([]int32, ni)
		for u := lo; u < hi; u++ {
			r := rand.New(rand.NewPCG(c.Seed, uint64(u)<<8|1))
			for i := range ni {
				keys[i] = weights[i] - math.Log(-math.Log(1-r.Float64()))
				if c.Affinity != 0 {
					keys[i] += c.Affinity * pl.Preference(u, i) / prefStd
				}
				order[i] = int32(i)
			}
			top := topN(order, keys, counts[u])
			items[u] = slices.Clone(top)
		}
	})
	cover(items, ni, rng)

	// Values and times, per user in parallel with per-user generators.
	type row struct {
		item               int32
		value, raw, oracle float64
		time               int64
	}
	rows := make([][]row, nu)
	span := float64(c.End - c.Start)
	parallel.For(nu, 16, func(_, lo, hi int) {
		for u := lo; u < hi; u++ {
			r := rand.New(rand.NewPCG(c.Seed, uint64(u)<<8|2))
			// An activity window: a start, and a length drawn from an exponential with a
			// mean of a fifth of the range.
			length := min(r.ExpFloat64()*span/5, span)
			start := float64(c.Start) + r.Float64()*(span-length)
			out := make([]row, len(items[u]))
			for k, i := range items[u] {
				x := row{item: i, time: int64(start + r.Float64()*length)}
				if implicit {
					z := pl.Preference(u, int(i))
					x.raw, x.oracle = z, z
					x.value = float64(1 + poisson(r, math.Exp(z/prefStd/2)))
				} else {
					x.oracle = pl.Predict(u, int(i))
					x.raw = x.oracle
					if c.Noise > 0 {
						x.raw += c.Noise * r.NormFloat64()
					}
					x.value = x.raw
					if c.Round {
						x.value = min(max(math.Round(x.raw), c.MinRating), c.MaxRating)
					}
				}
				out[k] = x
			}
			slices.SortStableFunc(out, func(a, b row) int { return cmp.Compare(a.time, b.time) })
			rows[u] = out
		}
	})

	d := &Data{Config: c, Planted: pl, implicit: implicit, Interactions: &recommend.Interactions{
		UserIDs: ids(nu), ItemIDs: ids(ni),
		Users: make([]int32, 0, c.Ratings), Items: make([]int32, 0, c.Ratings),
		Values: make([]float64, 0, c.Ratings), Times: make([]int64, 0, c.Ratings),
	}}
	d.Raw, d.Oracle = make([]float64, 0, c.Ratings), make([]float64, 0, c.Ratings)
	for u, rs := range rows {
		for _, x := range rs {
			in := d.Interactions
			in.Users = append(in.Users, int32(u))
			in.Items = append(in.Items, x.item)
			in.Values = append(in.Values, x.value)
			in.Times = append(in.Times, x.time)
			d.Raw = append(d.Raw, x.raw)
			d.Oracle = append(d.Oracle, x.oracle)
		}
	}
	return d, nil
}

// plant draws the planted model.
func plant(c *Config, rng *rand.Rand) *Planted {
	k := c.Rank
	pl := &Planted{Rank: k, Mean: c.Mean, Noise: max(c.Noise, 0), Affinity: c.Affinity,
		PreferenceStd: math.Sqrt(c.ItemBiasStd*c.ItemBiasStd + c.Signal*c.Signal),
		UserBias:      make([]float64, c.Users), ItemBias: make([]float64, c.Items),
		UserFactors: make([]float64, c.Users*k), ItemFactors: make([]float64, c.Items*k)}
	// Var(p·q) = k·s⁴ for coordinates of standard deviation s: s² = Signal/√k.
	s := math.Sqrt(c.Signal / math.Sqrt(float64(k)))
	for u := range pl.UserBias {
		pl.UserBias[u] = c.UserBiasStd * rng.NormFloat64()
	}
	for i := range pl.ItemBias {
		pl.ItemBias[i] = c.ItemBiasStd * rng.NormFloat64()
	}
	for e := range pl.UserFactors {
		pl.UserFactors[e] = s * rng.NormFloat64()
	}
	for e := range pl.ItemFactors {
		pl.ItemFactors[e] = s * rng.NormFloat64()
	}
	return pl
}

// activity draws each user's number of rows: MinPerUser plus a log-normal share of the rest,
// capped, summing exactly to Ratings.
func activity(c *Config, rng *rand.Rand) []int {
	nu, capN := c.Users, maxPerUser(c.Items)
	w := make([]float64, nu)
	var sum float64
	for u := range w {
		w[u] = math.Exp(c.Spread * rng.NormFloat64())
		sum += w[u]
	}
	n := make([]int, nu)
	extra := c.Ratings - nu*c.MinPerUser
	total := 0
	for u := range n {
		n[u] = min(c.MinPerUser+int(float64(extra)*w[u]/sum), capN)
		total += n[u]
	}
	// Hand out what rounding and the cap left, one row at a time to users drawn by weight.
	for total < c.Ratings {
		u := rng.IntN(nu)
		if n[u] < capN {
			n[u]++
			total++
		}
	}
	return n
}

// exposure returns each item's log weight: −Skew·ln(rank) for a random popularity order.
func exposure(c *Config, rng *rand.Rand) []float64 {
	perm := rng.Perm(c.Items)
	w := make([]float64, c.Items)
	for rank, i := range perm {
		w[i] = -c.Skew * math.Log(float64(rank+1))
	}
	return w
}

// topN reorders order so that its first n entries are the indexes of the n largest keys,
// ascending by index, and returns them (quickselect).
func topN(order []int32, keys []float64, n int) []int32 {
	lo, hi := 0, len(order)
	for hi-lo > 1 {
		p := keys[order[lo+(hi-lo)/2]]
		// Three-way partition of order[lo:hi] around p, larger keys first.
		i, lt, gt := lo, lo, hi
		for i < gt {
			switch v := keys[order[i]]; {
			case v > p:
				order[lt], order[i] = order[i], order[lt]
				lt++
				i++
			case v < p:
				gt--
				order[gt], order[i] = order[i], order[gt]
			default:
				i++
			}
		}
		switch {
		case n < lt:
			hi = lt
		case n > gt:
			lo = gt
		default:
			lo = hi
		}
	}
	top := order[:n]
	slices.Sort(top)
	return top
}

// cover makes every item appear: an item no user drew replaces, for a random user who does
// not have it, one of that user's items that others also have.
func cover(items [][]int32, ni int, rng *rand.Rand) {
	count := make([]int, ni)
	for _, list := range items {
		for _, i := range list {
			count[i]++
		}
	}
	for i := range int32(ni) {
		for count[i] == 0 {
			u := rng.IntN(len(items))
			list := items[u]
			if _, has := slices.BinarySearch(list, i); has {
				continue
			}
			k := rng.IntN(len(list))
			if count[list[k]] < 2 {
				continue
			}
			count[list[k]]--
			count[i]++
			list[k] = i
			slices.Sort(list)
		}
	}
}

// poisson draws from a Poisson distribution of mean lambda (Knuth's method; lambda is small).
func poisson(r *rand.Rand, lambda float64) int {
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func ids(n int) []string {
	out := make([]string, n)
	for k := range out {
		out[k] = strconv.Itoa(k + 1)
	}
	return out
}

// Split holds out the rows that d.Interactions.SplitRandom holds out with the same fraction
// and seed, and returns the test rows' raw ratings and oracle predictions beside them: the
// comparison set of a fitted model.
func (d *Data) Split(testFraction float64, seed uint64) (train, test *recommend.Interactions, raw, oracle []float64, err error) {
	tr, te, err := d.Interactions.RandomSplitRows(testFraction, seed)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	raw, oracle = make([]float64, len(te)), make([]float64, len(te))
	for k, r := range te {
		raw[k], oracle[k] = d.Raw[r], d.Oracle[r]
	}
	return d.Interactions.Subset(tr), d.Interactions.Subset(te), raw, oracle, nil
}

// WriteMovieLens writes d in MovieLens's u.data format: one line per row of user id, item
// id, value and Unix time (0 without times), separated by tabs.
func WriteMovieLens(w io.Writer, d *recommend.Interactions) error {
	bw := bufio.NewWriter(w)
	var buf []byte
	for r := range d.Users {
		buf = append(buf[:0], d.UserIDs[d.Users[r]]...)
		buf = append(buf, '\t')
		buf = append(buf, d.ItemIDs[d.Items[r]]...)
		buf = append(buf, '\t')
		buf = strconv.AppendFloat(buf, d.Values[r], 'g', -1, 64)
		buf = append(buf, '\t')
		var t int64
		if d.Times != nil {
			t = d.Times[r]
		}
		buf = strconv.AppendInt(buf, t, 10)
		buf = append(buf, '\n')
		if _, err := bw.Write(buf); err != nil {
			return fmt.Errorf("write movielens: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write movielens: %w", err)
	}
	return nil
}

// Recommender returns the planted model as a recommender, to compare fitted models with:
// every user and item of the data set, and as each user's seen items those they have in seen
// (typically the training rows; seen must share d.Interactions' id lists, as its subsets and
// splits do). For explicit data its scores are Planted.Predict, the best rating predictions.
// For implicit data they are the log odds by which the generator drew each user's items,
// Exposure[i] + Affinity·Preference(u, i)/PreferenceStd: the best ranking of the items a user
// will turn out to have.
func (d *Data) Recommender(seen *recommend.Interactions) *recommend.Factors {
	p, c := d.Planted, d.Config
	nu, ni, k := c.Users, c.Items, p.Rank
	f := &recommend.Factors{Rank: k, UserIDs: d.Interactions.UserIDs, ItemIDs: d.Interactions.ItemIDs,
		UserFactors: make([]float32, nu*k), ItemFactors: make([]float32, ni*k),
		ItemBiases: make([]float32, ni), SeenOffsets: make([]uint32, nu+1),
		Convergence: ml.Convergence{Converged: true, Iterations: 1}}
	scale := 1.0
	if d.implicit {
		scale = p.Affinity / p.PreferenceStd
	}
	for e, v := range p.UserFactors {
		f.UserFactors[e] = float32(scale * v)
	}
	for e, v := range p.ItemFactors {
		f.ItemFactors[e] = float32(v)
	}
	for i, v := range p.ItemBias {
		f.ItemBiases[i] = float32(scale * v)
		if d.implicit {
			f.ItemBiases[i] += float32(p.Exposure[i])
		}
	}
	if !d.implicit {
		f.GlobalBias = p.Mean
		f.UserBiases = make([]float32, nu)
		for u, v := range p.UserBias {
			f.UserBiases[u] = float32(v)
		}
	}
	perUser := make([][]uint32, nu)
	for r := range seen.Users {
		u, i := seen.Users[r], seen.Items[r]
		perUser[u] = append(perUser[u], uint32(i))
	}
	for u, items := range perUser {
		slices.Sort(items)
		f.SeenItems = append(f.SeenItems, items...)
		f.SeenOffsets[u+1] = uint32(len(f.SeenItems))
	}
	return f
}
