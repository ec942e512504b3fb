// Package server answers the FeatureService RPCs on top of the catalog, the
// state store and the dataset builder, and maps errors to gRPC statuses at
// the handler.
package server

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

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
	"github.com/bullseye-ml/bullseye/services/feature/internal/verify"
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

	catalog  *catalog.Catalog
	store    *state.Store
	builder  *dataset.Builder
	verifier *verify.Verifier
	lastSeq  func(ctx context.Context) (uint64, error)
	// erasures holds customers by the keyed hash pseudonymiser gives their ids; either nil
	// when it cannot be consulted. Online lookups compute a customer's hash once per cached
	// version of their profile rather than on every lookup.
	erasures      *eventlog.ErasureList
	pseudonymiser *eventlog.Pseudonymiser
	maxEntities   int
	logger        *slog.Logger
	verified      *VerifyGauges
}

// Option configures a Server.
type Option func(*Server)

// WithErasures has the server consult the erasure list, which holds customers by the keyed
// hash ps gives their ids; either nil leaves it unconsulted.
func WithErasures(list *eventlog.ErasureList, ps *eventlog.Pseudonymiser) Option {
	return func(s *Server) { s.erasures, s.pseudonymiser = list, ps }
}

// WithMaxEntities sets the most entities of one GetOnlineFeatures call; the default is
// DefaultMaxEntities.
func WithMaxEntities(n int) Option { return func(s *Server) { s.maxEntities = n } }

// WithLogger sets the logger of internal errors; the default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.logger = l } }

// WithVerifyGauges has the server export the last VerifyMaterialization result to g.
func WithVerifyGauges(g *VerifyGauges) Option { return func(s *Server) { s.verified = g } }

// New returns a server over the feature set versions of cat and the profiles of store,
// building training sets and interaction lists with builder and reconciling the stream with
// the profiles with verifier; lastSeq returns the events stream's last sequence.
func New(cat *catalog.Catalog, store *state.Store, builder *dataset.Builder, verifier *verify.Verifier,
	lastSeq func(ctx context.Context) (uint64, error), opts ...Option) *Server {
	s := &Server{catalog: cat, store: store, builder: builder, verifier: verifier, lastSeq: lastSeq}
	for _, o := range opts {
		o(s)
	}
	if s.maxEntities <= 0 {
		s.maxEntities = DefaultMaxEntities
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	return s
}

// checkStrings is the first check of a request that is not a batch:
// every string valid UTF-8 and bounded, every list bounded (fault's
// shared rules), so that no bad value reaches the catalog, a log or a
// reply whole.
func checkStrings(req proto.Message) error {
	var v fault.Violations
	v.CheckMessage("", req)
	return v.Err()
}

// erased reports whether a customer id is on the erasure list.
func (s *Server) erased(id string) bool {
	return s.erasures != nil && s.pseudonymiser != nil && s.erasures.Len() > 0 && s.erasures.Contains(s.pseudonymiser.SubjectHash(id))
}

// ApplyFeatureSet validates and stores a feature set version.
func (s *Server) ApplyFeatureSet(ctx context.Context, req *featurev1.ApplyFeatureSetRequest) (*featurev1.ApplyFeatureSetResponse, error) {
	resp, err := s.applyFeatureSet(ctx, req)
	return resp, statuses.Status(ctx, s.logger, "ApplyFeatureSet", err)
}

func (s *Server) applyFeatureSet(ctx context.Context, req *featurev1.ApplyFeatureSetRequest) (*featurev1.ApplyFeatureSetResponse, error) {
	if err := checkStrings(req); err != nil {
		return nil, err
	}
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
	seq, err := s.lastSeq(ctx)
	if err != nil {
		return nil, err
	}
	stored, unchanged, err := s.catalog.Apply(ctx, req.GetFeatureSet(), compiled, seq)
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
	case !fault.ValidName(ref.GetName()):
		var v fault.Violations
		v.CheckName("feature_set.name", ref.GetName())
		err = v
	case ref.GetVersion() < 0:
		err = fault.Invalid("feature_set.version", "must not be negative")
	default:
		fs, err = s.catalog.Get(ref.GetName(), ref.GetVersion())
	}
	if err != nil {
		return nil, statuses.Status(ctx, s.logger, "GetFeatureSet", err)
	}
	return &featurev1.GetFeatureSetResponse{FeatureSet: fs}, nil
}

// ListFeatureSets pages through feature sets.
func (s *Server) ListFeatureSets(ctx context.Context, req *featurev1.ListFeatureSetsRequest) (*featurev1.ListFeatureSetsResponse, error) {
	if err := checkStrings(req); err != nil {
		return nil, statuses.Status(ctx, s.logger, "ListFeatureSets", err)
	}
	size := int(req.GetPageSize())
	switch {
	case size == 0:
		size = 50
	case size < 0 || size > 500:
		return nil, statuses.Status(ctx, s.logger, "ListFeatureSets", fault.Invalid("page_size", "must be between 0 and 500"))
	}
	offset := 0
	if tok := req.GetPageToken(); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		n, err2 := strconv.Atoi(string(b))
		if err != nil || err2 != nil || n < 0 {
			return nil, statuses.Status(ctx, s.logger, "ListFeatureSets", fault.Invalid("page_token", "is not a token this server issued"))
		}
		offset = n
	}
	all := s.catalog.List(req.GetNamePrefix(), req.GetAllVersions())
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

