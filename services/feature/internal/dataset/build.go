package dataset

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/fnv"
	"math"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/featureset"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
	"github.com/bullseye-ml/bullseye/services/feature/internal/state"
)

// Progress says how far materialisation is; see materialize.Progress.
type Progress interface {
	// LastSeq returns the events stream's last sequence.
	LastSeq(ctx context.Context) (uint64, error)
	// Wait waits until every record at or before seq is applied.
	Wait(ctx context.Context, seq uint64) error
}

// Builder reads profiles and builds training data from them.
type Builder struct {
	store       *state.Store
	progress    Progress
	erased      func(id string) bool
	waitTimeout time.Duration
}

// BuilderOption configures a Builder.
type BuilderOption func(*Builder)

// WithErased sets what reports whether a customer id is on the erasure list; without it the
// list is not consulted (no HMAC key), and only deleted profiles are left out.
func WithErased(erased func(id string) bool) BuilderOption {
	return func(b *Builder) { b.erased = erased }
}

// WithWaitTimeout bounds the wait for materialisation to catch up; the default is 2 minutes.
func WithWaitTimeout(d time.Duration) BuilderOption { return func(b *Builder) { b.waitTimeout = d } }

// NewBuilder returns a builder reading the profiles of store once materialisation, which
// progress follows, has caught up.
func NewBuilder(store *state.Store, progress Progress, opts ...BuilderOption) *Builder {
	b := &Builder{store: store, progress: progress}
	for _, o := range opts {
		o(b)
	}
	if b.waitTimeout <= 0 {
		b.waitTimeout = 2 * time.Minute
	}
	return b
}

// CatchUp waits, up to the builder's wait timeout, until materialisation has applied every
// record at or before seq.
func (b *Builder) CatchUp(ctx context.Context, seq uint64) error {
	ctx, cancel := context.WithTimeout(ctx, b.waitTimeout)
	defer cancel()
	return b.progress.Wait(ctx, seq)
}

// Row is one training row.
type Row struct {
	// Entity is the customer's id.
	Entity string
	// Cutoff is the row's cutoff, Unix nanoseconds.
	Cutoff int64
	// Features are the feature values in the plan's column order.
	Features []profile.Value
	// Label is the label.
	Label profile.Value
	// Split is TRAIN or TEST.
	Split featurev1.Split
	// ImportID and ImportRow locate the entity's row in a tabular import,
	// when ImportID is set.
	ImportID  string
	ImportRow int64
	// TriggerID is the trigger event's message id, for trigger cutoffs.
	TriggerID string
}

// Result describes a built training set.
type Result struct {
	// StreamSeq is the events stream sequence the build read up to.
	StreamSeq uint64
	// LabelType is the label's type.
	LabelType commonv1.ValueType
	// Summary counts the rows.
	Summary *featurev1.TrainingSetSummary
}

// snapshot is the profiles as of one stream sequence.
type snapshot struct {
	seq      uint64
	profiles []*profile.Profile
	// lastTime is the latest record time of every customer not erased,
	// selected or not.
	lastTime int64
	objected int64
}

