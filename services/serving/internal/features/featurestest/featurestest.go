// Package featurestest is a double of the feature service for serving's unit tests: it knows a
// few feature sets and customers, answers lookups in the columns layout as the feature service
// does, lists its customers, and records the lookups it was asked. It serves on 127.0.0.1.
package featurestest

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	"github.com/bullseye-ml/bullseye/services/serving/internal/features"
)

// Customer is what the service knows of one customer.
type Customer struct {
	// Consent is the customer's consent state.
	Consent commonv1.ConsentState
	// Values are the customer's feature values by column name; a column missing here is NULL.
	Values map[string]*commonv1.Value
}

// Service is the double. It is safe for concurrent use.
type Service struct {
	featurev1.UnimplementedFeatureServiceServer

	mu        sync.Mutex
	sets      []*featurev1.FeatureSet
	customers map[string]Customer
	fail      error
	lookups   []*featurev1.GetOnlineFeaturesRequest
}

// New returns a service that knows sets (listed in this order, each by its name whatever the
// version asked) and customers by id.
func New(sets []*featurev1.FeatureSet, customers map[string]Customer) *Service {
	if customers == nil {
		customers = map[string]Customer{}
	}
	return &Service{sets: sets, customers: customers}
}

// SetCustomer adds or replaces a customer.
func (s *Service) SetCustomer(id string, c Customer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.customers[id] = c
}

// Fail makes GetOnlineFeatures fail with err; nil makes it answer again.
func (s *Service) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

// Lookups returns the GetOnlineFeatures requests so far, in order.
func (s *Service) Lookups() []*featurev1.GetOnlineFeaturesRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lookups)
}

// Serve serves s on 127.0.0.1 until the test ends and returns a client of it.
func (s *Service) Serve(t testing.TB) *features.Client {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	featurev1.RegisterFeatureServiceServer(srv, s)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return features.New(featurev1.NewFeatureServiceClient(conn), features.WithTimeout(30*time.Second))
}

func (s *Service) set(name string) *featurev1.FeatureSet {
	for _, fs := range s.sets {
		if fs.GetName() == name {
			return fs
		}
	}
	return nil
}

// GetFeatureSet implements FeatureService.
func (s *Service) GetFeatureSet(_ context.Context, req *featurev1.GetFeatureSetRequest) (*featurev1.GetFeatureSetResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fs := s.set(req.GetFeatureSet().GetName())
	if fs == nil {
		return nil, status.Error(codes.NotFound, "no such feature set")
	}
	return &featurev1.GetFeatureSetResponse{FeatureSet: fs}, nil
}

// ListFeatureSets implements FeatureService: every set, in one page.
func (s *Service) ListFeatureSets(context.Context, *featurev1.ListFeatureSetsRequest) (*featurev1.ListFeatureSetsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &featurev1.ListFeatureSetsResponse{FeatureSets: s.sets}, nil
}

// ListEntities implements FeatureService: every customer not erased, by id, in pages of the
// size asked.
func (s *Service) ListEntities(req *featurev1.ListEntitiesRequest, stream featurev1.FeatureService_ListEntitiesServer) error {
	s.mu.Lock()
	var ids []string
	for id, c := range s.customers {
		if c.Consent != commonv1.ConsentState_CONSENT_STATE_ERASED {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	slices.Sort(ids)
	size := max(1, int(req.GetPageSize()))
	for start := 0; start < len(ids); start += size {
		page := &featurev1.ListEntitiesResponse{}
		for _, id := range ids[start:min(len(ids), start+size)] {
			page.Entities = append(page.Entities, &commonv1.EntityKey{EntityType: "customer", Id: id})
		}
		if err := stream.Send(page); err != nil {
			return err
		}
	}
	return nil
}

// GetOnlineFeatures implements FeatureService in the columns layout.
func (s *Service) GetOnlineFeatures(_ context.Context, req *featurev1.GetOnlineFeaturesRequest) (*featurev1.GetOnlineFeaturesResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups = append(s.lookups, req)
	if s.fail != nil {
		return nil, s.fail
	}
	fs := s.set(req.GetFeatureSet().GetName())
	if fs == nil {
		return nil, status.Error(codes.NotFound, "no such feature set")
	}
	types := map[string]commonv1.ValueType{}
	for _, c := range fs.GetColumns() {
		types[c.GetName()] = c.GetType()
	}
	oc := &featurev1.OnlineColumns{}
	for _, e := range req.GetEntities() {
		c, found := s.customers[e.GetId()]
		oc.Found = append(oc.Found, found)
		oc.Consent = append(oc.Consent, c.Consent)
	}
	for _, name := range req.GetFeatureNames() {
		typ, ok := types[name]
		if !ok {
			return nil, status.Errorf(codes.InvalidArgument, "no column %q", name)
		}
		col := &featurev1.FeatureValueColumn{Type: typ}
		for _, e := range req.GetEntities() {
			c, found := s.customers[e.GetId()]
			v := c.Values[name]
			st := featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_PRESENT
			switch {
			case !found:
				st = featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_NOT_FOUND
			case v == nil:
				st = featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_NULL
			}
			col.Status = append(col.Status, st)
			col.IsNull = append(col.IsNull, v == nil)
			switch typ {
			case commonv1.ValueType_VALUE_TYPE_NUMBER:
				col.NumberValues = append(col.NumberValues, v.GetNumberValue())
			case commonv1.ValueType_VALUE_TYPE_STRING:
				col.StringValues = append(col.StringValues, v.GetStringValue())
			case commonv1.ValueType_VALUE_TYPE_BOOL:
				b := int64(0)
				if v.GetBoolValue() {
					b = 1
				}
				col.IntValues = append(col.IntValues, b)
			default:
				col.IntValues = append(col.IntValues, v.GetIntValue())
			}
		}
		oc.Features = append(oc.Features, col)
	}
	return &featurev1.GetOnlineFeaturesResponse{FeatureNames: req.GetFeatureNames(), Columns: oc}, nil
}
