// Command drill-loss is the loaded reproduction of lost imports (make
// drill-loss): on a mesh of its own (bullseye dev's, in this process), with
// busy loops on every core and a training job running, it imports a
// MovieLens-shaped set laid out as MovieLens-100K is (u.data, then u1..u5
// .base and .test, one event name per file, back to back) and compares,
// per event name, the rows each import accepted with the pairs
// ExportInteractions returns (what recommenders train on) and with the
// events the online feature counts hold, and runs bullseye verify (the
// stream reconciled with the profiles). It exits 1 on any difference.
// Everything runs on loopback and ends within its time bound.
package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
	"github.com/bullseye-ml/bullseye/pkg/ml/recommend"
	"github.com/bullseye-ml/bullseye/pkg/ml/synth"

	"github.com/bullseye-ml/bullseye/cmd/bullseye/internal/cli"
	"github.com/bullseye-ml/bullseye/cmd/bullseye/internal/dev"
)

func main() {
	runs := flag.Int("runs", 3, "independent runs, each on a new mesh")
	within := flag.Duration("timeout", 20*time.Minute, "bound on each run")
	burn := flag.Bool("load", true, "keep every core busy with busy loops while importing")
	train := flag.Bool("train", true, "run a training job while importing")
	flag.Parse()
	failed := false
	for i := 1; i <= *runs; i++ {
		fmt.Printf("== run %d of %d\n", i, *runs)
		ctx, cancel := context.WithTimeout(context.Background(), *within)
		lost, err := run(ctx, *burn, *train, os.Stdout)
		cancel()
		switch {
		case err != nil:
			fmt.Printf("run %d: %v\n", i, err)
			failed = true
		case lost > 0:
			fmt.Printf("run %d: %d accepted rows missing\n", i, lost)
			failed = true
		default:
			fmt.Printf("run %d: every accepted row is there\n", i)
		}
	}
	if failed {
		os.Exit(1)
	}
}

// file is one generated file and what became of it.
type file struct {
	name, path, event string
	rows              int
	accepted          int
	exported          int
	counted           int
}

