// This file measures the standard protobuf cost of a 64-entity, 20-feature
// GetOnlineFeatures reply, the dominant cost of online lookups.

package server

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
)

func response64() *featurev1.GetOnlineFeaturesResponse {
	r := &featurev1.GetOnlineFeaturesResponse{FeatureSet: &featurev1.FeatureSetRef{Name: "bench", Version: 1}}
	for j := 0; j < 20; j++ {
		r.FeatureNames = append(r.FeatureNames, "feature_name_x")
	}
	for i := 0; i < 64; i++ {
		e := &featurev1.EntityFeatures{Entity: &commonv1.EntityKey{Id: "cust-12345"}, Found: true}
		for j := 0; j < 20; j++ {
			e.Values = append(e.Values, &featurev1.FeatureValue{
				Value:      &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: 12.5}},
				Status:     featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_PRESENT,
				UpdateTime: &timestamppb.Timestamp{Seconds: 1700000000, Nanos: 123456789},
			})
		}
		r.Results = append(r.Results, e)
	}
	return r
}

func BenchmarkMarshal64(b *testing.B) {
	r := response64()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := proto.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshal64(b *testing.B) {
	data, _ := proto.Marshal(response64())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var r featurev1.GetOnlineFeaturesResponse
		if err := proto.Unmarshal(data, &r); err != nil {
			b.Fatal(err)
		}
	}
}
