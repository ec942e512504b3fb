package ingest_test

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/datasets"
	"github.com/bullseye-ml/bullseye/pkg/embedded"
	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
	"github.com/bullseye-ml/bullseye/services/ingest"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/importclient"
)

// binary is the bullseye-ingest binary under test.
var binary string

func TestMain(m *testing.M) {
	var bins embeddedtest.Binaries
	var err error
	if binary, err = bins.Path("bullseye-ingest"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	bins.Remove()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

const testKey = "bullseye test key, at least 32 bytes long"

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		args []string
		want string // in the error; "" for none
	}{
		{nil, ""},
		{[]string{"--max-events-per-batch", "0"}, "--max-events-per-batch"},
		{[]string{"--dedup-window", "1s"}, "--dedup-window"},
		{[]string{"--personal-fields", "email,context.shoe_size"}, "--personal-fields"},
		{[]string{"--personal-fields", "email,context.user_agent,traits.birthday"}, ""},
		{[]string{"--stream-replicas", "7"}, "--stream-replicas"},
		{[]string{"--publish-timeout", "1ms"}, "--publish-timeout"},
		{[]string{"--free-text-personal-data", "reject"}, ""},
		{[]string{"--free-text-personal-data", "redact"}, "--free-text-personal-data"},
	}
	for _, tt := range tests {
		cfg := ingest.NewConfig()
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		cfg.RegisterFlags(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		err := cfg.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%v: %v", tt.args, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%v: %v, want an error naming %s", tt.args, err, tt.want)
		}
	}
}

func TestConfigKey(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "hmac.key")
	if err := os.WriteFile(keyFile, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	want, _ := eventlog.NewPseudonymiser([]byte(testKey), "")

	cfg := ingest.NewConfig()
	t.Setenv(eventlog.KeyEnv, "")
	if _, err := cfg.Pseudonymiser(); err == nil || !strings.Contains(err.Error(), "--hmac-key-file") {
		t.Errorf("no key: %v, want an error naming --hmac-key-file", err)
	}
	cfg.HMACKeyFile = keyFile
	if p, err := cfg.Pseudonymiser(); err != nil || p.KeyID() != want.KeyID() {
		t.Errorf("key file: %v, %v", p, err)
	}
	cfg.HMACKeyFile = ""
	t.Setenv(eventlog.KeyEnv, testKey)
	if p, err := cfg.Pseudonymiser(); err != nil || p.SubjectHash("c") != want.SubjectHash("c") {
		t.Errorf("key from the environment: %v, %v", p, err)
	}
	t.Setenv(eventlog.KeyEnv, "")
	cfg.DevHMACKey, cfg.DataDir = true, filepath.Join(dir, "data")
	p1, err := cfg.Pseudonymiser()
	if err != nil {
		t.Fatal(err)
	}
	p2, err := cfg.Pseudonymiser()
	if err != nil || p1.KeyID() != p2.KeyID() {
		t.Errorf("the development key changed between starts: %v %v, %v", p1, p2, err)
	}
	if fi, err := os.Stat(filepath.Join(cfg.DataDir, "hmac.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("development key file: %v, %v", fi, err)
	}
}

// freeAddr returns a loopback address with a free port.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// service is a bullseye-ingest process.
type service struct {
	cmd    *exec.Cmd
	addr   string
	exited chan struct{} // closed when the process has exited
	err    error         // its exit status, once exited is closed
}

func startIngest(t *testing.T, etcd *embedded.Etcd, n *embedded.NATS, keyFile string) *service {
	t.Helper()
	s := &service{addr: freeAddr(t), exited: make(chan struct{})}
	s.cmd = exec.Command(binary,
		"--etcd-endpoints", strings.Join(etcd.Endpoints(), ","),
		"--nats-url", n.URL(),
		"--insecure",
		"--listen", s.addr,
		"--lease-ttl", "1s",
		"--data-dir", t.TempDir(),
		"--hmac-key-file", keyFile,
		"--import-progress-interval", "50ms",
	)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), testKey) {
				t.Errorf("the service logged its HMAC key: %s", sc.Text())
			}
		}
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.exited
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		hctx, hcancel := context.WithTimeout(ctx, time.Second)
		err := mesh.CheckHealth(hctx, s.addr, "ingest", mesh.TLSConfig{Insecure: true})
		hcancel()
		if err == nil {
			return s
		}
		select {
		case <-ctx.Done():
			t.Fatalf("bullseye-ingest at %s did not become ready: %v", s.addr, err)
		case <-s.exited:
			t.Fatalf("bullseye-ingest exited: %v", s.err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *service) client(t *testing.T) ingestv1.IngestServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ingestv1.NewIngestServiceClient(conn)
}

