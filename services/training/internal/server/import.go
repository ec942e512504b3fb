package server

import (
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/services/training/internal/dataset"
	"github.com/bullseye-ml/bullseye/services/training/internal/modelimport"
)

// ImportModel implements TrainingService. It registers only once the whole file has come,
// parsed and matched its signature: a stream that fails or is cancelled before registers
// nothing.
func (s *Server) ImportModel(stream trainingv1.TrainingService_ImportModelServer) error {
	const method = "ImportModel"
	ctx := stream.Context()
	h, err := modelimport.ReadHeader(stream.Recv)
	if err != nil {
		return statuses.Status(ctx, s.logger, method, err)
	}
	if v := modelimport.CheckHeader(h, s.maxImportBytes); len(v) > 0 {
		return statuses.Status(ctx, s.logger, method, v)
	}
	sig := h.GetInputSignature()
	resp, err := s.features.GetFeatureSet(ctx, &featurev1.GetFeatureSetRequest{
		FeatureSet: &featurev1.FeatureSetRef{Name: sig.GetFeatureSet(), Version: sig.GetFeatureSetVersion()}})
	if st, ok := status.FromError(err); ok && st.Code() == codes.InvalidArgument {
		err = fault.Invalid("header.input_signature.feature_set", "the feature service refused it: %s", st.Message())
	} else if err != nil {
		err = dataset.FeatureError(fmt.Sprintf("reading feature set %s", fault.Quote(sig.GetFeatureSet())), err)
	}
	if err != nil {
		return statuses.Status(ctx, s.logger, method, err)
	}
	file, err := modelimport.ReadFile(stream.Recv, h, s.maxImportBytes)
	if err != nil {
		return statuses.Status(ctx, s.logger, method, err)
	}
	mv, a, err := modelimport.Build(h, file, resp.GetFeatureSet(), s.codeVersion)
	if err != nil {
		return statuses.Status(ctx, s.logger, method, err)
	}
	if err := ctx.Err(); err != nil {
		return statuses.Status(ctx, s.logger, method, err)
	}
	v, created, err := s.registry.RegisterImport(ctx, h.GetRequestId(), mv, a)
	if err != nil {
		return statuses.Status(ctx, s.logger, method, err)
	}
	s.logger.InfoContext(ctx, "model imported", "model", v.GetModelName(), "version", v.GetVersion(), "created", created,
		"format", a.GetTrees().GetImportedFrom().GetFormat(), "bytes", len(file), "feature_set", v.GetLineage().GetFeatureSet())
	return stream.SendAndClose(&trainingv1.ImportModelResponse{ModelVersion: v, Created: created})
}
