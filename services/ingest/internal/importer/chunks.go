package importer

import (
	"errors"
	"io"

	"github.com/bullseye-ml/bullseye/pkg/fault"
)

// chunkReader reads the file's bytes from the chunks of an Import stream,
// from the resume offset on. It checks that chunks are contiguous and that
// the file is exactly its announced size: it reports io.EOF once size bytes
// have arrived, and an error if the client stops before.
type chunkReader struct {
	stream  Stream
	pos     int64 // file offset of the next byte handed out
	resume  int64 // bytes before it are skipped
	size    int64
	recvPos int64 // file offset just after the last chunk received
	started bool
	buf     []byte
}

// Read hands out the file's bytes from the resume offset on.
func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		if c.pos >= c.size {
			return 0, io.EOF
		}
		req, err := c.stream.Recv()
		if errors.Is(err, io.EOF) {
			return 0, fault.Invalid("start.size_bytes", "the stream ended after byte %d of %d; import again to resume", c.recvPos, c.size)
		}
		if err != nil {
			return 0, fault.Transport(err)
		}
		chunk := req.GetChunk()
		if chunk == nil {
			return 0, fault.Invalid("chunk", "every message after the start must be a chunk")
		}
		data := chunk.GetData()
		if len(data) > MaxChunkBytes {
			return 0, fault.Invalid("chunk.data", "a chunk holds more than 1 MiB")
		}
		if !c.started {
			if chunk.GetOffset() < 0 || chunk.GetOffset() > c.resume {
				return 0, fault.New(fault.ErrFailedPrecondition, reasonPrecondition, "the first chunk starts at byte %d, after the resume offset %d", chunk.GetOffset(), c.resume)
			}
			c.started, c.recvPos = true, chunk.GetOffset()
		} else if chunk.GetOffset() != c.recvPos {
			return 0, fault.New(fault.ErrFailedPrecondition, reasonPrecondition, "a chunk starts at byte %d where byte %d was expected; chunks must be contiguous", chunk.GetOffset(), c.recvPos)
		}
		c.recvPos += int64(len(data))
		if c.recvPos > c.size {
			return 0, fault.Invalid("start.size_bytes", "the file is longer than size_bytes")
		}
		if skip := c.pos - chunk.GetOffset(); skip > 0 {
			data = data[min(skip, int64(len(data))):]
		}
		c.buf = data
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	c.pos += int64(n)
	return n, nil
}