// dataFile reads a file of the shared data sets, failing the test when it is absent.
func dataFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(datasets.Require(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBinaryKilledMidImport runs the real bullseye-ingest, kills it with
// SIGKILL in the middle of an import, starts it again and imports again:
// every row is stored exactly once, and a third import adds nothing.
func TestBinaryKilledMidImport(t *testing.T) {
	data := dataFile(t, "bank-additional-full.csv")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	etcd, err := embedded.StartEtcd(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	n, err := embedded.StartNATS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown()
	keyFile := filepath.Join(t.TempDir(), "hmac.key")
	if err := os.WriteFile(keyFile, []byte(testKey), 0o600); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	count := func() uint64 {
		s, err := js.Stream(ctx, eventlog.EventsStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	num := commonv1.ValueType_VALUE_TYPE_NUMBER
	mapping := &ingestv1.ImportMapping{
		Format: ingestv1.FileFormat_FILE_FORMAT_CSV,
		Csv:    &ingestv1.CsvOptions{Delimiter: ";", HeaderRow: true},
		Entity: &ingestv1.ImportMapping_GeneratedIds{GeneratedIds: &ingestv1.GeneratedIds{Prefix: "bank-"}},
		Time:   &ingestv1.ImportMapping_FixedTime{FixedTime: timestamppb.New(time.Date(2010, 11, 30, 0, 0, 0, 0, time.UTC))},
		TraitColumns: []*ingestv1.ColumnMapping{{Column: "emp.var.rate", Type: num}, {Column: "cons.price.idx", Type: num},
			{Column: "cons.conf.idx", Type: num}, {Column: "euribor3m", Type: num}, {Column: "nr.employed", Type: num}},
		UnmappedColumns: ingestv1.UnmappedColumns_UNMAPPED_COLUMNS_TRAITS,
	}

	first := startIngest(t, etcd, n, keyFile)
	killed := errors.New("killed")
	var at *ingestv1.ImportResponse
	_, err = importclient.Import(ctx, first.client(t), "bank", data, mapping, importclient.Options{
		ChunkBytes: 16 << 10,
		OnProgress: func(p *ingestv1.ImportResponse) error {
			if p.GetResumeOffset() > 0 && p.GetRowsRead() >= 12000 {
				time.Sleep(20 * time.Millisecond)
				if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				at = p
				return killed
			}
			return nil
		},
	})
	if !errors.Is(err, killed) {
		t.Fatalf("first import: %v, want to kill the service midway", err)
	}
	<-first.exited
	stored := count()
	t.Logf("killed at resume offset %d with %d records stored", at.GetResumeOffset(), stored)
	if stored == 0 || stored >= 41188 {
		t.Fatalf("%d records stored when the service was killed, want part of the file", stored)
	}

	second := startIngest(t, etcd, n, keyFile)
	client := second.client(t)
	resumed := int64(-1)
	last, err := importclient.Import(ctx, client, "bank", data, mapping, importclient.Options{
		OnProgress: func(p *ingestv1.ImportResponse) error {
			if resumed < 0 {
				resumed = p.GetResumeOffset()
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resumed < at.GetResumeOffset() || !last.GetDone() || last.GetRecordsStored() != 41188 {
		t.Errorf("second import resumed at %d (recorded %d) and ended with %v", resumed, at.GetResumeOffset(), last)
	}
	if c := count(); c != 41188 {
		t.Errorf("events stream holds %d records, want 41188", c)
	}
	third, err := importclient.Import(ctx, client, "bank", data, mapping, importclient.Options{})
	if err != nil || !third.GetAlreadyImported() || count() != 41188 {
		t.Errorf("third import: %v, %v; stream holds %d", third, err, count())
	}

	// The key from the file pseudonymises what the service stores.
	resp, err := client.Track(ctx, &ingestv1.TrackRequest{Events: []*ingestv1.Event{{MessageId: "m1", UserId: "c-1", Name: "Signed Up",
		Properties: map[string]*commonv1.Value{"email": {Kind: &commonv1.Value_StringValue{StringValue: "ana@example.com"}}}}}})
	if err != nil || resp.GetCounts().GetAccepted() != 1 {
		t.Fatalf("Track: %v, %v", resp, err)
	}
	subj, _ := eventlog.EventSubject(eventlog.UserKey("c-1"), eventlog.TypeTrack)
	s, _ := js.Stream(ctx, eventlog.EventsStream)
	msg, err := s.GetLastMsgForSubject(ctx, subj)
	if err != nil {
		t.Fatal(err)
	}
	var ev ingestv1.StoredEvent
	if err := proto.Unmarshal(msg.Data, &ev); err != nil {
		t.Fatal(err)
	}
	p, _ := eventlog.NewPseudonymiser([]byte(testKey), "")
	if ev.GetProperties()["email"].GetStringValue() != p.Pseudonymise("ana@example.com") || ev.GetPseudonymKeyId() != p.KeyID() {
		t.Errorf("stored %v", &ev)
	}

	// SIGTERM stops it cleanly.
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-second.exited:
		if second.err != nil {
			t.Errorf("bullseye-ingest exited with %v after SIGTERM", second.err)
		}
	case <-time.After(20 * time.Second):
		t.Error("bullseye-ingest did not stop within 20s of SIGTERM")
	}
}
