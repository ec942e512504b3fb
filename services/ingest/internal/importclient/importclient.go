// Package importclient is the client side of the Import stream: it sends a
// file's start message, then its bytes from the offset the server
// announces, and follows the progress to the end.
package importclient

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

// DefaultChunkBytes is the size of the chunks sent unless told otherwise.
const DefaultChunkBytes = 256 << 10

// Options tunes Import.
type Options struct {
	// ChunkBytes is the size of each chunk; zero means DefaultChunkBytes.
	ChunkBytes int
	// ValidateOnly parses and validates without storing.
	ValidateOnly bool
	// OnProgress sees every progress message; an error it returns ends the
	// import there (the stream is cancelled) and is returned.
	OnProgress func(*ingestv1.ImportResponse) error
	// Digest, when set, is sent instead of the file's SHA-256 (for tests of
	// the server's check).
	Digest string
	// From, when set, chooses the offset to send from given the server's
	// resume offset (a client that cannot seek sends from 0).
	From func(resume int64) int64
}

// Import imports data (the whole file) as name with mapping m, and returns
// the last progress message: the one with done set when it succeeds.
func Import(ctx context.Context, client ingestv1.IngestServiceClient, name string, data []byte, m *ingestv1.ImportMapping, o Options) (*ingestv1.ImportResponse, error) {
	if o.ChunkBytes <= 0 {
		o.ChunkBytes = DefaultChunkBytes
	}
	digest := o.Digest
	if digest == "" {
		sum := sha256.Sum256(data)
		digest = hex.EncodeToString(sum[:])
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Import(ctx)
	if err != nil {
		return nil, fmt.Errorf("opening the import stream: %w", err)
	}
	start := &ingestv1.ImportStart{FileName: name, SizeBytes: int64(len(data)), Sha256: digest, Mapping: m, ValidateOnly: o.ValidateOnly}
	if err := stream.Send(&ingestv1.ImportRequest{Kind: &ingestv1.ImportRequest_Start{Start: start}}); err != nil {
		return nil, fmt.Errorf("sending the start message: %w", err)
	}
	first, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	if o.OnProgress != nil {
		if err := o.OnProgress(first); err != nil {
			return first, err
		}
	}
	if first.GetDone() {
		return first, nil
	}
	from := first.GetResumeOffset()
	if o.From != nil {
		from = o.From(from)
	}
	go func() {
		// A failed send shows as the stream's error on Recv.
		for off := from; off < int64(len(data)); off += int64(o.ChunkBytes) {
			end := min(off+int64(o.ChunkBytes), int64(len(data)))
			chunk := &ingestv1.ImportChunk{Offset: off, Data: data[off:end]}
			if stream.Send(&ingestv1.ImportRequest{Kind: &ingestv1.ImportRequest_Chunk{Chunk: chunk}}) != nil {
				return
			}
		}
		_ = stream.CloseSend()
	}()
	last := first
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return last, errors.New("the import stream ended without a done message")
		}
		if err != nil {
			return last, err
		}
		last = resp
		if o.OnProgress != nil {
			if err := o.OnProgress(resp); err != nil {
				return last, err
			}
		}
		if resp.GetDone() {
			return last, nil
		}
	}
}
