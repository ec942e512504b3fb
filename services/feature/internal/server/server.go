// Package server answers the FeatureService RPCs on top of the catalog, the
// state store and the dataset builder, and maps errors to gRPC statuses at
// the handler.
package server

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/catalog"
	"github.com/bullseye-ml/bullseye/services/feature/internal/dataset"
	"github.com/bullseye-ml/bullseye/services/feature/internal/featureset"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
	"github.com/bullseye-ml/bullseye/services/feature/internal/selection"
	"github.com/bullseye-ml/bullseye/services/feature/internal/state"
)

// Defaults of Server.
const (
	DefaultMaxEntities     = 1000
	DefaultRowsPerMessage  = 500
	MaxRowsPerMessage      = 10000
	DefaultInteractionRows = 1000
	DefaultSelectRows      = 100_000
	// maxMessageBytes bounds a streamed message well under the default
	// 4 MiB send limit.
	maxMessageBytes = 2 << 20
)

// Server implements featurev1.FeatureServiceServer.
type Server struct {
	featurev1.UnimplementedFeatureServiceServer

	// Catalog holds the feature set versions.
	Catalog *catalog.Catalog
	// Store holds the profiles.
	Store *state.Store
	// Builder builds training sets and interaction lists.
	Builder *dataset.Builder
	// LastSeq returns the events stream's last sequence.
	LastSeq func(ctx context.Context) (uint64, error)
	// Erased reports whether a customer id is on the erasure list; nil
	// when it cannot be consulted.
	Erased func(id string) bool
	// MaxEntities is the most entities of one GetOnlineFeatures call.
	MaxEntities int
	// Logger receives internal errors.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// ApplyFeatureSet validates and stores a feature set version.
func (s *Server) ApplyFeatureSet(ctx context.Context, req *featurev1.ApplyFeatureSetRequest) (*featurev1.ApplyFeatureSetResponse, error) {
	resp, err := s.applyFeatureSet(ctx, req)
	return resp, toStatus(ctx, s.Logger, "ApplyFeatureSet", err)
}

func (s *Server) applyFeatureSet(ctx context.Context, req *featurev1.ApplyFeatureSetRequest) (*featurev1.ApplyFeatureSetResponse, error) {
	compiled, err := featureset.Compile(req.GetFeatureSet(), "feature_set")
	if err != nil {
		return nil, err
	}
	if req.GetValidateOnly() {
		fs := proto.Clone(req.GetFeatureSet()).(*featurev1.FeatureSet)
		fs.Version, fs.CreateTime, fs.Backfill = 0, nil, nil
		fs.Columns = compiled.Columns
		return &featurev1.ApplyFeatureSetResponse{FeatureSet: fs}, nil
	}
	seq, err := s.LastSeq(ctx)
	if err != nil {
		return nil, err
	}
	stored, unchanged, err := s.Catalog.Apply(ctx, req.GetFeatureSet(), compiled, seq)
	if err != nil {
		return nil, err
	}
	return &featurev1.ApplyFeatureSetResponse{FeatureSet: stored, Unchanged: unchanged}, nil
}

// GetFeatureSet returns one feature set version.
func (s *Server) GetFeatureSet(ctx context.Context, req *featurev1.GetFeatureSetRequest) (*featurev1.GetFeatureSetResponse, error) {
	ref := req.GetFeatureSet()
	var err error
	var fs *featurev1.FeatureSet
	switch {
	case ref.GetName() == "":
		err = fault.Invalid("feature_set.name", "is required")
	case ref.GetVersion() < 0:
		err = fault.Invalid("feature_set.version", "must not be negative")
	default:
		fs, err = s.Catalog.Get(ref.GetName(), ref.GetVersion())
	}
	if err != nil {
		return nil, toStatus(ctx, s.Logger, "GetFeatureSet", err)
	}
	return &featurev1.GetFeatureSetResponse{FeatureSet: fs}, nil
}

// ListFeatureSets pages through feature sets.
func (s *Server) ListFeatureSets(ctx context.Context, req *featurev1.ListFeatureSetsRequest) (*featurev1.ListFeatureSetsResponse, error) {
	size := int(req.GetPageSize())
	switch {
	case size == 0:
		size = 50
	case size < 0 || size > 500:
		return nil, toStatus(ctx, s.Logger, "ListFeatureSets", fault.Invalid("page_size", "must be between 0 and 500"))
	}
	offset := 0
	if tok := req.GetPageToken(); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		n, err2 := strconv.Atoi(string(b))
		if err != nil || err2 != nil || n < 0 {
			return nil, toStatus(ctx, s.Logger, "ListFeatureSets", fault.Invalid("page_token", "is not a token this server issued"))
		}
		offset = n
	}
	all := s.Catalog.List(req.GetNamePrefix(), req.GetAllVersions())
	resp := &featurev1.ListFeatureSetsResponse{}
	if offset < len(all) {
		end := min(len(all), offset+size)
		resp.FeatureSets = all[offset:end]
		if end < len(all) {
			resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end)))
		}
	}
	return resp, nil
}

