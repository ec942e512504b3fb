// Package featuretest is a TEST STAND-IN for the feature service, for the training service's
// tests only: a bullseye.feature.v1.FeatureService gRPC server on pkg/mesh that answers
// BuildTrainingSet and SelectFeatures from a tabular file held in memory (the Bank Marketing
// CSV), as if the file had been imported through ingest and declared as a feature set of
// traits. The real feature service (services/feature, issue 4) was being built at the same
// time; once it is usable, tests should import the file through ingest, apply the feature set
// and start the real service instead of Start — the specs the tests send are already the ones
// the real service takes.
//
// What it implements of the API: a feature set of one name (version 1, which GetFeatureSet
// answers) whose columns are the
// file's columns (names with '.' turned into '_'; columns whose every value is a number are
// NUMBER, the others STRING); trait labels (positive_values make a BOOL label); feature_names;
// row-number and entity-hash splits; a fixed cutoff; entities.limit. Entities are
// "<prefix>-<row number>", zero-padded, and every row carries its import row number. Other
// options are ignored.
package featuretest

import (
	"cmp"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
)

// ImportID is the import id every row carries.
const ImportID = "featuretest-import"

// Table is a tabular file in memory: typed columns and rows of values.
type Table struct {
	// Columns are the file's columns with their types.
	Columns []*featurev1.FeatureColumn
	// Rows hold one value per column, in the file's row order.
	Rows [][]*commonv1.Value
}

// ReadCSV reads a CSV file with a header (sep-separated, quoted strings). A column is NUMBER
// when every value parses as a number, else STRING; '.' in names becomes '_'.
func ReadCSV(path string, sep rune) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comma = sep
	recs, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(recs) < 2 {
		return nil, fmt.Errorf("reading %s: no data rows", path)
	}
	header, body := recs[0], recs[1:]
	t := &Table{Rows: make([][]*commonv1.Value, len(body))}
	for j, name := range header {
		numeric := true
		for _, rec := range body {
			if _, err := strconv.ParseFloat(rec[j], 64); err != nil {
				numeric = false
				break
			}
		}
		typ := commonv1.ValueType_VALUE_TYPE_STRING
		if numeric {
			typ = commonv1.ValueType_VALUE_TYPE_NUMBER
		}
		t.Columns = append(t.Columns, &featurev1.FeatureColumn{Name: strings.ReplaceAll(name, ".", "_"), Type: typ})
		for i, rec := range body {
			if numeric {
				x, _ := strconv.ParseFloat(rec[j], 64)
				t.Rows[i] = append(t.Rows[i], &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: x}})
			} else {
				t.Rows[i] = append(t.Rows[i], &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: rec[j]}})
			}
		}
	}
	return t, nil
}

// Server is the stand-in FeatureService.
type Server struct {
	featurev1.UnimplementedFeatureServiceServer
	featureSet string
	prefix     string
	table      *Table
	// Builds counts BuildTrainingSet calls.
	Builds atomic.Int64
	delay  time.Duration

	mu           sync.Mutex
	interactions map[string][]*featurev1.Interaction
	importOf     func(row int) string
}

// New returns a stand-in serving table as feature set featureSet, entities named
// prefix-<row>.
func New(featureSet, prefix string, t *Table) *Server {
	return &Server{featureSet: featureSet, prefix: prefix, table: t}
}

// SetInteractions makes ExportInteractions answer rows for the events named name (a rating
// event of explicit feedback, or a weighted event of implicit feedback, whose weight then
// multiplies the values).
func (s *Server) SetInteractions(name string, rows []*featurev1.Interaction) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.interactions == nil {
		s.interactions = map[string][]*featurev1.Interaction{}
	}
	s.interactions[name] = rows
}

