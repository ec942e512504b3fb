package mesh

import (
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
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
	// server defers a request that cannot be decoded to the handler's
	// interceptors (undecodable), which answer INVALID_ARGUMENT: gRPC
	// itself answers INTERNAL for any codec error, which blames the
	// server for the caller's bytes.
	server bool
}

func newCodec() codec {
	return codec{fallback: encoding.GetCodecV2(grpcproto.Name)}
}

func newServerCodec() codec {
	c := newCodec()
	c.server = true
	return c
}

// undecodable maps a request message that the server codec could not
// decode to the decoding error; pendingUndecodable counts its entries, so
// that the interceptors look only when there are some.
var (
	undecodable        sync.Map
	pendingUndecodable atomic.Int64
)

// decodeError returns and forgets the decoding error of req, if it had
// one, as an INVALID_ARGUMENT status naming no internal detail beyond the
// decoder's message.
func decodeError(req any) error {
	if pendingUndecodable.Load() == 0 {
		return nil
	}
	err, ok := undecodable.LoadAndDelete(req)
	if !ok {
		return nil
	}
	pendingUndecodable.Add(-1)
	return status.Error(codes.InvalidArgument, "the request is not a valid protobuf message of its type: "+err.(error).Error())
}

// Marshal encodes v into a buffer from grpc's pool when it is large enough
// to be worth pooling, as grpc's proto codec does, then calls what
// RecycleAfterMarshal registered for v.
func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	data, err := c.marshal(v)
	if recyclable.Load() > 0 {
		if release, ok := recycle.LoadAndDelete(v); ok {
			recyclable.Add(-1)
			release.(func())()
		}
	}
	return data, err
}

func (c codec) marshal(v any) (mem.BufferSlice, error) {
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

// recycle maps a reply to the function RecycleAfterMarshal registered for
// it; recyclable counts its entries, so that Marshal looks only when there
// are some.
var (
	recycle    sync.Map
	recyclable atomic.Int64
)

// RecycleAfterMarshal has the mesh codec call release once it has encoded
// msg, so that a handler can build its replies in storage it reuses (a
// large reply is otherwise garbage the moment it is sent). It is for the
// reply of a unary handler that returns it with a nil error: gRPC encodes
// that reply exactly once, after every interceptor has returned, and reads
// it no more (the stats handlers of this mesh look at sizes, not messages;
// grpc.EnableTracing, which would log the message to be formatted later,
// must stay off).
// A reply registered but never encoded (returned with an error, or from a
// handler called directly) is never released and keeps its entry.
func RecycleAfterMarshal(msg any, release func()) {
	recycle.Store(msg, release)
	recyclable.Add(1)
}

// Unmarshal decodes data into v. On a server, a request that cannot be
// decoded is left empty and noted for rejectUndecodable.
func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.unmarshal(data, v)
	if err == nil || !c.server {
		return err
	}
	if r, ok := v.(interface{ Reset() }); ok {
		r.Reset()
	}
	undecodable.Store(v, err)
	pendingUndecodable.Add(1)
	return nil
}

func (c codec) unmarshal(data mem.BufferSlice, v any) error {
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
