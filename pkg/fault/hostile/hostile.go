// Package hostile runs tables of bad inputs against a real gRPC server, for
// the hostile-input suites of every service's tests: each case is sent as
// wire bytes (so that invalid UTF-8 and malformed protobuf reach the
// server as a hostile client would send them), its status code and the
// field its BadRequest names are checked, and after each method's cases a
// canary call proves the service still works. Cover fails a test for every
// method of a served service that has no table.
package hostile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bullseye-ml/bullseye/pkg/fault"
)

// Case is one bad input to one method.
type Case struct {
	// Name says what is bad, e.g. "1 MiB user_id".
	Name string
	// Requests are the messages the client sends: one for unary and
	// server-streaming methods, any number for client streams.
	Requests []proto.Message
	// Raw, when set, is sent as the (first) message's bytes instead:
	// malformed protobuf.
	Raw []byte
	// Code is the status the call must end with. For a stream it is the
	// status of the first error received (codes.OK: the stream ends
	// cleanly, or the reply's own per-item statuses carry the rejection,
	// checked by Check).
	Code codes.Code
	// Field, when set, must be the field of one of the BadRequest
	// violations of the status (a prefix match on a path: "events[1]"
	// matches "events[1].name").
	Field string
	// Check, when set, inspects the first reply of a call that succeeded
	// (decoded into a new message of Reply's type).
	Check func(t *testing.T, reply proto.Message)
	// Reply is the method's reply type, for Check.
	Reply proto.Message
}

// Table maps full method names ("/bullseye.ingest.v1.IngestService/Track")
// to their cases.
type Table map[string][]Case

// rawCodec sends and receives message bytes as they are.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("hostile: raw codec marshals *[]byte, not %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("hostile: raw codec unmarshals into *[]byte, not %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

var _ encoding.Codec = rawCodec{}

// Wire returns m's wire bytes without validating its strings as UTF-8 (as
// a hostile client may send them): with the message's generated MarshalVT
// when it has one.
func Wire(m proto.Message) ([]byte, error) {
	if vt, ok := m.(interface{ MarshalVT() ([]byte, error) }); ok {
		return vt.MarshalVT()
	}
	return proto.Marshal(m)
}

// Run sends every case of table to conn, checks each outcome, and calls
// canary after each method's cases (a nil canary is an error: a suite
// that does not prove the service still works proves little). It returns
// how many calls it made.
func Run(t *testing.T, conn *grpc.ClientConn, streams map[string]grpc.StreamDesc, table Table, canary func(t *testing.T)) int {
	t.Helper()
	if canary == nil {
		t.Fatal("hostile.Run needs a canary")
	}
	calls := 0
	methods := make([]string, 0, len(table))
	for m := range table {
		methods = append(methods, m)
	}
	slices.Sort(methods)
	for _, method := range methods {
		for _, c := range table[method] {
			t.Run(strings.TrimPrefix(method, "/")+"/"+c.Name, func(t *testing.T) {
				calls++
				runCase(t, conn, method, streams[method], c)
			})
		}
		canary(t)
	}
	return calls
}

func runCase(t *testing.T, conn *grpc.ClientConn, method string, sd grpc.StreamDesc, c Case) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs := make([][]byte, 0, len(c.Requests)+1)
	if c.Raw != nil {
		msgs = append(msgs, c.Raw)
	}
	for _, r := range c.Requests {
		b, err := Wire(r)
		if err != nil {
			t.Fatalf("encoding the request: %v", err)
		}
		msgs = append(msgs, b)
	}
	var reply []byte
	var err error
	if !sd.ServerStreams && !sd.ClientStreams {
		if len(msgs) != 1 {
			t.Fatalf("a unary case sends one message, not %d", len(msgs))
		}
		err = conn.Invoke(ctx, method, &msgs[0], &reply, grpc.ForceCodecV2(nil), grpc.ForceCodec(rawCodec{}))
	} else {
		reply, err = stream(ctx, conn, method, sd, msgs)
	}
	check(t, c, reply, err)
}