// ExportInteractions streams the interactions set for the requested event names, merged per
// (user, item) as the feature service does (explicit: the latest rating; implicit: the sum
// of the weighted values), ordered by user then item.
func (s *Server) ExportInteractions(req *featurev1.ExportInteractionsRequest, stream featurev1.FeatureService_ExportInteractionsServer) error {
	type key struct{ user, item string }
	merged := map[key]*featurev1.Interaction{}
	s.mu.Lock()
	add := func(name string, weight float64, latest bool) {
		for _, x := range s.interactions[name] {
			k := key{x.GetUserId(), x.GetItemId()}
			y := proto.Clone(x).(*featurev1.Interaction)
			y.Value *= weight
			old, ok := merged[k]
			switch {
			case !ok:
				merged[k] = y
			case latest:
				if !y.GetTime().AsTime().Before(old.GetTime().AsTime()) {
					y.EventCount += old.GetEventCount()
					merged[k] = y
				} else {
					old.EventCount += y.GetEventCount()
				}
			default:
				old.Value += y.GetValue()
				old.EventCount += y.GetEventCount()
				if y.GetTime().AsTime().After(old.GetTime().AsTime()) {
					old.Time = y.GetTime()
				}
			}
		}
	}
	for _, name := range req.GetExplicit().GetEventNames() {
		add(name, 1, true)
	}
	for name, w := range req.GetImplicit().GetEventWeights() {
		add(name, w, false)
	}
	s.mu.Unlock()
	rows := slices.SortedFunc(maps.Values(merged), func(a, b *featurev1.Interaction) int {
		return cmp.Or(cmp.Compare(a.GetUserId(), b.GetUserId()), cmp.Compare(a.GetItemId(), b.GetItemId()))
	})
	for len(rows) > 0 {
		n := min(len(rows), 1000)
		if err := stream.Send(&featurev1.ExportInteractionsResponse{Interactions: rows[:n]}); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// SetImportOf makes the training set's row i (of the table) come from import importOf(i)
// instead of ImportID, as a data set imported as two files would.
func (s *Server) SetImportOf(importOf func(row int) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.importOf = importOf
}

// SetMessageDelay makes BuildTrainingSet pause between messages, to slow jobs down.
func (s *Server) SetMessageDelay(d time.Duration) { s.delay = d }

func (s *Server) importID(i int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.importOf == nil {
		return ImportID
	}
	return s.importOf(i)
}

// GetFeatureSet answers version 1 (or the latest, 0) of the one feature set, with the
// table's columns.
func (s *Server) GetFeatureSet(_ context.Context, req *featurev1.GetFeatureSetRequest) (*featurev1.GetFeatureSetResponse, error) {
	ref := req.GetFeatureSet()
	if ref.GetName() != s.featureSet || ref.GetVersion() > 1 {
		return nil, status.Errorf(codes.NotFound, "feature set %q version %d does not exist", ref.GetName(), ref.GetVersion())
	}
	return &featurev1.GetFeatureSetResponse{FeatureSet: &featurev1.FeatureSet{
		Name: s.featureSet, Version: 1, Columns: s.table.Columns,
		Backfill: &featurev1.BackfillStatus{State: featurev1.BackfillState_BACKFILL_STATE_READY},
	}}, nil
}

func (s *Server) column(name string) int {
	return slices.IndexFunc(s.table.Columns, func(c *featurev1.FeatureColumn) bool { return c.GetName() == name })
}

// built is a resolved training set.
type built struct {
	features []int // column indexes
	label    int
	positive []*commonv1.Value
	rows     []int
	split    []featurev1.Split
	cutoff   *timestamppb.Timestamp
	header   *featurev1.TrainingSetHeader
}

func (s *Server) build(spec *featurev1.TrainingSetSpec) (*built, error) {
	if spec.GetFeatureSet().GetName() != s.featureSet {
		return nil, status.Errorf(codes.NotFound, "feature set %q does not exist", spec.GetFeatureSet().GetName())
	}
	// An outcome label is the column named by the label's name: the stand-in keeps no events.
	tl := spec.GetLabel().GetTrait()
	labelColumn := tl.GetTrait()
	if o := spec.GetLabel().GetOutcome(); o != nil {
		labelColumn = spec.GetLabel().GetName()
	} else if tl == nil {
		return nil, status.Error(codes.InvalidArgument, "label: this stand-in takes trait labels, and outcome labels read from the column of the label's name")
	}
	b := &built{label: s.column(labelColumn), positive: tl.GetPositiveValues(), cutoff: spec.GetCutoff().GetFixedTime()}
	if b.label < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "label: no column %q", labelColumn)
	}
	if b.cutoff == nil {
		b.cutoff = timestamppb.New(time.Date(2010, 12, 1, 0, 0, 0, 0, time.UTC))
	}
	names := spec.GetFeatureNames()
	if len(names) == 0 {
		for j, c := range s.table.Columns {
			if j != b.label {
				names = append(names, c.GetName())
			}
		}
	}
	for _, n := range names {
		j := s.column(n)
		if j < 0 || j == b.label {
			return nil, status.Errorf(codes.InvalidArgument, "feature_names: no feature %q", n)
		}
		b.features = append(b.features, j)
	}
	n := len(s.table.Rows)
	if l := spec.GetEntities().GetLimit(); l > 0 {
		n = min(n, int(l))
	}
	for i := range n {
		split := featurev1.Split_SPLIT_TRAIN
		switch m := spec.GetSplit().GetMethod().(type) {
		case *featurev1.SplitSpec_RowNumber:
			if slices.Contains(m.RowNumber.GetTestRemainders(), int64(i)%m.RowNumber.GetModulus()) {
				split = featurev1.Split_SPLIT_TEST
			}
		case *featurev1.SplitSpec_EntityHash:
			h := fnv.New64a()
			fmt.Fprintf(h, "%d:%s", m.EntityHash.GetSeed(), s.entity(i))
			if float64(h.Sum64()>>11)/float64(1<<53) < m.EntityHash.GetTestFraction() {
				split = featurev1.Split_SPLIT_TEST
			}
		}
		b.rows = append(b.rows, i)
		b.split = append(b.split, split)
	}
	labelType := s.table.Columns[b.label].GetType()
	if len(b.positive) > 0 {
		labelType = commonv1.ValueType_VALUE_TYPE_BOOL
	}
	b.header = &featurev1.TrainingSetHeader{
		FeatureSet:     &featurev1.FeatureSetRef{Name: s.featureSet, Version: 1},
		LabelName:      cmp.Or(spec.GetLabel().GetName(), "label"),
		LabelType:      labelType,
		StreamSequence: uint64(len(s.table.Rows)),
		TrainingSetId:  fmt.Sprintf("featuretest-%s-%d", s.featureSet, len(b.features)),
	}
	for _, j := range b.features {
		b.header.Columns = append(b.header.Columns, s.table.Columns[j])
	}
	return b, nil
}