func run(ctx context.Context, burn, train bool, out io.Writer) (lost int, err error) {
	dir, err := os.MkdirTemp("", "bullseye-drill-loss-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	files, err := generate(dir)
	if err != nil {
		return 0, err
	}
	m, err := dev.Start(ctx, dev.Options{DataDir: filepath.Join(dir, "mesh")})
	if err != nil {
		return 0, err
	}
	defer m.Close()
	if err := m.WaitServing(ctx); err != nil {
		return 0, err
	}
	etcd := strings.Join(m.EtcdEndpoints, ",")
	if burn {
		stop := busyLoops(ctx, runtime.NumCPU())
		defer stop()
	}
	if err := applyCounts(ctx, etcd, dir, files); err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	imported := make(chan struct{})
	defer wg.Wait()
	defer closeOnce(imported)
	started := time.Now()
	for i, f := range files {
		if i == 1 && train {
			// Train on u.data, again and again, while the other files come in.
			wg.Add(1)
			go func() {
				defer wg.Done()
				for jobs := 1; ; jobs++ {
					code, stdout, stderr := command(ctx, etcd, "train", "--timeout", "15m", filepath.Join(examples(), "train-als.yaml"))
					if code != 0 {
						fmt.Fprintf(out, "training job %d exited %d: %s%s\n", jobs, code, lastLine(stdout), lastLine(stderr))
					}
					select {
					case <-imported:
						fmt.Fprintf(out, "%d training jobs ran during the imports\n", jobs)
						return
					default:
					}
				}
			}()
		}
		code, stdout, stderr := command(ctx, etcd, "import", "--timeout", "10m", "--mapping", f.mapping(dir), f.path)
		if code != 0 {
			return 0, fmt.Errorf("import of %s exited %d: %s %s", f.name, code, stdout, stderr)
		}
		if f.accepted, err = accepted(stdout); err != nil {
			return 0, fmt.Errorf("import of %s: %w", f.name, err)
		}
		fmt.Fprintf(out, "imported %-8s %6d rows, %6d accepted (%s)\n", f.name, f.rows, f.accepted, time.Since(started).Round(time.Second))
	}
	closeOnce(imported)
	conn, err := mesh.DialAddr(ctx, m.Addr("feature"), mesh.TLSConfig{Insecure: true})
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	client := featurev1.NewFeatureServiceClient(conn)
	if err := countOnline(ctx, client, files); err != nil {
		return 0, err
	}
	fmt.Fprintf(out, "%-8s %8s %8s %8s %8s\n", "file", "rows", "accepted", "exported", "online")
	for _, f := range files {
		if f.exported, err = exported(ctx, client, f.event); err != nil {
			return 0, err
		}
		lost += max(f.accepted-f.exported, 0) + max(f.accepted-f.counted, 0)
		if f.accepted != f.rows {
			lost += f.rows - f.accepted
		}
		fmt.Fprintf(out, "%-8s %8d %8d %8d %8d\n", f.name, f.rows, f.accepted, f.exported, f.counted)
	}
	code, stdout, stderr := command(ctx, etcd, "verify", "--timeout", "5m")
	fmt.Fprintf(out, "bullseye verify: exit %d\n%s%s", code, stdout, stderr)
	if code != 0 {
		return lost, fmt.Errorf("bullseye verify exited %d", code)
	}
	return lost, nil
}

// generate writes u.data and the five folds (disjoint fifths of the
// ratings as tests, the rest as bases), each sorted by user then item as
// MovieLens ships them.
func generate(dir string) ([]*file, error) {
	data, err := synth.Generate(synth.MovieLens100K())
	if err != nil {
		return nil, err
	}
	d := data.Interactions
	all := make([]int, len(d.Users))
	for i := range all {
		all[i] = i
	}
	r := rand.New(rand.NewPCG(1, 2))
	shuffled := slices.Clone(all)
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	files := []*file{{name: "u.data", event: "Product Rated"}}
	sets := [][]int{all}
	for k := range 5 {
		fold := len(shuffled) / 5
		test := shuffled[k*fold : (k+1)*fold]
		inTest := make(map[int]bool, len(test))
		for _, i := range test {
			inTest[i] = true
		}
		var base []int
		for _, i := range all {
			if !inTest[i] {
				base = append(base, i)
			}
		}
		files = append(files, &file{name: fmt.Sprintf("u%d.base", k+1)}, &file{name: fmt.Sprintf("u%d.test", k+1)})
		sets = append(sets, base, slices.Clone(test))
	}
	for i, f := range files {
		if f.event == "" {
			f.event = "Rated " + f.name
		}
		rows := sets[i]
		slices.SortFunc(rows, func(a, b int) int {
			return cmp.Or(cmp.Compare(d.UserIDs[d.Users[a]], d.UserIDs[d.Users[b]]), cmp.Compare(d.ItemIDs[d.Items[a]], d.ItemIDs[d.Items[b]]))
		})
		f.rows = len(rows)
		f.path = filepath.Join(dir, f.name)
		if err := writeSubset(f.path, d, rows); err != nil {
			return nil, err
		}
	}
	return files, nil
}

func closeOnce(c chan struct{}) {
	select {
	case <-c:
	default:
		close(c)
	}
}

func writeSubset(path string, d *recommend.Interactions, rows []int) error {
	sub := &recommend.Interactions{UserIDs: d.UserIDs, ItemIDs: d.ItemIDs}
	for _, i := range rows {
		sub.Users = append(sub.Users, d.Users[i])
		sub.Items = append(sub.Items, d.Items[i])
		sub.Values = append(sub.Values, d.Values[i])
		sub.Times = append(sub.Times, d.Times[i])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := synth.WriteMovieLens(f, sub); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// mapping writes the file's import mapping: the example's, under the
// file's own event name.
func (f *file) mapping(dir string) string {
	path := filepath.Join(dir, f.name+".mapping.yaml")
	_ = os.WriteFile(path, []byte(`format: FILE_FORMAT_CSV
csv:
  delimiter: "\t"
  columnNames: [user_id, item_id, rating, timestamp]
userIdColumn: user_id
timestampColumn: {column: timestamp, format: TIME_FORMAT_UNIX_SECONDS}
outcomeEvents:
  - name: `+strconv.Quote(f.event)+`
    itemIdColumn: item_id
    propertyColumns:
      - {column: rating, type: VALUE_TYPE_NUMBER}
`), 0o600)
	return path
}

// applyCounts declares a feature set counting each file's events per
// customer.
func applyCounts(ctx context.Context, etcd, dir string, files []*file) error {
	var b strings.Builder
	b.WriteString("name: drill_counts\nfeatures:\n")
	for i, f := range files {
		fmt.Fprintf(&b, "  - name: n%d\n    aggregate: {aggregation: AGGREGATION_COUNT, filter: {names: [%s]}}\n", i, strconv.Quote(f.event))
	}
	path := filepath.Join(dir, "counts.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return err
	}
	if code, stdout, stderr := command(ctx, etcd, "featureset", "apply", path); code != 0 {
		return fmt.Errorf("featureset apply exited %d: %s %s", code, stdout, stderr)
	}
	return nil
}

// countOnline adds up each file's count over every customer, online.
func countOnline(ctx context.Context, c featurev1.FeatureServiceClient, files []*file) error {
	var ids []string
	stream, err := c.ListEntities(ctx, &featurev1.ListEntitiesRequest{})
	if err != nil {
		return fmt.Errorf("listing customers: %w", err)
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("listing customers: %w", err)
		}
		for _, e := range resp.GetEntities() {
			ids = append(ids, e.GetId())
		}
	}
	for chunk := range slices.Chunk(ids, 100) {
		req := &featurev1.GetOnlineFeaturesRequest{FeatureSet: &featurev1.FeatureSetRef{Name: "drill_counts"}}
		for _, id := range chunk {
			req.Entities = append(req.Entities, &commonv1.EntityKey{Id: id})
		}
		resp, err := c.GetOnlineFeatures(ctx, req)
		if err != nil {
			return fmt.Errorf("online counts: %w", err)
		}
		for _, r := range resp.GetResults() {
			for i, v := range r.GetValues() {
				files[i].counted += int(v.GetValue().GetIntValue())
			}
		}
	}
	return nil
}

// exported counts the pairs ExportInteractions returns for an event name.
func exported(ctx context.Context, c featurev1.FeatureServiceClient, event string) (int, error) {
	stream, err := c.ExportInteractions(ctx, &featurev1.ExportInteractionsRequest{
		Mode: &featurev1.ExportInteractionsRequest_Explicit{Explicit: &featurev1.ExplicitFeedback{EventNames: []string{event}, RatingProperty: "rating"}},
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("exporting %s: %w", event, err)
		}
		n += len(resp.GetInteractions())
	}
}

var acceptedRE = regexp.MustCompile(`(\d+) accepted`)

func accepted(stdout string) (int, error) {
	m := acceptedRE.FindAllStringSubmatch(stdout, -1)
	if len(m) == 0 {
		return 0, fmt.Errorf("no accepted count in %q", stdout)
	}
	return strconv.Atoi(m[len(m)-1][1])
}

func command(ctx context.Context, etcd string, args ...string) (int, string, string) {
	c, ok := cli.Find(args[0])
	if !ok {
		return 2, "", "no command " + args[0]
	}
	var out, errOut bytes.Buffer
	code := cli.Main(ctx, c, append([]string{"--etcd", etcd}, args[1:]...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// busyLoops keeps n cores busy in child processes until stop or ctx ends.
func busyLoops(ctx context.Context, n int) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var cmds []*exec.Cmd
	for range n {
		c := exec.CommandContext(ctx, "sh", "-c", "while :; do :; done")
		if c.Start() == nil {
			cmds = append(cmds, c)
		}
	}
	return func() {
		cancel()
		for _, c := range cmds {
			_ = c.Wait()
		}
	}
}

func examples() string {
	for dir, _ := os.Getwd(); dir != "/"; dir = filepath.Dir(dir) {
		if p := filepath.Join(dir, "examples", "movielens"); isDir(p) {
			return p
		}
	}
	return "examples/movielens"
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