// entityKey returns the subject key of a requested entity.
func entityKey(e *commonv1.EntityKey, field string) (eventlog.Key, error) {
	if e.GetId() == "" {
		return eventlog.Key{}, fault.Invalid(field+".id", "is required")
	}
	switch e.GetEntityType() {
	case "", "customer":
		return eventlog.UserKey(e.GetId()), nil
	case "anonymous":
		return eventlog.AnonymousKey(e.GetId()), nil
	}
	return eventlog.Key{}, fault.Invalid(field+".entity_type", "unknown entity type %q: use \"customer\" (or empty) or \"anonymous\"", e.GetEntityType())
}

// GetOnlineFeatures answers current feature values of many entities.
func (s *Server) GetOnlineFeatures(ctx context.Context, req *featurev1.GetOnlineFeaturesRequest) (*featurev1.GetOnlineFeaturesResponse, error) {
	resp, err := s.getOnlineFeatures(ctx, req)
	return resp, toStatus(ctx, s.Logger, "GetOnlineFeatures", err)
}

func (s *Server) getOnlineFeatures(ctx context.Context, req *featurev1.GetOnlineFeaturesRequest) (*featurev1.GetOnlineFeaturesResponse, error) {
	ref := req.GetFeatureSet()
	if ref.GetName() == "" {
		return nil, fault.Invalid("feature_set.name", "is required")
	}
	maxEntities := s.MaxEntities
	if maxEntities <= 0 {
		maxEntities = DefaultMaxEntities
	}
	if n := len(req.GetEntities()); n > maxEntities {
		return nil, fault.Invalid("entities", "%d entities, at most %d per call", n, maxEntities)
	}
	set, err := s.Catalog.Resolve(ref.GetName(), ref.GetVersion(), true)
	if err != nil {
		return nil, err
	}
	cols := make([]int, 0, len(set.Columns))
	names := req.GetFeatureNames()
	if len(names) == 0 {
		names = make([]string, len(set.Columns))
		for i, c := range set.Columns {
			cols = append(cols, i)
			names[i] = c.GetName()
		}
	} else {
		var v featureset.Violations
		for i, n := range names {
			idx, ok := set.Index(n)
			if !ok {
				v = append(v, featureset.Violation{Field: fmt.Sprintf("feature_names[%d]", i), Description: fmt.Sprintf("feature set %q version %d has no column %q", set.Name, set.Version, n)})
			}
			cols = append(cols, idx)
		}
		if len(v) > 0 {
			return nil, v
		}
	}
	ents := req.GetEntities()
	keys := make([]string, len(ents))
	for i, e := range ents {
		k, err := entityKey(e, fmt.Sprintf("entities[%d]", i))
		if err != nil {
			return nil, err
		}
		if keys[i], err = state.KeyOf(k); err != nil {
			return nil, fault.Invalid(fmt.Sprintf("entities[%d].id", i), "%v", err)
		}
	}
	entries := make([]*state.Entry, len(ents))
	if err := s.Store.Entries(ctx, keys, entries); err != nil {
		return nil, err
	}
	o := &online{set: set, cols: cols, now: s.now().UnixNano(), outs: make([]featureset.Out, len(set.Columns))}
	resp := &featurev1.GetOnlineFeaturesResponse{
		FeatureSet:   &featurev1.FeatureSetRef{Name: set.Name, Version: set.Version},
		FeatureNames: names,
	}
	erased := func(i int) bool { return s.Erased != nil && s.Erased(ents[i].GetId()) }
	switch req.GetLayout() {
	case featurev1.OnlineLayout_ONLINE_LAYOUT_COLUMNS:
		resp.Columns, err = o.columns(entries, erased)
	default:
		resp.Results, err = o.rows(ents, entries, erased)
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// online builds a GetOnlineFeatures reply: the same cells in either layout.
type online struct {
	set  *featureset.Set
	cols []int
	now  int64
	outs []featureset.Out // the current entity's columns
}

// entity evaluates the columns of a cached profile into o.outs and returns
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
	if err := o.set.EvalOnline(&e.Memo, load, o.now, o.outs); err != nil {
		return false, 0, err
	}
	consent, err := e.Consent(load)
	return true, consent, err
}

// cell is what the reply says of column col of the current entity: the
// status, the value (the column's default where there is none) and when it
// last changed.
func (o *online) cell(found bool, col int) (featurev1.FeatureValueStatus, profile.Value, int64, bool) {
	switch {
	case !found:
		return featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_NOT_FOUND, o.set.Defaults[col], 0, false
	case o.outs[col].Value.IsNull():
		return featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_NULL, o.set.Defaults[col], 0, false
	}
	out := &o.outs[col]
	st := featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_PRESENT
	if age := o.set.MaxAge[col]; age > 0 && out.HasUpdate && o.now-out.Update > age {
		st = featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_STALE
	}
	return st, out.Value, out.Update, out.HasUpdate
}

// rows lays the reply out as an EntityFeatures per entity.
func (o *online) rows(ents []*commonv1.EntityKey, entries []*state.Entry, erased func(int) bool) ([]*featurev1.EntityFeatures, error) {
	// One allocation per kind of object for the whole reply.
	n := len(ents) * len(o.cols)
	results := make([]featurev1.EntityFeatures, len(ents))
	resultPtrs := make([]*featurev1.EntityFeatures, len(ents))
	values := make([]featurev1.FeatureValue, n)
	valuePtrs := make([]*featurev1.FeatureValue, n)
	protoVals := make([]commonv1.Value, n)
	stamps := make([]timestamppb.Timestamp, n)
	numbers := make([]commonv1.Value_NumberValue, n)
	ints := make([]commonv1.Value_IntValue, n)
	defaults := make([]*commonv1.Value, len(o.set.Defaults))
	for i, d := range o.set.Defaults {
		if !d.IsNull() {
			defaults[i] = d.Proto()
		}
	}
	k := 0
	for i, e := range ents {
		r := &results[i]
		resultPtrs[i] = r
		r.Entity = e
		r.Values = valuePtrs[k : k+len(o.cols) : k+len(o.cols)]
		var err error
		if r.Found, r.Consent, err = o.entity(entries[i], erased(i)); err != nil {
			return nil, err
		}
		for j, col := range o.cols {
			fv := &values[k]
			valuePtrs[k] = fv
			r.Values[j] = fv
			st, v, update, hasUpdate := o.cell(r.Found, col)
			fv.Status = st
			switch {
			case st == featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_NOT_FOUND || st == featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_NULL:
				fv.Value = defaults[col] // shared by the reply's cells
			case !v.IsNull():
				pv := &protoVals[k]
				switch v.Kind {
				case profile.Number:
					numbers[k].NumberValue = v.Num
					pv.Kind = &numbers[k]
				case profile.Int:
					ints[k].IntValue = v.Int
					pv.Kind = &ints[k]
				default:
					v.Fill(pv)
				}
				fv.Value = pv
			}
			if hasUpdate {
				ts := &stamps[k]
				ts.Seconds, ts.Nanos = update/1e9, int32(update%1e9)
				if ts.Nanos < 0 {
					ts.Seconds, ts.Nanos = ts.Seconds-1, ts.Nanos+1e9
				}
				fv.UpdateTime = ts
			}
			k++
		}
	}
	return resultPtrs, nil
}

// columns lays the reply out as packed arrays per column.
func (o *online) columns(entries []*state.Entry, erased func(int) bool) (*featurev1.OnlineColumns, error) {
	n := len(entries)
	oc := &featurev1.OnlineColumns{
		Found:    make([]bool, n),
		Consent:  make([]commonv1.ConsentState, n),
		Features: make([]*featurev1.FeatureValueColumn, len(o.cols)),
	}
	fcs := make([]featurev1.FeatureValueColumn, len(o.cols))
	statuses := make([]featurev1.FeatureValueStatus, n*len(o.cols))
	nulls := make([]bool, n*len(o.cols))
	updates := make([]int64, n*len(o.cols))
	for j, col := range o.cols {
		fc := &fcs[j]
		oc.Features[j] = fc
		fc.Type = o.set.Columns[col].GetType()
		fc.Status = statuses[j*n : (j+1)*n : (j+1)*n]
		fc.IsNull = nulls[j*n : (j+1)*n : (j+1)*n]
		fc.UpdateUnixNanos = updates[j*n : (j+1)*n : (j+1)*n]
		switch fc.Type {
		case commonv1.ValueType_VALUE_TYPE_NUMBER:
			fc.NumberValues = make([]float64, n)
		case commonv1.ValueType_VALUE_TYPE_STRING:
			fc.StringValues = make([]string, n)
		default:
			fc.IntValues = make([]int64, n)
		}
	}
	for i, e := range entries {
		var err error
		if oc.Found[i], oc.Consent[i], err = o.entity(e, erased(i)); err != nil {
			return nil, err
		}
		for j, col := range o.cols {
			fc := &fcs[j]
			st, v, update, hasUpdate := o.cell(oc.Found[i], col)
			fc.Status[i] = st
			if hasUpdate {
				fc.UpdateUnixNanos[i] = update
			}
			if !v.IsNull() && profile.TypeOf(v.Kind) != fc.Type {
				v = v.Convert(fc.Type)
			}
			if v.IsNull() {
				fc.IsNull[i] = true
				continue
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
	}
	return oc, nil
}

// BuildTrainingSet streams a point-in-time correct training set.
func (s *Server) BuildTrainingSet(req *featurev1.BuildTrainingSetRequest, stream featurev1.FeatureService_BuildTrainingSetServer) error {
	ctx := stream.Context()
	return toStatus(ctx, s.Logger, "BuildTrainingSet", s.buildTrainingSet(ctx, req, stream.Send))
}

func (s *Server) buildTrainingSet(ctx context.Context, req *featurev1.BuildTrainingSetRequest, send func(*featurev1.BuildTrainingSetResponse) error) error {
	per := int(req.GetRowsPerMessage())
	switch {
	case per == 0:
		per = DefaultRowsPerMessage
	case per < 0 || per > MaxRowsPerMessage:
		return fault.Invalid("rows_per_message", "must be between 0 and %d", MaxRowsPerMessage)
	}
	if _, ok := featurev1.TrainingSetOrder_name[int32(req.GetOrder())]; !ok {
		return fault.Invalid("order", "unknown order %d", req.GetOrder())
	}
	plan, err := dataset.Compile(s.Catalog, req.GetSpec(), "spec")
	if err != nil {
		return err
	}
	var batch []*featurev1.TrainingRow
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := send(&featurev1.BuildTrainingSetResponse{Rows: batch})
		batch, size = nil, 0
		return err
	}
	res, err := s.Builder.Build(ctx, plan, req.GetOrder(), func(r dataset.Result) error {
		return send(&featurev1.BuildTrainingSetResponse{Header: &featurev1.TrainingSetHeader{
			FeatureSet:     &featurev1.FeatureSetRef{Name: plan.Set.Name, Version: plan.Set.Version},
			Columns:        plan.Columns,
			LabelName:      plan.LabelName(),
			LabelType:      r.LabelType,
			StreamSequence: r.StreamSeq,
			TrainingSetId:  dataset.ID(req, r.StreamSeq),
		}})
	}, func(r dataset.Row) error {
		row := trainingRow(r)
		batch = append(batch, row)
		size += proto.Size(row)
		if len(batch) >= per || size >= maxMessageBytes {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	return send(&featurev1.BuildTrainingSetResponse{Summary: res.Summary})
}

func trainingRow(r dataset.Row) *featurev1.TrainingRow {
	vals := make([]commonv1.Value, len(r.Features))
	ptrs := make([]*commonv1.Value, len(r.Features))
	for i, f := range r.Features {
		f.Fill(&vals[i])
		ptrs[i] = &vals[i]
	}
	out := &featurev1.TrainingRow{
		Entity:           &commonv1.EntityKey{Id: r.Entity},
		CutoffTime:       profile.Timestamp(r.Cutoff),
		Features:         ptrs,
		Label:            r.Label.Proto(),
		Split:            r.Split,
		ImportId:         r.ImportID,
		TriggerMessageId: r.TriggerID,
	}
	if r.ImportID != "" {
		out.ImportRowNumber = r.ImportRow
	}
	return out
}

// ExportInteractions streams (user, item, value, time) rows.
func (s *Server) ExportInteractions(req *featurev1.ExportInteractionsRequest, stream featurev1.FeatureService_ExportInteractionsServer) error {
	ctx := stream.Context()
	return toStatus(ctx, s.Logger, "ExportInteractions", s.exportInteractions(ctx, req, stream.Send))
}

func (s *Server) exportInteractions(ctx context.Context, req *featurev1.ExportInteractionsRequest, send func(*featurev1.ExportInteractionsResponse) error) error {
	plan, err := dataset.CompileInteractions(req)
	if err != nil {
		return err
	}
	per := int(req.GetRowsPerMessage())
	if per == 0 {
		per = DefaultInteractionRows
	}
	var batch []*featurev1.Interaction
	_, err = s.Builder.Interactions(ctx, plan, func(it dataset.Interaction) error {
		batch = append(batch, &featurev1.Interaction{UserId: it.User, ItemId: it.Item, Value: it.Value, Time: profile.Timestamp(it.Time), EventCount: it.Events})
		if len(batch) >= per {
			err := send(&featurev1.ExportInteractionsResponse{Interactions: batch})
			batch = nil
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(batch) > 0 {
		return send(&featurev1.ExportInteractionsResponse{Interactions: batch})
	}
	return nil
}

// SelectFeatures ranks a feature set's features on a training set's TRAIN
// rows.
func (s *Server) SelectFeatures(ctx context.Context, req *featurev1.SelectFeaturesRequest) (*featurev1.SelectFeaturesResponse, error) {
	resp, err := s.selectFeatures(ctx, req)
	return resp, toStatus(ctx, s.Logger, "SelectFeatures", err)
}

func (s *Server) selectFeatures(ctx context.Context, req *featurev1.SelectFeaturesRequest) (*featurev1.SelectFeaturesResponse, error) {
	var v featureset.Violations
	for i, m := range req.GetMethods() {
		if _, ok := featurev1.SelectionMethod_name[int32(m)]; !ok || m == featurev1.SelectionMethod_SELECTION_METHOD_UNSPECIFIED {
			v = append(v, featureset.Violation{Field: fmt.Sprintf("methods[%d]", i), Description: "unknown selection method"})
		}
	}
	if req.GetMaxRows() < 0 {
		v = append(v, featureset.Violation{Field: "max_rows", Description: "must not be negative"})
	}
	if req.GetBins() < 0 || req.GetBins() == 1 {
		v = append(v, featureset.Violation{Field: "bins", Description: "must be 0 (the default) or at least 2"})
	}
	if c := req.GetMaxCorrelation(); c < 0 || c > 1 {
		v = append(v, featureset.Violation{Field: "max_correlation", Description: "must be in [0, 1]"})
	}
	if req.GetL1PathLength() < 0 || req.GetL1PathLength() == 1 {
		v = append(v, featureset.Violation{Field: "l1_path_length", Description: "must be 0 (the default) or at least 2"})
	}
	if len(v) > 0 {
		return nil, v
	}
	plan, err := dataset.Compile(s.Catalog, req.GetSpec(), "spec")
	if err != nil {
		return nil, err
	}
	maxRows := req.GetMaxRows()
	if maxRows == 0 {
		maxRows = DefaultSelectRows
	}
	type kept struct {
		hash float64
		x    []profile.Value
		y    profile.Value
	}
	var rows []kept
	res, err := s.Builder.Build(ctx, plan, featurev1.TrainingSetOrder_TRAINING_SET_ORDER_ENTITY, func(dataset.Result) error { return nil }, func(r dataset.Row) error {
		if r.Split != featurev1.Split_SPLIT_TRAIN {
			return nil
		}
		rows = append(rows, kept{
			hash: dataset.HashFraction(r.Entity+"\x00"+strconv.FormatInt(r.Cutoff, 10), 0x5e1ec7),
			x:    append([]profile.Value(nil), r.Features...),
			y:    r.Label,
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if int64(len(rows)) > maxRows {
		sort.SliceStable(rows, func(i, j int) bool { return rows[i].hash < rows[j].hash })
		rows = rows[:maxRows]
	}
	in := selection.Input{Columns: plan.Columns, LabelType: res.LabelType}
	for _, r := range rows {
		in.X = append(in.X, r.x)
		in.Y = append(in.Y, r.y)
	}
	scores, drops, err := selection.Select(in, selection.Params{
		Methods:        req.GetMethods(),
		Bins:           int(req.GetBins()),
		MinVariance:    req.GetMinVariance(),
		MaxCorrelation: req.GetMaxCorrelation(),
		PathLength:     int(req.GetL1PathLength()),
	})
	if err != nil {
		return nil, err
	}
	return &featurev1.SelectFeaturesResponse{
		Features:       scores,
		SuggestedDrops: drops,
		RowsUsed:       int64(len(rows)),
		FeatureSet:     &featurev1.FeatureSetRef{Name: plan.Set.Name, Version: plan.Set.Version},
		LabelType:      res.LabelType,
	}, nil
}

// DefaultEntitiesPageSize is the page size of ListEntities when the request
// gives none.
const DefaultEntitiesPageSize = 1000

// ListEntities streams the ids of every customer with state, in pages.
func (s *Server) ListEntities(req *featurev1.ListEntitiesRequest, stream featurev1.FeatureService_ListEntitiesServer) error {
	return toStatus(stream.Context(), s.Logger, "ListEntities", s.listEntities(req, stream))
}

func (s *Server) listEntities(req *featurev1.ListEntitiesRequest, stream featurev1.FeatureService_ListEntitiesServer) error {
	size := int(req.GetPageSize())
	switch {
	case size < 0 || size > 10_000:
		return fault.Invalid("page_size", "%d, want 0 (the default, %d) to 10000", size, DefaultEntitiesPageSize)
	case size == 0:
		size = DefaultEntitiesPageSize
	}
	page := make([]*commonv1.EntityKey, 0, size)
	flush := func() error {
		if len(page) == 0 {
			return nil
		}
		err := stream.Send(&featurev1.ListEntitiesResponse{Entities: page})
		page = make([]*commonv1.EntityKey, 0, size)
		return err
	}
	prefix := strings.TrimSuffix(state.UserPrefix, ">")
	err := s.Store.Scan(stream.Context(), state.UserPrefix, func(key string, _ []byte) error {
		id, err := eventlog.DecodeID(strings.TrimPrefix(key, prefix))
		if err != nil {
			return fmt.Errorf("decoding the profile key %q: %w", key, err)
		}
		if s.Erased != nil && s.Erased(id) {
			return nil
		}
		page = append(page, &commonv1.EntityKey{Id: id})
		if len(page) == size {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}
