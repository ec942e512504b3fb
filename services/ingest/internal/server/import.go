package server

import (
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

// Import runs a bulk import stream.
func (s *Server) Import(stream ingestv1.IngestService_ImportServer) error {
	return statuses.Status(stream.Context(), s.logger, "Import", s.importer.Import(stream))
}