// stream sends msgs on a stream and reads until its end, returning the
// first reply and the stream's error (nil at a clean end).
func stream(ctx context.Context, conn *grpc.ClientConn, method string, sd grpc.StreamDesc, msgs [][]byte) ([]byte, error) {
	s, err := conn.NewStream(ctx, &sd, method, grpc.ForceCodec(rawCodec{}))
	if err != nil {
		return nil, err
	}
	for i := range msgs {
		if err := s.SendMsg(&msgs[i]); err != nil {
			break // the server ended the stream: its status comes with RecvMsg
		}
	}
	_ = s.CloseSend()
	var first []byte
	for n := 0; ; n++ {
		var b []byte
		err := s.RecvMsg(&b)
		if errors.Is(err, io.EOF) {
			return first, nil
		}
		if err != nil {
			return first, err
		}
		if n == 0 {
			first = b
		}
	}
}

func check(t *testing.T, c Case, reply []byte, err error) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != c.Code {
		t.Fatalf("status %v %s, want %v", st.Code(), fault.Quote(st.Message()), c.Code)
	}
	if st.Code() == codes.Internal || st.Code() == codes.Unknown {
		t.Fatalf("a bad input must never be INTERNAL or UNKNOWN: %s", fault.Quote(st.Message()))
	}
	if len(st.Message()) > 2048 {
		t.Errorf("the message is %d bytes long: a caller's value is echoed whole", len(st.Message()))
	}
	if n := proto.Size(st.Proto()); n > 16<<10 {
		t.Errorf("the status with its details is %d bytes long: a caller's value is echoed whole in a field or a description", n)
	}
	if c.Field != "" && !namesField(st, c.Field) {
		t.Errorf("no violation names %s: %v", c.Field, st.Details())
	}
	if c.Check != nil && err == nil {
		if c.Reply == nil {
			t.Fatal("a Check needs the Reply type")
		}
		m := c.Reply.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(reply, m); err != nil {
			t.Fatalf("decoding the reply: %v", err)
		}
		c.Check(t, m)
	}
}

func namesField(st *status.Status, field string) bool {
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		for _, v := range br.GetFieldViolations() {
			f := v.GetField()
			if f == field || strings.HasPrefix(f, field+".") || strings.HasPrefix(f, field+"[") {
				return true
			}
		}
	}
	return false
}

// Streams returns the stream descriptions of the services' methods, by
// full method name, for Run.
func Streams(descs ...*grpc.ServiceDesc) map[string]grpc.StreamDesc {
	out := map[string]grpc.StreamDesc{}
	for _, d := range descs {
		for _, s := range d.Streams {
			out["/"+d.ServiceName+"/"+s.StreamName] = s
		}
	}
	return out
}

// Cover fails t for every method of descs that has no case in table, and
// for every table entry that names no method of descs.
func Cover(t *testing.T, table Table, descs ...*grpc.ServiceDesc) {
	t.Helper()
	known := map[string]bool{}
	for _, d := range descs {
		for _, m := range d.Methods {
			known["/"+d.ServiceName+"/"+m.MethodName] = true
		}
		for _, s := range d.Streams {
			known["/"+d.ServiceName+"/"+s.StreamName] = true
		}
	}
	for m := range known {
		if len(table[m]) == 0 {
			t.Errorf("method %s has no hostile-input table", m)
		}
	}
	for m := range table {
		if !known[m] {
			t.Errorf("the hostile-input table names %s, which no covered service serves", m)
		}
	}
}

// Strings of the standard bad kinds.
var (
	// InvalidUTF8 is not UTF-8.
	InvalidUTF8 = "ok\xff\xfe"
	// KB10 and MB1 are 10 kB and 1 MiB long.
	KB10 = strings.Repeat("k", 10<<10)
	MB1  = strings.Repeat("m", 1<<20)
)

// Malformed is bytes that are no protobuf message (a length-delimited
// field whose length runs past the end).
var Malformed = []byte{0x0a, 0xff, 0xff, 0xff, 0x0f, 'x'}