// BuildTrainingSet streams a point-in-time correct training set.
func (s *Server) BuildTrainingSet(req *featurev1.BuildTrainingSetRequest, stream featurev1.FeatureService_BuildTrainingSetServer) error {
	ctx := stream.Context()
	send := func(m *featurev1.BuildTrainingSetResponse) error { return fault.Transport(stream.Send(m)) }
	return statuses.Status(ctx, s.logger, "BuildTrainingSet", s.buildTrainingSet(ctx, req, send))
}

func (s *Server) buildTrainingSet(ctx context.Context, req *featurev1.BuildTrainingSetRequest, send func(*featurev1.BuildTrainingSetResponse) error) error {
	if err := checkStrings(req); err != nil {
		return err
	}
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
	plan, err := dataset.Compile(s.catalog, req.GetSpec(), "spec")
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
	res, err := s.builder.Build(ctx, plan, req.GetOrder(), func(r dataset.Result) error {
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
	send := func(m *featurev1.ExportInteractionsResponse) error { return fault.Transport(stream.Send(m)) }
	return statuses.Status(ctx, s.logger, "ExportInteractions", s.exportInteractions(ctx, req, send))
}

func (s *Server) exportInteractions(ctx context.Context, req *featurev1.ExportInteractionsRequest, send func(*featurev1.ExportInteractionsResponse) error) error {
	if err := checkStrings(req); err != nil {
		return err
	}
	plan, err := dataset.CompileInteractions(req)
	if err != nil {
		return err
	}
	per := int(req.GetRowsPerMessage())
	if per == 0 {
		per = DefaultInteractionRows
	}
	var batch []*featurev1.Interaction
	_, err = s.builder.Interactions(ctx, plan, func(it dataset.Interaction) error {
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
	return resp, statuses.Status(ctx, s.logger, "SelectFeatures", err)
}

func (s *Server) selectFeatures(ctx context.Context, req *featurev1.SelectFeaturesRequest) (*featurev1.SelectFeaturesResponse, error) {
	if err := checkStrings(req); err != nil {
		return nil, err
	}
	var v fault.Violations
	for i, m := range req.GetMethods() {
		if _, ok := featurev1.SelectionMethod_name[int32(m)]; !ok || m == featurev1.SelectionMethod_SELECTION_METHOD_UNSPECIFIED {
			v = append(v, fault.Violation{Field: fmt.Sprintf("methods[%d]", i), Description: "unknown selection method"})
		}
	}
	if req.GetMaxRows() < 0 {
		v = append(v, fault.Violation{Field: "max_rows", Description: "must not be negative"})
	}
	if req.GetBins() < 0 || req.GetBins() == 1 {
		v = append(v, fault.Violation{Field: "bins", Description: "must be 0 (the default) or at least 2"})
	}
	if mv := req.GetMinVariance(); math.IsNaN(mv) || math.IsInf(mv, 0) || mv < 0 {
		v = append(v, fault.Violation{Field: "min_variance", Description: "must be a finite number, 0 or more"})
	}
	if c := req.GetMaxCorrelation(); !(c >= 0 && c <= 1) {
		v = append(v, fault.Violation{Field: "max_correlation", Description: "must be in [0, 1]"})
	}
	if req.GetL1PathLength() < 0 || req.GetL1PathLength() == 1 {
		v = append(v, fault.Violation{Field: "l1_path_length", Description: "must be 0 (the default) or at least 2"})
	}
	if len(v) > 0 {
		return nil, v
	}
	plan, err := dataset.Compile(s.catalog, req.GetSpec(), "spec")
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
	res, err := s.builder.Build(ctx, plan, featurev1.TrainingSetOrder_TRAINING_SET_ORDER_ENTITY, func(dataset.Result) error { return nil }, func(r dataset.Row) error {
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
	return statuses.Status(stream.Context(), s.logger, "ListEntities", s.listEntities(req, stream))
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
		err := fault.Transport(stream.Send(&featurev1.ListEntitiesResponse{Entities: page}))
		page = make([]*commonv1.EntityKey, 0, size)
		return err
	}
	prefix := strings.TrimSuffix(state.UserPrefix, ">")
	err := s.store.Scan(stream.Context(), state.UserPrefix, func(key string, _ []byte) error {
		id, err := eventlog.DecodeID(strings.TrimPrefix(key, prefix))
		if err != nil {
			return fmt.Errorf("decoding the profile key %q: %w", key, err)
		}
		if s.erased(id) {
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
