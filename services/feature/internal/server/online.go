package server

import (
	"context"
	"encoding/base64"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
	"github.com/bullseye-ml/bullseye/services/feature/internal/featureset"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
	"github.com/bullseye-ml/bullseye/services/feature/internal/state"
)

// GetOnlineFeatures answers current feature values of many entities.
//
// Its replies are built in pooled storage that is reused once the mesh
// codec has encoded them (mesh.RecycleAfterMarshal): a 64-entity lookup of
// 20 features would otherwise leave 30 to 60 KB of garbage per call, and
// the collections that garbage causes are the tail of lookup latency.
func (s *Server) GetOnlineFeatures(ctx context.Context, req *featurev1.GetOnlineFeaturesRequest) (*featurev1.GetOnlineFeaturesResponse, error) {
	r := replies.Get().(*reply)
	resp, err := s.getOnlineFeatures(ctx, req, r)
	if err != nil {
		replies.Put(r)
		return nil, statuses.Status(ctx, s.logger, "GetOnlineFeatures", err)
	}
	mesh.RecycleAfterMarshal(ctx, resp, func() {
		r.drop()
		replies.Put(r)
	})
	return resp, nil
}

func (s *Server) getOnlineFeatures(ctx context.Context, req *featurev1.GetOnlineFeaturesRequest, r *reply) (*featurev1.GetOnlineFeaturesResponse, error) {
	ref := req.GetFeatureSet()
	if !fault.ValidName(ref.GetName()) {
		var v fault.Violations
		v.CheckName("feature_set.name", ref.GetName())
		return nil, v
	}
	if n := len(req.GetEntities()); n > s.maxEntities {
		return nil, fault.Invalid("entities", "%d entities, at most %d per call", n, s.maxEntities)
	}
	set, err := s.catalog.Resolve(ref.GetName(), ref.GetVersion(), true)
	if err != nil {
		return nil, err
	}
	cols, names := set.Positions, req.GetFeatureNames()
	if len(names) == 0 {
		names = set.Names
	} else {
		cols = make([]int, 0, len(names))
		var v fault.Violations
		for i, n := range names {
			idx, ok := set.Index(n)
			if !ok {
				v = append(v, fault.Violation{Field: fmt.Sprintf("feature_names[%d]", i), Description: fmt.Sprintf("feature set %q version %d has no column %s", set.Name, set.Version, fault.Quote(n))})
			}
			cols = append(cols, idx)
		}
		if len(v) > 0 {
			return nil, v
		}
	}
	if _, ok := featurev1.OnlineLayout_name[int32(req.GetLayout())]; !ok {
		return nil, fault.Invalid("layout", "unknown layout %d", req.GetLayout())
	}
	ents := req.GetEntities()
	if err := r.entityKeys(ents); err != nil {
		return nil, err
	}
	r.entries = resize(r.entries, len(ents))
	if err := s.store.Entries(ctx, r.keys, r.entries); err != nil {
		return nil, err
	}
	o := &online{set: set, cols: cols, now: time.Now().UnixNano()}
	r.ref = featurev1.FeatureSetRef{Name: set.Name, Version: set.Version}
	r.resp = featurev1.GetOnlineFeaturesResponse{FeatureSet: &r.ref, FeatureNames: names}
	anyErased := s.erasures != nil && s.pseudonymiser != nil && s.erasures.Len() > 0
	erased := func(i int) bool {
		return anyErased && s.erasures.Contains(r.entries[i].SubjectHash(ents[i].GetId(), s.pseudonymiser.SubjectHash))
	}
	switch req.GetLayout() {
	case featurev1.OnlineLayout_ONLINE_LAYOUT_COLUMNS:
		r.resp.Columns, err = o.columns(r, erased)
	default:
		r.resp.Results, err = o.rows(r, ents, erased)
	}
	if err != nil {
		return nil, err
	}
	return &r.resp, nil
}