// load reads every customer profile as of the stream's current end, after
// waiting for materialisation to reach it; keep filters profiles.
func (b *Builder) load(ctx context.Context, includeObjected bool, keep func(*profile.Profile) bool) (*snapshot, error) {
	seq, err := b.progress.LastSeq(ctx)
	if err != nil {
		return nil, err
	}
	if err := b.CatchUp(ctx, seq); err != nil {
		return nil, err
	}
	s := &snapshot{seq: seq, lastTime: math.MinInt64}
	in := profile.Interner{}
	err = b.store.Scan(ctx, state.UserPrefix, func(_ string, value []byte) error {
		p, err := profile.Decode(value, in)
		if err != nil {
			return err
		}
		p = p.UpTo(seq)
		if p.Empty() || (b.erased != nil && b.erased(p.ID)) {
			return nil
		}
		// The stream's last record, whoever the build selects.
		if t, ok := p.LastTime(); ok && t > s.lastTime {
			s.lastTime = t
		}
		if keep != nil && !keep(p) {
			return nil
		}
		if p.Consent() == commonv1.ConsentState_CONSENT_STATE_OBJECTED && !includeObjected {
			s.objected++
			return nil
		}
		s.profiles = append(s.profiles, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// ID returns the id of a training set: a digest of its request and stream
// sequence.
func ID(req *featurev1.BuildTrainingSetRequest, seq uint64) string {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&featurev1.BuildTrainingSetRequest{Spec: req.GetSpec(), Order: req.GetOrder()})
	h := sha256.New()
	h.Write(b)
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], seq)
	h.Write(s[:])
	return "ts-" + hex.EncodeToString(h.Sum(nil))[:16]
}

// Build builds the training set of plan in the given order and passes its
// rows to emit in order (emit may keep them only until it returns). header
// is called once, before any row, with the stream sequence and label type.
func (b *Builder) Build(ctx context.Context, plan *Plan, order featurev1.TrainingSetOrder, header func(Result) error, emit func(Row) error) (Result, error) {
	keep := func(p *profile.Profile) bool {
		if plan.entities != nil && !plan.entities[p.ID] {
			return false
		}
		return plan.importID == "" || p.HasImport(plan.importID)
	}
	snap, err := b.load(ctx, plan.includeObjected, keep)
	if err != nil {
		return Result{}, err
	}
	ps := snap.profiles
	type sortKey struct {
		row    int64
		hasRow bool
	}
	keys := make(map[*profile.Profile]sortKey, len(ps))
	if order == featurev1.TrainingSetOrder_TRAINING_SET_ORDER_IMPORT_ROW {
		for _, p := range ps {
			_, row, ok := p.ImportRow(plan.splitImport)
			keys[p] = sortKey{row: row, hasRow: ok}
		}
	}
	slices.SortFunc(ps, func(a, c *profile.Profile) int {
		if order == featurev1.TrainingSetOrder_TRAINING_SET_ORDER_IMPORT_ROW {
			ka, kc := keys[a], keys[c]
			switch {
			case ka.hasRow && !kc.hasRow:
				return -1
			case !ka.hasRow && kc.hasRow:
				return 1
			case ka.hasRow && ka.row != kc.row:
				if ka.row < kc.row {
					return -1
				}
				return 1
			}
		}
		return strings.Compare(a.ID, c.ID)
	})
	res := Result{StreamSeq: snap.seq, LabelType: plan.labelType(), Summary: &featurev1.TrainingSetSummary{ExcludedObjected: snap.objected}}
	if res.LabelType == commonv1.ValueType_VALUE_TYPE_UNSPECIFIED {
		res.LabelType = commonv1.ValueType_VALUE_TYPE_STRING
		for _, p := range ps {
			if v, _, ok := p.TraitAt(plan.labelTrait, plan.labelAsOf); ok && !v.IsNull() {
				res.LabelType = profile.TypeOf(v.Kind)
				break
			}
		}
	}
	if err := header(res); err != nil {
		return res, err
	}
	sum := res.Summary
	outs := make([]featureset.Out, len(plan.Set.Columns))
	row := Row{Features: make([]profile.Value, len(plan.cols))}
	minCut, maxCut := int64(math.MaxInt64), int64(math.MinInt64)
	var entities int64
	for _, p := range ps {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if plan.limit > 0 && entities >= plan.limit {
			break
		}
		importID, importRow, hasImport := p.ImportRow("")
		entRow, hasEntRow := importRow, hasImport
		if plan.split == splitRow && plan.splitImport != "" {
			_, entRow, hasEntRow = p.ImportRow(plan.splitImport)
		}
		rows := int64(0)
		for _, c := range plan.cutoffs(p) {
			if plan.conditions != nil && !plan.conditions.Holds(p, c.at) {
				continue
			}
			row.Entity, row.Cutoff, row.TriggerID = p.ID, c.at, c.trigger
			row.ImportID, row.ImportRow = "", 0
			if hasImport {
				row.ImportID, row.ImportRow = importID, importRow
			}
			// The label.
			if plan.outcome != nil {
				if plan.dropIncomplete && c.at+plan.horizon > snap.lastTime {
					sum.DroppedIncompleteHorizon++
					continue
				}
				row.Label = plan.outcomeLabel(p, c.at, c.triggerSeq)
			} else {
				row.Label = plan.traitLabel(p)
			}
			if row.Label.IsNull() && !plan.keepMissing {
				sum.DroppedMissingLabel++
				continue
			}
			// The split.
			switch plan.split {
			case splitNone:
				row.Split = featurev1.Split_SPLIT_TRAIN
			case splitHash:
				row.Split = hashSplit(p.ID, plan.seed, plan.testFraction)
			case splitTime:
				row.Split = featurev1.Split_SPLIT_TRAIN
				if c.at >= plan.testStart {
					row.Split = featurev1.Split_SPLIT_TEST
				}
			case splitRow:
				if !hasEntRow {
					sum.DroppedNoRowNumber++
					continue
				}
				row.Split = featurev1.Split_SPLIT_TRAIN
				if plan.remainders[((entRow%plan.modulus)+plan.modulus)%plan.modulus] {
					row.Split = featurev1.Split_SPLIT_TEST
				}
			}
			// The features, strictly before the cutoff.
			plan.Set.Eval(p, c.at, outs)
			for i, col := range plan.cols {
				v := outs[col].Value
				if v.IsNull() {
					v = plan.Set.Defaults[col]
				}
				row.Features[i] = v
			}
			if err := emit(row); err != nil {
				return res, err
			}
			rows++
			sum.Rows++
			if row.Split == featurev1.Split_SPLIT_TEST {
				sum.TestRows++
			} else {
				sum.TrainRows++
			}
			minCut, maxCut = min(minCut, c.at), max(maxCut, c.at)
		}
		if rows > 0 {
			entities++
			if n := p.DroppedEvents(); n > 0 {
				sum.EntitiesPastRetention++
				sum.EventsDroppedByRetention += n
			}
		}
	}
	sum.Entities = entities
	if sum.Rows > 0 {
		sum.MinCutoffTime, sum.MaxCutoffTime = profile.Timestamp(minCut), profile.Timestamp(maxCut)
	}
	return res, nil
}

// cutoff is one cutoff of an entity.
type cutoff struct {
	at         int64
	trigger    string
	triggerSeq uint64
}

// cutoffs returns an entity's cutoffs in time order.
func (plan *Plan) cutoffs(p *profile.Profile) []cutoff {
	switch plan.cutoff {
	case cutoffFixed:
		if first, ok := p.FirstTime(); ok && first < plan.fixed {
			return []cutoff{{at: plan.fixed}}
		}
		return nil
	case cutoffRolling:
		first, ok := p.FirstTime()
		if !ok {
			return nil
		}
		var out []cutoff
		for _, t := range plan.rolling {
			if first < t {
				out = append(out, cutoff{at: t})
			}
		}
		return out
	}
	var out []cutoff
	for i := range p.Events {
		e := &p.Events[i]
		if e.Time < plan.triggerFrom || e.Time >= plan.triggerTo || !plan.trigger.Match(e) {
			continue
		}
		out = append(out, cutoff{at: e.Time, trigger: e.MessageID, triggerSeq: e.Seq})
	}
	switch plan.triggerSel {
	case featurev1.TriggerSelection_TRIGGER_SELECTION_FIRST:
		if len(out) > 1 {
			out = out[:1]
		}
	case featurev1.TriggerSelection_TRIGGER_SELECTION_LAST:
		if len(out) > 1 {
			out = out[len(out)-1:]
		}
	}
	return out
}

func (plan *Plan) traitLabel(p *profile.Profile) profile.Value {
	v, _, _ := p.TraitAt(plan.labelTrait, plan.labelAsOf)
	if v.IsNull() || len(plan.positives) == 0 {
		return v
	}
	for _, w := range plan.positives {
		if v.Equal(w) {
			return profile.BoolValue(true)
		}
	}
	return profile.BoolValue(false)
}

// outcomeLabel summarises the outcome events in [at, at+horizon), leaving
// out the trigger event itself.
func (plan *Plan) outcomeLabel(p *profile.Profile, at int64, triggerSeq uint64) profile.Value {
	end := at + plan.horizon
	if end < at {
		end = math.MaxInt64
	}
	var n int64
	var sum float64
	var days int64
	var prevDay int64
	for _, e := range p.EventsBefore(at, end) {
		if triggerSeq != 0 && e.Seq == triggerSeq {
			continue
		}
		if !plan.outcome.Match(&e) {
			continue
		}
		n++
		if f, ok := plan.outcomeField(&e).Float(); ok {
			sum += f
		}
		d := e.Time / featureset.Day
		if days == 0 || d != prevDay {
			days++
			prevDay = d
		}
	}
	switch plan.outcomeAgg {
	case featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_COUNT:
		return profile.IntValue(n)
	case featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_SUM:
		return profile.NumberValue(sum)
	case featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_DISTINCT_DAYS:
		return profile.IntValue(days)
	}
	return profile.BoolValue(n > 0)
}

// HashFraction returns the seeded hash of an entity id as a fraction in
// [0, 1): FNV-1a 64 of the seed (8 bytes, little endian) and the id, top 53
// bits.
func HashFraction(id string, seed uint64) float64 {
	h := fnv.New64a()
	var s [8]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	h.Write(s[:])
	h.Write([]byte(id))
	return float64(h.Sum64()>>11) / (1 << 53)
}

func hashSplit(id string, seed uint64, frac float64) featurev1.Split {
	if HashFraction(id, seed) < frac {
		return featurev1.Split_SPLIT_TEST
	}
	return featurev1.Split_SPLIT_TRAIN
}