func (s *Server) entity(i int) string { return fmt.Sprintf("%s-%06d", s.prefix, i) }

func (b *built) labelOf(row []*commonv1.Value) *commonv1.Value {
	v := row[b.label]
	if len(b.positive) == 0 {
		return v
	}
	pos := slices.ContainsFunc(b.positive, func(p *commonv1.Value) bool {
		return p.GetStringValue() == v.GetStringValue() && p.GetNumberValue() == v.GetNumberValue()
	})
	return &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: pos}}
}

// BuildTrainingSet implements FeatureService.
func (s *Server) BuildTrainingSet(req *featurev1.BuildTrainingSetRequest, stream featurev1.FeatureService_BuildTrainingSetServer) error {
	s.Builds.Add(1)
	b, err := s.build(req.GetSpec())
	if err != nil {
		return err
	}
	if err := stream.Send(&featurev1.BuildTrainingSetResponse{Header: b.header}); err != nil {
		return err
	}
	per := cmp.Or(int(req.GetRowsPerMessage()), 500)
	sum := &featurev1.TrainingSetSummary{MinCutoffTime: b.cutoff, MaxCutoffTime: b.cutoff}
	for lo := 0; lo < len(b.rows); lo += per {
		msg := &featurev1.BuildTrainingSetResponse{}
		for k := lo; k < min(lo+per, len(b.rows)); k++ {
			i := b.rows[k]
			row := s.table.Rows[i]
			tr := &featurev1.TrainingRow{
				Entity:          &commonv1.EntityKey{Id: s.entity(i)},
				CutoffTime:      b.cutoff,
				Label:           b.labelOf(row),
				Split:           b.split[k],
				ImportId:        s.importID(i),
				ImportRowNumber: int64(i),
			}
			for _, j := range b.features {
				tr.Features = append(tr.Features, row[j])
			}
			msg.Rows = append(msg.Rows, tr)
			sum.Rows++
			if b.split[k] == featurev1.Split_SPLIT_TEST {
				sum.TestRows++
			} else {
				sum.TrainRows++
			}
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
		if s.delay > 0 {
			select {
			case <-stream.Context().Done():
				return stream.Context().Err()
			case <-time.After(s.delay):
			}
		}
	}
	sum.Entities = sum.Rows
	return stream.Send(&featurev1.BuildTrainingSetResponse{Summary: sum})
}

// SelectFeatures implements FeatureService: features ranked by their mutual information with
// the label on the TRAIN rows (numbers in ten equal-frequency bins); constant features are
// suggested for dropping.
func (s *Server) SelectFeatures(ctx context.Context, req *featurev1.SelectFeaturesRequest) (*featurev1.SelectFeaturesResponse, error) {
	b, err := s.build(req.GetSpec())
	if err != nil {
		return nil, err
	}
	var train []int
	for k, i := range b.rows {
		if b.split[k] == featurev1.Split_SPLIT_TRAIN {
			train = append(train, i)
		}
	}
	labels := make([]string, len(train))
	for k, i := range train {
		labels[k] = b.labelOf(s.table.Rows[i]).String()
	}
	type scored struct {
		name string
		mi   float64
		vals int
	}
	var all []scored
	for _, j := range b.features {
		keys := make([]string, len(train))
		if s.table.Columns[j].GetType() == commonv1.ValueType_VALUE_TYPE_NUMBER {
			xs := make([]float64, len(train))
			for k, i := range train {
				xs[k] = s.table.Rows[i][j].GetNumberValue()
			}
			sorted := slices.Clone(xs)
			slices.Sort(sorted)
			for k, x := range xs {
				keys[k] = strconv.Itoa(min(9, 10*position(sorted, x)/len(sorted)))
			}
		} else {
			for k, i := range train {
				keys[k] = s.table.Rows[i][j].GetStringValue()
			}
		}
		mi, vals := mutualInformation(keys, labels)
		all = append(all, scored{name: s.table.Columns[j].GetName(), mi: mi, vals: vals})
	}
	slices.SortStableFunc(all, func(a, b scored) int {
		return cmp.Or(cmp.Compare(b.mi, a.mi), cmp.Compare(a.name, b.name))
	})
	resp := &featurev1.SelectFeaturesResponse{RowsUsed: int64(len(train)), FeatureSet: b.header.GetFeatureSet(), LabelType: b.header.GetLabelType()}
	for r, f := range all {
		resp.Features = append(resp.Features, &featurev1.FeatureScore{Name: f.name, Rank: int32(r + 1), Scores: []*featurev1.MethodScore{{
			Method: featurev1.SelectionMethod_SELECTION_METHOD_MUTUAL_INFORMATION, Score: f.mi, Rank: int32(r + 1), Applicable: true}}})
		if f.vals < 2 {
			resp.SuggestedDrops = append(resp.SuggestedDrops, &featurev1.DropSuggestion{Name: f.name,
				Reason: featurev1.DropReason_DROP_REASON_LOW_VARIANCE, Description: "constant on the training rows"})
		}
	}
	return resp, nil
}

// position returns the position of x in sorted (the first one not below it).
func position(sorted []float64, x float64) int {
	i, _ := slices.BinarySearch(sorted, x)
	return i
}

func mutualInformation(xs, ys []string) (float64, int) {
	n := float64(len(xs))
	joint := map[[2]string]float64{}
	px, py := map[string]float64{}, map[string]float64{}
	for i := range xs {
		joint[[2]string{xs[i], ys[i]}]++
		px[xs[i]]++
		py[ys[i]]++
	}
	var mi float64
	for k, c := range joint {
		mi += c / n * math.Log(c*n/(px[k[0]]*py[k[1]]))
	}
	return mi, len(px)
}

// Start serves s as the "feature" service on 127.0.0.1 (plaintext), registered in etcd
// through cli, until stop is called.
func Start(ctx context.Context, cli *clientv3.Client, s *Server) (addr string, stop func(), err error) {
	cfg := mesh.NewServerConfig("feature")
	cfg.TLS.Insecure = true
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.ShutdownTimeout = 2 * time.Second
	srv, err := mesh.NewServer(cfg)
	if err != nil {
		return "", nil, err
	}
	featurev1.RegisterFeatureServiceServer(srv.GRPC(), s)
	srv.SetReady(true)
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, mesh.NewDiscovery(cli, mesh.WithLeaseTTL(2*time.Second))) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				slog.Default().Warn("feature stand-in stopped", "error", err)
			}
		})
	}
	return srv.Addr(), stop, nil
}