// reply is the storage of one GetOnlineFeatures reply, reused from call to
// call (replies).
type reply struct {
	resp featurev1.GetOnlineFeaturesResponse
	ref  featurev1.FeatureSetRef

	keyBuf  []byte
	ends    []int
	keys    []string
	entries []*state.Entry

	// The columns layout.
	oc       featurev1.OnlineColumns
	found    []bool
	consent  []commonv1.ConsentState
	fcs      []featurev1.FeatureValueColumn
	fcPtrs   []*featurev1.FeatureValueColumn
	statuses []featurev1.FeatureValueStatus
	nulls    []bool
	updates  []int64
	numbers  []float64
	ints     []int64
	strs     []string

	// The rows layout.
	results     []featurev1.EntityFeatures
	resultPtrs  []*featurev1.EntityFeatures
	values      []featurev1.FeatureValue
	valuePtrs   []*featurev1.FeatureValue
	protoVals   []commonv1.Value
	stamps      []timestamppb.Timestamp
	numberKinds []commonv1.Value_NumberValue
	intKinds    []commonv1.Value_IntValue
}

var replies = sync.Pool{New: func() any { return new(reply) }}

// drop lets go of what a sent reply refers to outside its own storage
// (cache entries and their profiles, the request's keys, strings), keeping
// its arrays for the next reply.
func (r *reply) drop() {
	clear(r.entries)
	clear(r.keys)
	clear(r.strs)
	clear(r.results)
	r.resp = featurev1.GetOnlineFeaturesResponse{}
	r.oc = featurev1.OnlineColumns{}
}

// resize returns s with n zero entries, reusing its array when it is large
// enough.
func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// entityKeys sets r.keys to the bucket keys of the requested entities.
// They share one string: a lookup of many entities allocates once for its
// keys, not twice per entity.
func (r *reply) entityKeys(ents []*commonv1.EntityKey) error {
	size := 0
	for _, e := range ents {
		size += 2 + base64.RawURLEncoding.EncodedLen(len(e.GetId()))
	}
	buf := r.keyBuf[:0]
	if cap(buf) < size {
		buf = make([]byte, 0, size)
	}
	r.ends = resize(r.ends, len(ents))
	for i, e := range ents {
		if !fault.ValidID(e.GetId()) {
			var v fault.Violations
			v.CheckID(fmt.Sprintf("entities[%d].id", i), e.GetId())
			return v
		}
		var k eventlog.Key
		switch e.GetEntityType() {
		case "", "customer":
			k = eventlog.UserKey(e.GetId())
		case "anonymous":
			k = eventlog.AnonymousKey(e.GetId())
		default:
			return fault.Invalid(fmt.Sprintf("entities[%d].entity_type", i), "unknown entity type %s: use \"customer\" (or empty) or \"anonymous\"", fault.Quote(e.GetEntityType()))
		}
		var err error
		if buf, err = state.AppendKey(buf, k); err != nil {
			return fault.Invalid(fmt.Sprintf("entities[%d].id", i), "%v", err)
		}
		r.ends[i] = len(buf)
	}
	r.keyBuf = buf
	all := string(buf)
	r.keys = resize(r.keys, len(ents))
	start := 0
	for i, end := range r.ends {
		r.keys[i] = all[start:end]
		start = end
	}
	return nil
}

// online builds a GetOnlineFeatures reply: the same cells in either layout.
type online struct {
	set  *featureset.Set
	cols []int
	now  int64
	cur  featureset.Online // the current entity's columns
}

