package models

import (
	"hash/fnv"
	"sync/atomic"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	"github.com/bullseye-ml/bullseye/services/serving/internal/scoring"
)

const (
	retiring = int64(1) << 61
	closed   = int64(1) << 62
)

// acquire takes a reference unless the version is closed.
func (v *version) acquire() bool {
	for {
		s := v.refs.Load()
		if s&closed != 0 {
			return false
		}
		if v.refs.CompareAndSwap(s, s+1) {
			return true
		}
	}
}

func (v *version) release() {
	if v.refs.Add(-1) == retiring && v.refs.CompareAndSwap(retiring, closed) {
		v.gone()
	}
}

// retire marks the version as leaving; it closes once no lease holds it.
func (v *version) retire() {
	if old := v.refs.Or(retiring); old&^retiring == 0 && v.refs.CompareAndSwap(retiring, closed) {
		v.gone()
	}
}

// revive takes back a retirement that has not closed the version yet.
func (v *version) revive() bool {
	for {
		s := v.refs.Load()
		if s&closed != 0 {
			return false
		}
		if v.refs.CompareAndSwap(s, s&^retiring) {
			return true
		}
	}
}

// Lease holds the versions one request uses, so that none is released under it.
type Lease struct {
	route  *route
	pinned *version
	held   []*version
	refs   atomic.Int32
}

// Acquire returns a lease on the versions a model reference selects: the pinned or aliased
// version, or the live versions with the shadow versions. It fails with ErrNotLoaded.
func (s *Store) Acquire(ref *commonv1.ModelRef) (*Lease, error) {
	s.mu.RLock()
	m := s.models[ref.GetName()]
	s.mu.RUnlock()
	if m == nil {
		return nil, notLoaded("model %q is not loaded here", ref.GetName())
	}
	for {
		r := m.route.Load()
		if r == nil {
			return nil, notLoaded("model %q is not loaded here", ref.GetName())
		}
		l := &Lease{route: r}
		switch sel := ref.GetSelector().(type) {
		case *commonv1.ModelRef_Version:
			l.pinned = r.byNum[sel.Version]
			if l.pinned == nil {
				return nil, notLoaded("version %d of model %q is not loaded here", sel.Version, ref.GetName())
			}
			l.held = []*version{l.pinned}
		case *commonv1.ModelRef_Alias:
			l.pinned = r.aliases[sel.Alias]
			if l.pinned == nil {
				return nil, notLoaded("alias %q of model %q names no version loaded here", sel.Alias, ref.GetName())
			}
			l.held = []*version{l.pinned}
		default:
			if len(r.live) == 0 {
				return nil, notLoaded("model %q has no live version loaded here", ref.GetName())
			}
			l.held = make([]*version, 0, len(r.live)+len(r.shadows))
			for _, sp := range r.live {
				l.held = append(l.held, sp.v)
			}
			l.held = append(l.held, r.shadows...)
		}
		if l.acquireAll() {
			l.refs.Store(1)
			return l, nil
		}
		// A version closed under this route: a newer route exists; use it.
	}
}

func (l *Lease) acquireAll() bool {
	for i, v := range l.held {
		if !v.acquire() {
			for _, u := range l.held[:i] {
				u.release()
			}
			return false
		}
	}
	return true
}

// Retain adds a holder to the lease (e.g. shadow scoring that outlives the request).
func (l *Lease) Retain() { l.refs.Add(1) }

// Release drops a holder; the last one releases the versions.
func (l *Lease) Release() {
	if l.refs.Add(-1) == 0 {
		for _, v := range l.held {
			v.release()
		}
	}
}

// Pinned reports whether the reference selected one version (by number or alias).
func (l *Lease) Pinned() bool { return l.pinned != nil }

// Top returns the pinned version, or the live version with the largest share: the version
// for rows without a user id.
func (l *Lease) Top() *scoring.Model {
	if l.pinned != nil {
		return l.pinned.sm
	}
	return l.route.top.sm
}

// For returns the version that answers a customer: the pinned version, or the live version
// the stable hash of the user id selects in the traffic split (Top without a user id).
func (l *Lease) For(userID string) *scoring.Model {
	if l.pinned != nil {
		return l.pinned.sm
	}
	if userID == "" || len(l.route.live) == 1 {
		return l.Top()
	}
	h := Hash(userID) % l.route.total
	for _, sp := range l.route.live {
		if h < sp.upTo {
			return sp.v.sm
		}
	}
	return l.Top()
}

// Shadows returns the shadow versions (none with a pinned version).
func (l *Lease) Shadows() []*scoring.Model {
	if l.pinned != nil || len(l.route.shadows) == 0 {
		return nil
	}
	out := make([]*scoring.Model, len(l.route.shadows))
	for i, v := range l.route.shadows {
		out[i] = v.sm
	}
	return out
}

// Hash is the stable hash of a user id that places the user in a traffic split: FNV-1a,
// finished with a 64-bit mixer so that its low bits are well spread.
func Hash(userID string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(userID))
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
