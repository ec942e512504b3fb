package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bullseye-ml/bullseye/pkg/fault/hostile"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	inferencev1 "github.com/bullseye-ml/bullseye/pkg/gen/inference"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
)

// hostileCallsPerService is how many hostile calls each service takes.
const hostileCallsPerService = 1000

// TestThousandHostileCallsPerService sends each of the four services 1,000
// generated hostile calls of all kinds (malformed bytes, empty requests,
// every string field invalid UTF-8, 10 kB or 1 MiB, numbers NaN, Inf or out
// of range, bad enums and times, random wire bytes) at every public method,
// interleaved with accepted events of canary customers. No call may answer
// INTERNAL or UNKNOWN; afterwards every service answers its canary, and the
// reconciliation finds every accepted event materialised.
func TestThousandHostileCallsPerService(t *testing.T) {
	m := startMesh(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	conns := map[string]*grpc.ClientConn{}
	for _, name := range []string{"ingest", "feature", "training", "serving"} {
		conn, err := mesh.DialAddr(ctx, m.Addr(name), mesh.TLSConfig{Insecure: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns[name] = conn
	}
	services := map[string][]*grpc.ServiceDesc{
		"ingest":   {&ingestv1.IngestService_ServiceDesc},
		"feature":  {&featurev1.FeatureService_ServiceDesc},
		"training": {&trainingv1.TrainingService_ServiceDesc},
		"serving":  {&servingv1.PredictionService_ServiceDesc, &inferencev1.GRPCInferenceService_ServiceDesc},
	}
	ingest := ingestv1.NewIngestServiceClient(conns["ingest"])
	accepted := 0
	track := func(i int) {
		resp, err := ingest.Track(ctx, &ingestv1.TrackRequest{Events: []*ingestv1.Event{{
			MessageId: fmt.Sprintf("canary-%d", i), UserId: fmt.Sprintf("canary-%d", i%17), Name: "Canary Order",
		}}})
		if err != nil {
			t.Fatalf("canary Track %d: %v", i, err)
		}
		if resp.GetResults()[0].GetStatus() == ingestv1.EventStatus_EVENT_STATUS_ACCEPTED {
			accepted++
		}
	}
	// A hostile call must not make a service take memory without bound:
	// the services run in this process, so its heap is theirs (and the
	// requests': keep them small).
	var current atomic.Value
	current.Store("")
	watch, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		var ms runtime.MemStats
		for watch.Err() == nil {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > 4<<30 {
				fmt.Fprintf(os.Stderr, "heap at %d MiB during %s\n", ms.HeapAlloc>>20, current.Load())

				os.Exit(3)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	r := rand.New(rand.NewPCG(13, 7))
	bad := map[string]int{}
	codesSeen := map[codes.Code]int{}
	slow := map[string]int{}
	calls := 0
	for _, name := range []string{"ingest", "feature", "training", "serving"} {
		methods := methodsOf(t, services[name])
		for i := range hostileCallsPerService {
			meth := methods[r.IntN(len(methods))]
			data := hostileRequest(r, meth.in)
			current.Store(fmt.Sprintf("%s with %x", meth.full, data[:min(len(data), 400)]))
			began := time.Now()
			code, msg := call(ctx, conns[name], meth, data)
			calls++
			codesSeen[code]++
			if d := time.Since(began); d > time.Second {
				slow[meth.full]++
			}

			if code == codes.Internal || code == codes.Unknown {
				key := meth.full + " " + code.String()
				if bad[key] == 0 {
					t.Errorf("%s answered %v to a hostile request: %.300s", meth.full, code, msg)
				}
				bad[key]++
			}
			if i%50 == 0 {
				track(calls)
			}
		}
	}
	for k, n := range bad {
		t.Logf("%s: %d times", k, n)
	}
	t.Logf("codes %v; calls over a second: %v", codesSeen, slow)
	canaries(ctx, t, conns)
	verifyCtx, vcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer vcancel()
	resp, err := featurev1.NewFeatureServiceClient(conns["feature"]).VerifyMaterialization(verifyCtx, &featurev1.VerifyMaterializationRequest{})
	if err != nil {
		t.Fatalf("reconciliation: %v", err)
	}
	var canary *featurev1.RecordCount
	for _, rc := range resp.GetRecords() {
		if rc.GetName() == "Canary Order" {
			canary = rc
		}
	}
	if accepted == 0 || canary == nil || canary.GetStream() != int64(accepted) || canary.GetMaterialised() != int64(accepted) || resp.GetDifferences() != 0 {
		t.Fatalf("accepted %d canary events; reconciliation %v (%d differences)", accepted, canary, resp.GetDifferences())
	}
	t.Logf("%d hostile calls, %d canary events accepted and materialised", calls, accepted)
}

type method struct {
	full string
	in   protoreflect.MessageDescriptor
	sd   grpc.StreamDesc
}

func methodsOf(t *testing.T, descs []*grpc.ServiceDesc) []method {
	var out []method
	for _, d := range descs {
		desc, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(d.ServiceName))
		if err != nil {
			t.Fatal(err)
		}
		ms := desc.(protoreflect.ServiceDescriptor).Methods()
		streams := hostile.Streams(d)
		for i := 0; i < ms.Len(); i++ {
			md := ms.Get(i)
			full := "/" + d.ServiceName + "/" + string(md.Name())
			out = append(out, method{full: full, in: md.Input(), sd: streams[full]})
		}
	}
	return out
}

// call sends data and returns the status the call ended with.
func call(ctx context.Context, conn *grpc.ClientConn, m method, data []byte) (codes.Code, string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	codec := grpc.ForceCodec(rawCodec{})
	var err error
	if !m.sd.ServerStreams && !m.sd.ClientStreams {
		var reply []byte
		err = conn.Invoke(ctx, m.full, &data, &reply, codec)
	} else {
		var s grpc.ClientStream
		if s, err = conn.NewStream(ctx, &m.sd, m.full, codec); err == nil {
			_ = s.SendMsg(&data)
			_ = s.CloseSend()
			for {
				var b []byte
				if err = s.RecvMsg(&b); err != nil {
					break
				}
			}
			if errors.Is(err, io.EOF) {
				err = nil
			}
		}
	}
	st := status.Convert(err)
	return st.Code(), st.Message()
}

type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// hostileRequest makes the bytes of one hostile request of type md.
func hostileRequest(r *rand.Rand, md protoreflect.MessageDescriptor) []byte {
	switch r.IntN(10) {
	case 0:
		return hostile.Malformed
	case 1:
		b := make([]byte, r.IntN(64))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return b
	case 2:
		return nil // the empty request
	}
	msg := dynamicpb.NewMessage(md)
	fill(r, msg, 0)
	b, err := proto.MarshalOptions{AllowPartial: true}.Marshal(msg)
	if err != nil {
		return hostile.Malformed
	}
	b = bytes.ReplaceAll(b, []byte(utf8Marker), []byte(badUTF8))
	if r.IntN(4) == 0 {
		// An extra field of a wrong wire type at a known number.
		b = protowire.AppendTag(b, 1, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, r.Uint32())
	}
	return b
}

// utf8Marker stands for invalid UTF-8 while a request is encoded (the
// encoder refuses invalid UTF-8) and is then replaced, byte for byte, by
// badUTF8, of the same length.
const (
	utf8Marker = "~~bad-utf8~"
	badUTF8    = "ok\xff\xfe\xc3~~~~~~"
)

var hostileStrings = []string{"", utf8Marker, hostile.KB10, strings.Repeat("z", 3000), "a.b *>", "\x00\n", "ok", "Canary Order"}

// fill sets a random selection of m's fields to hostile values, nested
// messages to a depth of 4.
func fill(r *rand.Rand, m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if r.IntN(3) == 0 || fd.ContainingOneof() != nil && r.IntN(2) == 0 {
			continue
		}
		switch {
		case fd.IsList():
			l := m.Mutable(fd).List()
			if fd.Kind() != protoreflect.MessageKind && r.IntN(20) == 0 {
				for i := range 10001 {
					if fd.Kind() == protoreflect.StringKind {
						l.Append(protoreflect.ValueOfString(fmt.Sprint("x", i)))
					} else if v, ok := scalar(r, fd); ok {
						l.Append(v)
					}
				}
				continue
			}
			for range 1 + r.IntN(3) {
				if v, ok := value(r, fd, m, depth); ok {
					l.Append(v)
				}
			}
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			k := hostileStrings[r.IntN(len(hostileStrings))]
			if fd.MapKey().Kind() == protoreflect.StringKind {
				if v, ok := mapValue(r, fd.MapValue(), mp, depth); ok {
					mp.Set(protoreflect.ValueOfString(k).MapKey(), v)
				}
			}
		default:
			if v, ok := value(r, fd, m, depth); ok {
				m.Set(fd, v)
			}
		}
	}
}

func mapValue(r *rand.Rand, fd protoreflect.FieldDescriptor, mp protoreflect.Map, depth int) (protoreflect.Value, bool) {
	if fd.Kind() == protoreflect.MessageKind {
		if depth > 3 {
			return protoreflect.Value{}, false
		}
		v := mp.NewValue()
		fill(r, v.Message(), depth+1)
		return v, true
	}
	return scalar(r, fd)
}

func value(r *rand.Rand, fd protoreflect.FieldDescriptor, parent protoreflect.Message, depth int) (protoreflect.Value, bool) {
	if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
		if depth > 3 {
			return protoreflect.Value{}, false
		}
		var child protoreflect.Message
		if fd.IsList() {
			child = parent.Mutable(fd).List().NewElement().Message()
		} else {
			child = parent.NewField(fd).Message()
		}
		if fd.Message().FullName() == "google.protobuf.Timestamp" && r.IntN(2) == 0 {
			child.Set(fd.Message().Fields().ByName("seconds"), protoreflect.ValueOfInt64([]int64{math.MaxInt64, math.MinInt64, -62135596801, 253402300800}[r.IntN(4)]))
			return protoreflect.ValueOfMessage(child), true
		}
		fill(r, child, depth+1)
		return protoreflect.ValueOfMessage(child), true
	}
	return scalar(r, fd)
}

func scalar(r *rand.Rand, fd protoreflect.FieldDescriptor) (protoreflect.Value, bool) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(hostileStrings[r.IntN(len(hostileStrings))]), true
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes(hostile.Malformed), true
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(r.IntN(2) == 0), true
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber([]int32{0, 1, 999, -1}[r.IntN(4)])), true
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64([]float64{math.NaN(), math.Inf(1), math.Inf(-1), -1, 1e308, 0.5}[r.IntN(6)]), true
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32([]float64{math.NaN(), math.Inf(1), -1}[r.IntN(3)])), true
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32([]int32{-1, 0, math.MaxInt32, math.MinInt32, 3}[r.IntN(5)]), true
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64([]int64{-1, 0, math.MaxInt64, math.MinInt64, 3}[r.IntN(5)]), true
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32([]uint32{0, math.MaxUint32, 3}[r.IntN(3)]), true
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64([]uint64{0, math.MaxUint64, 3}[r.IntN(3)]), true
	}
	return protoreflect.Value{}, false
}

// canaries checks that every service still answers its health and one
// real call.
func canaries(ctx context.Context, t *testing.T, conns map[string]*grpc.ClientConn) {
	t.Helper()
	for name, conn := range conns {
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("%s health after the hostile calls: %v %v", name, resp.GetStatus(), err)
		}
	}
	if _, err := featurev1.NewFeatureServiceClient(conns["feature"]).ListFeatureSets(ctx, &featurev1.ListFeatureSetsRequest{}); err != nil {
		t.Errorf("feature canary: %v", err)
	}
	if _, err := trainingv1.NewTrainingServiceClient(conns["training"]).ListJobs(ctx, &trainingv1.ListJobsRequest{}); err != nil {
		t.Errorf("training canary: %v", err)
	}
	if _, err := inferencev1.NewGRPCInferenceServiceClient(conns["serving"]).ServerLive(ctx, &inferencev1.ServerLiveRequest{}); err != nil {
		t.Errorf("serving canary: %v", err)
	}
}