// entity evaluates the columns of a cached profile into o.cur and returns
// whether it was found and its consent. The profile is decoded only when
// what the entry remembers does not answer.
func (o *online) entity(e *state.Entry, erased bool) (bool, commonv1.ConsentState, error) {
	switch {
	case erased:
		return false, commonv1.ConsentState_CONSENT_STATE_ERASED, nil
	case !e.Found():
		return false, commonv1.ConsentState_CONSENT_STATE_UNSPECIFIED, nil
	}
	var p *profile.Profile
	load := func() (*profile.Profile, error) {
		var err error
		if p == nil {
			p, err = e.Profile()
		}
		return p, err
	}
	var err error
	if o.cur, err = o.set.EvalOnline(&e.Memo, load, o.now); err != nil {
		return false, 0, err
	}
	consent, err := e.Consent(load)
	return true, consent, err
}

// cell is what the reply says of column col of the current entity: the
// status, the value (the column's default where there is none) and when it
// last changed.
func (o *online) cell(found bool, col int) (featurev1.FeatureValueStatus, profile.Value, int64, bool) {
	if !found {
		return featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_NOT_FOUND, o.set.Defaults[col], 0, false
	}
	out := o.cur.Out(col)
	if out.Value.IsNull() {
		return featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_NULL, o.set.Defaults[col], 0, false
	}
	st := featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_PRESENT
	if age := o.set.MaxAge[col]; age > 0 && out.HasUpdate && o.now-out.Update > age {
		st = featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_STALE
	}
	return st, out.Value, out.Update, out.HasUpdate
}

// rows lays the reply out as an EntityFeatures per entity, in r.
func (o *online) rows(r *reply, ents []*commonv1.EntityKey, erased func(int) bool) ([]*featurev1.EntityFeatures, error) {
	n := len(ents) * len(o.cols)
	r.results = resize(r.results, len(ents))
	r.resultPtrs = resize(r.resultPtrs, len(ents))
	r.values = resize(r.values, n)
	r.valuePtrs = resize(r.valuePtrs, n)
	r.protoVals = resize(r.protoVals, n)
	r.stamps = resize(r.stamps, n)
	r.numberKinds = resize(r.numberKinds, n)
	r.intKinds = resize(r.intKinds, n)
	defaults := o.set.DefaultProtos // shared by every reply: read only
	k := 0
	for i, e := range ents {
		res := &r.results[i]
		r.resultPtrs[i] = res
		res.Entity = e
		res.Values = r.valuePtrs[k : k+len(o.cols) : k+len(o.cols)]
		var err error
		if res.Found, res.Consent, err = o.entity(r.entries[i], erased(i)); err != nil {
			return nil, err
		}
		for j, col := range o.cols {
			fv := &r.values[k]
			res.Values[j] = fv
			st, v, update, hasUpdate := o.cell(res.Found, col)
			fv.Status = st
			switch {
			case st == featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_NOT_FOUND || st == featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_NULL:
				fv.Value = defaults[col]
			case !v.IsNull():
				pv := &r.protoVals[k]
				switch v.Kind {
				case profile.Number:
					r.numberKinds[k].NumberValue = v.Num
					pv.Kind = &r.numberKinds[k]
				case profile.Int:
					r.intKinds[k].IntValue = v.Int
					pv.Kind = &r.intKinds[k]
				default:
					v.Fill(pv)
				}
				fv.Value = pv
			}
			if hasUpdate {
				ts := &r.stamps[k]
				ts.Seconds, ts.Nanos = update/1e9, int32(update%1e9)
				if ts.Nanos < 0 {
					ts.Seconds, ts.Nanos = ts.Seconds-1, ts.Nanos+1e9
				}
				fv.UpdateTime = ts
			}
			k++
		}
	}
	return r.resultPtrs, nil
}

// putValue sets entry i of fc to v, converted to the column's type; a
// null, or a value that does not convert, is marked is_null.
func putValue(fc *featurev1.FeatureValueColumn, i int, v profile.Value) {
	if !v.IsNull() && profile.TypeOf(v.Kind) != fc.Type {
		v = v.Convert(fc.Type)
	}
	if v.IsNull() {
		fc.IsNull[i] = true
		return
	}
	switch fc.Type {
	case commonv1.ValueType_VALUE_TYPE_NUMBER:
		fc.NumberValues[i] = v.Num
	case commonv1.ValueType_VALUE_TYPE_STRING:
		fc.StringValues[i] = v.Str
	default:
		fc.IntValues[i] = v.Int
	}
}

