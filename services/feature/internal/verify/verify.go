// Package verify reconciles the events stream with the materialised
// profiles: per record kind (a track event's name, trait updates, consent
// changes) and per customer, what the stream holds against what the
// profiles hold or have dropped by retention. A difference is an accepted
// record that materialisation lost, or a profile damaged after the fact.
package verify

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
	"github.com/bullseye-ml/bullseye/services/feature/internal/state"
)

// The names of the record kinds that are not track events.
const (
	Identify = "(identify)"
	Consent  = "(consent)"
)

// DefaultMaxEntities is how many differing entities a report lists by
// default.
const DefaultMaxEntities = 100

// Verifier reconciles the events stream with the profiles.
type Verifier struct {
	events      jetstream.Stream
	store       *state.Store
	erased      func(id string) bool
	featureSets func() []*featurev1.FeatureSet
}

// New returns a verifier of the events stream against the profiles of store. erased reports
// whether a customer is on the erasure list (whose records materialisation leaves out);
// featureSets returns the latest version of every feature set.
func New(events jetstream.Stream, store *state.Store, erased func(id string) bool, featureSets func() []*featurev1.FeatureSet) *Verifier {
	return &Verifier{events: events, store: store, erased: erased, featureSets: featureSets}
}

// counts are one entity's records per kind.
type counts map[string]*featurev1.RecordCount

func (c counts) at(name string) *featurev1.RecordCount {
	rc := c[name]
	if rc == nil {
		rc = &featurev1.RecordCount{Name: name}
		c[name] = rc
	}
	return rc
}

// Verify reconciles every record at or before the stream sequence seq,
// which materialisation must have applied.
func (v *Verifier) Verify(ctx context.Context, seq uint64, maxEntities int) (*featurev1.VerifyMaterializationResponse, error) {
	if maxEntities <= 0 {
		maxEntities = DefaultMaxEntities
	}
	entities := map[eventlog.Key]counts{}
	of := func(k eventlog.Key) counts {
		c := entities[k]
		if c == nil {
			c = counts{}
			entities[k] = c
		}
		return c
	}
	resp := &featurev1.VerifyMaterializationResponse{StreamSequence: seq}
	if seq > 0 {
		if err := v.readStream(ctx, seq, of); err != nil {
			return nil, err
		}
	}
	if err := v.readProfiles(ctx, seq, of, resp); err != nil {
		return nil, err
	}
	v.compare(entities, maxEntities, resp)
	return resp, nil
}

func (v *Verifier) readStream(ctx context.Context, seq uint64, of func(eventlog.Key) counts) error {
	ev := &ingestv1.StoredEvent{}
	return eventlog.ReadStream(ctx, v.events, eventlog.EventsPrefix+".>", seq, func(msg jetstream.Msg) error {
		info, err := eventlog.ParseEventSubject(msg.Subject())
		if err != nil || v.erased(info.Key.ID) {
			return nil // materialisation skips these too
		}
		var name string
		switch info.Type {
		case eventlog.TypeTrack:
			ev.Reset()
			if err := ev.UnmarshalVT(msg.Data()); err != nil {
				return nil // counted as undecodable by materialisation
			}
			name = ev.GetName()
		case eventlog.TypeIdentify:
			name = Identify
		case eventlog.TypeConsent:
			name = Consent
		default:
			return nil
		}
		of(info.Key).at(name).Stream++
		return nil
	})
}

