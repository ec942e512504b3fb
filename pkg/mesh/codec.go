package mesh

import (
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// vtMessage is a message with the fast, reflection-free marshalling code
// that protoc-gen-go-vtproto generates beside the standard code (pkg/gen).
type vtMessage interface {
	SizeVT() int
	MarshalToSizedBufferVT(dAtA []byte) (int, error)
	UnmarshalVT(dAtA []byte) error
}

// codec is the mesh's gRPC codec: the standard "proto" wire format, encoded
// and decoded with the generated vtproto methods when a message has them
// (several times faster than reflection for large batched replies such as
// GetOnlineFeatures and Predict), and with grpc's own proto codec otherwise.
// Servers and clients built by this package use it on every call.
type codec struct {
	fallback encoding.CodecV2
}

func newCodec() codec {
	return codec{fallback: encoding.GetCodecV2(grpcproto.Name)}
}

// Marshal encodes v into a buffer from grpc's pool when it is large enough
// to be worth pooling, as grpc's proto codec does.
func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(vtMessage)
	if !ok {
		return c.fallback.Marshal(v)
	}
	size := m.SizeVT()
	if mem.IsBelowBufferPoolingThreshold(size) {
		buf := make([]byte, size)
		if _, err := m.MarshalToSizedBufferVT(buf); err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	if _, err := m.MarshalToSizedBufferVT((*buf)[:size]); err != nil {
		pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// Unmarshal decodes data into v.
func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(vtMessage)
	if !ok {
		return c.fallback.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return m.UnmarshalVT(buf.ReadOnlyData())
}

// Name is the codec's content subtype: the standard protobuf one, so peers
// that use grpc's own codec interoperate unchanged.
func (codec) Name() string { return grpcproto.Name }