// columns lays the reply out as packed arrays per column, in r.
func (o *online) columns(r *reply, erased func(int) bool) (*featurev1.OnlineColumns, error) {
	n, width := len(r.entries), len(o.cols)
	r.found = resize(r.found, n)
	r.consent = resize(r.consent, n)
	r.oc = featurev1.OnlineColumns{Found: r.found, Consent: r.consent}
	oc := &r.oc
	r.fcs = resize(r.fcs, width)
	r.fcPtrs = resize(r.fcPtrs, width)
	oc.Features = r.fcPtrs
	r.statuses = resize(r.statuses, n*width)
	r.nulls = resize(r.nulls, n*width)
	r.updates = resize(r.updates, n*width)
	var numbers, ints, strs int
	for _, col := range o.cols {
		switch o.set.Columns[col].GetType() {
		case commonv1.ValueType_VALUE_TYPE_NUMBER:
			numbers++
		case commonv1.ValueType_VALUE_TYPE_STRING:
			strs++
		default:
			ints++
		}
	}
	r.numbers = resize(r.numbers, n*numbers)
	r.ints = resize(r.ints, n*ints)
	r.strs = resize(r.strs, n*strs)
	numbers, ints, strs = 0, 0, 0
	part := func(s []int64, j int) []int64 { return s[j*n : (j+1)*n : (j+1)*n] }
	for j, col := range o.cols {
		fc := &r.fcs[j]
		oc.Features[j] = fc
		fc.Type = o.set.Columns[col].GetType()
		fc.Status = r.statuses[j*n : (j+1)*n : (j+1)*n]
		fc.IsNull = r.nulls[j*n : (j+1)*n : (j+1)*n]
		fc.UpdateUnixNanos = part(r.updates, j)
		switch fc.Type {
		case commonv1.ValueType_VALUE_TYPE_NUMBER:
			fc.NumberValues = r.numbers[numbers*n : (numbers+1)*n : (numbers+1)*n]
			numbers++
		case commonv1.ValueType_VALUE_TYPE_STRING:
			fc.StringValues = r.strs[strs*n : (strs+1)*n : (strs+1)*n]
			strs++
		default:
			fc.IntValues = part(r.ints, ints)
			ints++
		}
	}
	const (
		notFound = featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_NOT_FOUND
		null     = featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_NULL
		present  = featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_PRESENT
		stale    = featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_STALE
	)
	// The loop reads each remembered cell in place (this is most of a
	// lookup's work): the same cells as o.cell gives the rows layout.
	for i, e := range r.entries {
		var err error
		if oc.Found[i], oc.Consent[i], err = o.entity(e, erased(i)); err != nil {
			return nil, err
		}
		if !oc.Found[i] {
			for j, col := range o.cols {
				r.fcs[j].Status[i] = notFound
				putValue(&r.fcs[j], i, o.set.Defaults[col])
			}
			continue
		}
		for j, col := range o.cols {
			fc := &r.fcs[j]
			out := o.cur.Ref(col)
			if out.Value.IsNull() {
				fc.Status[i] = null
				putValue(fc, i, o.set.Defaults[col])
				continue
			}
			fc.Status[i] = present
			if out.HasUpdate {
				fc.UpdateUnixNanos[i] = out.Update
				if age := o.set.MaxAge[col]; age > 0 && o.now-out.Update > age {
					fc.Status[i] = stale
				}
			}
			if out.Since {
				putValue(fc, i, featureset.SinceDays(out.Anchor, o.cur.At()))
				continue
			}
			putValue(fc, i, out.Value)
		}
	}
	return oc, nil
}