func (v *Verifier) readProfiles(ctx context.Context, seq uint64, of func(eventlog.Key) counts, resp *featurev1.VerifyMaterializationResponse) error {
	in := profile.Interner{}
	return v.store.Scan(ctx, ">", func(key string, value []byte) error {
		p, err := profile.Decode(value, in)
		if err != nil {
			return fmt.Errorf("decoding profile %s: %w", key, err)
		}
		if v.erased(p.ID) {
			return nil
		}
		p = p.UpTo(seq)
		resp.Profiles++
		c := of(eventlog.Key{Kind: p.Kind, ID: p.ID})
		for i := range p.Events {
			c.at(p.Events[i].Name).Materialised++
		}
		if len(p.Traits) > 0 {
			c.at(Identify).Materialised += int64(len(p.Traits))
		}
		if len(p.Consents) > 0 {
			c.at(Consent).Materialised += int64(len(p.Consents))
		}
		for _, d := range p.Dropped {
			c.at(d.Name).DroppedByRetention += d.Count
		}
		if len(p.Dropped) > 0 {
			resp.ProfilesPastRetention++
		}
		return nil
	})
}

// compare totals the counts per name and lists the entities that differ.
func (v *Verifier) compare(entities map[eventlog.Key]counts, maxEntities int, resp *featurev1.VerifyMaterializationResponse) {
	totals := counts{}
	var differing []*featurev1.EntityDifference
	for k, c := range entities {
		for name, rc := range c {
			rc.Difference = rc.Stream - rc.Materialised - rc.DroppedByRetention
			t := totals.at(name)
			t.Stream += rc.Stream
			t.Materialised += rc.Materialised
			t.DroppedByRetention += rc.DroppedByRetention
			t.Difference += rc.Difference
			if rc.Difference != 0 {
				resp.Differences += abs(rc.Difference)
				resp.EntitiesDiffering++
				differing = append(differing, &featurev1.EntityDifference{
					Entity: &commonv1.EntityKey{Id: k.ID, EntityType: entityType(k.Kind)},
					Count:  rc,
				})
			}
		}
	}
	slices.SortFunc(differing, func(a, b *featurev1.EntityDifference) int {
		return cmp.Or(strings.Compare(a.GetEntity().GetId(), b.GetEntity().GetId()), strings.Compare(a.GetCount().GetName(), b.GetCount().GetName()))
	})
	resp.Entities = differing[:min(len(differing), maxEntities)]
	readers := readersByName(v.featureSets())
	for _, name := range sortedKeys(totals) {
		t := totals[name]
		t.FeatureSets = readers(name)
		resp.Records = append(resp.Records, t)
	}
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

func entityType(k eventlog.Kind) string {
	if k == eventlog.KindAnonymous {
		return "anonymous"
	}
	return "customer"
}

func sortedKeys(c counts) []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// readersByName returns, for an event name, the feature sets with an event
// filter that matches it (a filter naming no event matches every one).
func readersByName(sets []*featurev1.FeatureSet) func(name string) []string {
	named := map[string][]string{}
	var all []string
	for _, fs := range sets {
		seen := map[string]bool{}
		any := false
		eachFilter(fs.ProtoReflect(), func(f *featurev1.EventFilter) {
			if len(f.GetNames()) == 0 {
				any = true
			}
			for _, n := range f.GetNames() {
				if !seen[n] {
					seen[n] = true
					named[n] = append(named[n], fs.GetName())
				}
			}
		})
		if any {
			all = append(all, fs.GetName())
		}
	}
	return func(name string) []string {
		if name == Identify || name == Consent {
			return nil
		}
		out := slices.Concat(named[name], all)
		slices.Sort(out)
		return slices.Compact(out)
	}
}

// eachFilter calls fn with every EventFilter inside m.
func eachFilter(m protoreflect.Message, fn func(*featurev1.EventFilter)) {
	if f, ok := m.Interface().(*featurev1.EventFilter); ok {
		fn(f)
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind {
			return true
		}
		switch {
		case fd.IsList():
			for i := 0; i < val.List().Len(); i++ {
				eachFilter(val.List().Get(i).Message(), fn)
			}
		case fd.IsMap():
			val.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				if fd.MapValue().Kind() == protoreflect.MessageKind {
					eachFilter(mv.Message(), fn)
				}
				return true
			})
		default:
			eachFilter(val.Message(), fn)
		}
		return true
	})
}
