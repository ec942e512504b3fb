package mesh

import (
	"context"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
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
// Clients dialled by this package use it on every call; servers use a
// serverCodec.
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

// serverCodec is the codec of one server. It defers a request that cannot
// be decoded to its interceptors, which answer INVALID_ARGUMENT: gRPC
// itself answers INTERNAL for any codec error, which blames the server for
// the caller's bytes. And it calls what RecycleAfterMarshal registered for
// a reply once it has encoded it.
type serverCodec struct {
	codec

	// undecodable maps a request message that could not be decoded to the
	// decoding error; pendingUndecodable counts its entries, so that the
	// interceptors look only when there are some.
	undecodable        sync.Map
	pendingUndecodable atomic.Int64

	// recycle maps a reply to the function RecycleAfterMarshal registered
	// for it; recyclable counts its entries, so that Marshal looks only
	// when there are some.
	recycle    sync.Map
	recyclable atomic.Int64
}

func newServerCodec() *serverCodec {
	return &serverCodec{codec: newCodec()}
}

// serverCodecKey is the context key under which a server's interceptor
// hands its codec to the handler, for RecycleAfterMarshal.
type serverCodecKey struct{}

// RecycleAfterMarshal has the codec of the mesh server that called the
// handler with ctx call release once it has encoded msg, so that a handler
// can build its replies in storage it reuses (a large reply is otherwise
// garbage the moment it is sent). It is for the reply of a unary handler
// that returns it with a nil error: gRPC encodes that reply exactly once,
// after every interceptor has returned, and reads it no more (the stats
// handlers of this mesh look at sizes, not messages; grpc.EnableTracing,
// which would log the message to be formatted later, must stay off).
// A reply registered but never encoded (returned with an error) is never
// released and keeps its entry; with a ctx that no mesh server gave (a
// handler called directly) nothing is registered and release is never
// called.
func RecycleAfterMarshal(ctx context.Context, msg any, release func()) {
	c, ok := ctx.Value(serverCodecKey{}).(*serverCodec)
	if !ok {
		return
	}
	c.recycle.Store(msg, release)
	c.recyclable.Add(1)
}

// Marshal encodes v, then calls what RecycleAfterMarshal registered for v.
func (c *serverCodec) Marshal(v any) (mem.BufferSlice, error) {
	data, err := c.codec.Marshal(v)
	if c.recyclable.Load() > 0 {
		if release, ok := c.recycle.LoadAndDelete(v); ok {
			c.recyclable.Add(-1)
			release.(func())()
		}
	}
	return data, err
}

// Unmarshal decodes data into v. A request that cannot be decoded is left
// empty and noted for the interceptors.
func (c *serverCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.codec.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	if r, ok := v.(interface{ Reset() }); ok {
		r.Reset()
	}
	c.undecodable.Store(v, err)
	c.pendingUndecodable.Add(1)
	return nil
}

// decodeError returns and forgets the decoding error of req, if it had
// one, as an INVALID_ARGUMENT status naming no internal detail beyond the
// decoder's message.
func (c *serverCodec) decodeError(req any) error {
	if c.pendingUndecodable.Load() == 0 {
		return nil
	}
	err, ok := c.undecodable.LoadAndDelete(req)
	if !ok {
		return nil
	}
	c.pendingUndecodable.Add(-1)
	return status.Error(codes.InvalidArgument, "the request is not a valid protobuf message of its type: "+err.(error).Error())
}

// unaryInterceptor answers INVALID_ARGUMENT for a request the codec could
// not decode, before any handler sees it, and gives the handler the codec
// for RecycleAfterMarshal.
func (c *serverCodec) unaryInterceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := c.decodeError(req); err != nil {
		return nil, err
	}
	return handler(context.WithValue(ctx, serverCodecKey{}, c), req)
}

// streamInterceptor answers INVALID_ARGUMENT for each message a stream
// receives that the codec could not decode.
func (c *serverCodec) streamInterceptor(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, decodingStream{ServerStream: ss, codec: c})
}

type decodingStream struct {
	grpc.ServerStream
	codec *serverCodec
}

func (s decodingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.codec.decodeError(m)
}
