package embeddedtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/bullseye-ml/bullseye/pkg/mesh"
)

// Process is a Bullseye service binary running against an Env. It is a prometheus.Gatherer
// of the metrics it serves.
type Process struct {
	// Addr is the address its gRPC server listens on; MetricsAddr that of its /metrics.
	Addr        string
	MetricsAddr string

	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// StartProcess runs the service binary bin against the environment — its etcd and NATS,
// plaintext, the gRPC and metrics listeners on ports of their choosing on 127.0.0.1, a 2s
// discovery lease, a data directory of its own, then args — and returns once it is SERVING.
// Its log (JSON lines) goes to logs, or to stderr when logs is nil and BULLSEYE_TEST_LOGS is
// set. Kill stops it.
func (e *Env) StartProcess(ctx context.Context, bin string, logs io.Writer, args ...string) (*Process, error) {
	name := filepath.Base(bin)
	dataDir, err := e.Dir(name)
	if err != nil {
		return nil, err
	}
	if logs == nil && os.Getenv("BULLSEYE_TEST_LOGS") != "" {
		logs = os.Stderr
	}
	log := &startLog{out: logs, listening: make(chan serving, 1)}
	cmd := exec.Command(bin, append([]string{
		"--etcd-endpoints", strings.Join(e.Etcd.Endpoints(), ","),
		"--nats-url", e.NATS.URL(),
		"--insecure",
		"--listen", "127.0.0.1:0",
		"--metrics-listen", "127.0.0.1:0",
		"--lease-ttl", "2s",
		"--data-dir", dataDir,
		"--log-level", "info",
	}, args...)...)
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	select {
	case s := <-log.listening:
		p.Addr, p.MetricsAddr = s.Listen, s.Metrics
	case <-p.exited:
		return nil, fmt.Errorf("%s exited before listening (%v): %s", name, p.err, log.head())
	case <-ctx.Done():
		p.Kill()
		return nil, fmt.Errorf("%s did not listen: %w", name, ctx.Err())
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.exited:
			cancel()
		case <-wctx.Done():
		}
	}()
	if err := WaitServing(wctx, p.Addr); err != nil {
		p.Kill()
		return nil, fmt.Errorf("%s: %w (exit: %v)", name, err, p.err)
	}
	return p, nil
}

// Kill stops the process with SIGKILL and waits until it has exited.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Gather scrapes the process's /metrics.
func (p *Process) Gather() ([]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.MetricsAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics of %s: %s", p.MetricsAddr, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	byName, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("metrics of %s: %w", p.MetricsAddr, err)
	}
	mfs := make([]*dto.MetricFamily, 0, len(byName))
	for _, mf := range byName {
		mfs = append(mfs, mf)
	}
	slices.SortFunc(mfs, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return mfs, nil
}

// WaitServing waits until the server at addr reports SERVING (plaintext).
func WaitServing(ctx context.Context, addr string) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		err := mesh.CheckHealth(cctx, addr, "", mesh.TLSConfig{Insecure: true})
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not SERVING: %w", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// serving is the record a server logs once it listens (pkg/mesh).
type serving struct {
	Msg     string `json:"msg"`
	Listen  string `json:"listen"`
	Metrics string `json:"metrics"`
}

// startLog is a process's stderr: it copies the log to out and, until the server listens,
// reads it for the serving record, keeping the first lines for an error.
type startLog struct {
	out       io.Writer
	listening chan serving

	mu      sync.Mutex
	found   bool
	partial []byte
	first   bytes.Buffer
}

func (l *startLog) Write(p []byte) (int, error) {
	if l.out != nil {
		if _, err := l.out.Write(p); err != nil {
			return 0, err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.found {
		return len(p), nil
	}
	if l.first.Len() < 16<<10 {
		l.first.Write(p)
	}
	l.partial = append(l.partial, p...)
	for {
		line, rest, ok := bytes.Cut(l.partial, []byte("\n"))
		if !ok {
			break
		}
		l.partial = rest
		var s serving
		if json.Unmarshal(line, &s) == nil && s.Msg == "serving" && s.Listen != "" {
			l.found, l.partial = true, nil
			l.listening <- s
			break
		}
	}
	return len(p), nil
}

// head returns the start of the log.
func (l *startLog) head() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.TrimSpace(l.first.String())
}
