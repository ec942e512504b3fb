// Package demo runs Bullseye's end-to-end demonstration (`bullseye demo`,
// the README's `make demo`): it starts a development mesh, then drives it
// with the same client commands a person would type, printing each command
// before its output:
//
//  1. Bank Marketing: import, feature set, model selection across the
//     families, promotion of the winner, Predict for five customers, and the
//     top decile exported as a campaign audience;
//  2. CDNOW: import, RFM features at a cutoff, a spend regression and a
//     repurchase propensity model on the following 39 weeks, and a customer
//     lifetime value model (BG/NBD and Gamma-Gamma) evaluated on them and
//     valuing three customers;
//  3. a recommender trained on generated ratings, with recommendations for
//     three customers;
//  4. an HTML report per trained model;
//  5. a clean stop of the mesh.
package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bullseye-ml/bullseye/cmd/bullseye/internal/cli"
	"github.com/bullseye-ml/bullseye/cmd/bullseye/internal/dev"
	"github.com/bullseye-ml/bullseye/pkg/ml/synth"
)

// Options configures a demo run.
type Options struct {
	// DataDir holds the shared data sets (Bank Marketing, CDNOW).
	DataDir string
	// Examples is the folder of example mappings, feature sets and specs.
	Examples string
	// Out is where reports and the audience file are written.
	Out string
	// FullSearch runs the full model selection on Bank instead of the
	// demo-sized one.
	FullSearch bool
	// Stdout and Stderr receive the demo's output.
	Stdout, Stderr io.Writer
}

// Command runs `bullseye demo` and returns the process exit code.
func Command(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bullseye demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := Options{Stdout: stdout, Stderr: stderr}
	fs.StringVar(&opts.DataDir, "data", defaultDataDir(), "folder with bank-additional-full.csv and CDNOW_master.txt ($BULLSEYE_DATA_DIR)")
	fs.StringVar(&opts.Examples, "examples", "examples", "folder of example mappings, feature sets and training specs")
	fs.StringVar(&opts.Out, "out", "out/demo", "folder for the reports and the campaign audience")
	fs.BoolVar(&opts.FullSearch, "full-search", false, "run the full model selection on Bank (tens of minutes) instead of the demo's")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, opts); err != nil {
		fmt.Fprintln(stderr, "bullseye demo:", err)
		return 1
	}
	return 0
}

func defaultDataDir() string {
	if d := os.Getenv("BULLSEYE_DATA_DIR"); d != "" {
		return d
	}
	return filepath.Join("..", "shared", "data")
}

// Run runs the demo on a fresh mesh, stopping it at the end.
func Run(ctx context.Context, opts Options) error {
	start := time.Now()
	for _, f := range []string{"bank-additional-full.csv", "CDNOW_master.txt"} {
		if _, err := os.Stat(filepath.Join(opts.DataDir, f)); err != nil {
			return fmt.Errorf("the demo needs %s in %s (set --data or BULLSEYE_DATA_DIR): %w", f, opts.DataDir, err)
		}
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return err
	}
	meshDir, err := os.MkdirTemp("", "bullseye-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(meshDir)

	d := &demo{opts: opts, ctx: ctx}
	d.section("Starting the mesh: embedded etcd, NATS JetStream and the four services")
	m, err := dev.Start(ctx, dev.Options{DataDir: meshDir})
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = m.WaitServing(wctx)
	cancel()
	if err != nil {
		m.Close()
		return err
	}
	fmt.Fprint(opts.Stdout, m.Describe())
	d.etcd = strings.Join(m.EtcdEndpoints, ",")

	steps := []func() error{d.bank, d.cdnow, d.recommender, d.reports}
	var stepErr error
	for _, step := range steps {
		if stepErr = step(); stepErr != nil {
			break
		}
	}
	d.section("Stopping the mesh")
	closeErr := m.Close()
	if stepErr != nil {
		return stepErr
	}
	if closeErr != nil {
		return closeErr
	}
	fmt.Fprintf(opts.Stdout, "stopped cleanly; the demo took %v\n", time.Since(start).Round(time.Second))
	return nil
}

type demo struct {
	opts   Options
	ctx    context.Context
	etcd   string
	models []string
}

func (d *demo) section(title string) {
	fmt.Fprintf(d.opts.Stdout, "\n== %s\n", title)
}

// run prints a client command and runs it against the demo's mesh.
func (d *demo) run(args ...string) error {
	fmt.Fprintf(d.opts.Stdout, "\n$ bullseye %s\n", strings.Join(quote(args), " "))
	c, ok := cli.Find(args[0])
	if !ok {
		return fmt.Errorf("no command %q", args[0])
	}
	full := append([]string{"--etcd", d.etcd, "--timeout", "10m"}, args[1:]...)
	if code := cli.Main(d.ctx, c, full, d.opts.Stdout, d.opts.Stderr); code != 0 {
		return fmt.Errorf("bullseye %s failed (exit %d)", args[0], code)
	}
	return nil
}

func quote(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " \t") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return out
}

func (d *demo) example(parts ...string) string {
	return filepath.Join(append([]string{d.opts.Examples}, parts...)...)
}

func (d *demo) bank() error {
	d.section("1. Bank Marketing: who will subscribe to a term deposit?")
	file := filepath.Join(d.opts.DataDir, "bank-additional-full.csv")
	spec := "train-select.yaml"
	if d.opts.FullSearch {
		spec = "train-select-full.yaml"
	}
	if err := d.runAll(
		[]string{"import", "--mapping", d.example("bank", "mapping.yaml"), file},
		[]string{"featureset", "apply", d.example("bank", "features.yaml")},
		[]string{"train", d.example("bank", spec)},
		[]string{"promote", "bank-select", "--version", "1", "--reason", "demo: the selected model"},
	); err != nil {
		return err
	}
	d.models = append(d.models, "bank-select")
	// The import gives each row an id from the file's digest and its row
	// number: score five customers of the test rows (i % 5 == 4).
	ids, err := bankIDs(file, 4, 9, 14, 19, 24)
	if err != nil {
		return err
	}
	args := []string{"predict", "bank-select"}
	for _, id := range ids {
		args = append(args, "--user", id)
	}
	return d.runAll(args,
		[]string{"audience", "bank-select", "--top-fraction", "0.1", "--out", filepath.Join(d.opts.Out, "bank-select-top-decile.csv")})
}

// bankIDs returns the ids the Bank mapping generates for the given rows:
// its prefix, the first 16 hex digits of the file's SHA-256 and the row.
func bankIDs(file string, rows ...int) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	digest := hex.EncodeToString(h.Sum(nil))
	var ids []string
	for _, r := range rows {
		ids = append(ids, fmt.Sprintf("bank-%s-%d", digest[:16], r))
	}
	return ids, nil
}

func (d *demo) cdnow() error {
	d.section("2. CDNOW: what will each customer spend, who will buy again, and what is each worth?")
	if err := d.runAll(
		[]string{"import", "--mapping", d.example("cdnow", "mapping.yaml"), filepath.Join(d.opts.DataDir, "CDNOW_master.txt")},
		[]string{"featureset", "apply", d.example("cdnow", "features.yaml")},
		[]string{"train", d.example("cdnow", "train-spend.yaml")},
		[]string{"models", "get", "cdnow-spend"},
		[]string{"train", d.example("cdnow", "train-repurchase.yaml")},
		[]string{"models", "get", "cdnow-repurchase"},
		[]string{"train", d.example("cdnow", "train-clv.yaml")},
		[]string{"models", "get", "cdnow-clv"},
		[]string{"evaluate", "cdnow-clv@1", "--test", d.example("cdnow", "train-clv.yaml")},
		[]string{"promote", "cdnow-clv", "--version", "1", "--reason", "demo"},
		[]string{"predict", "cdnow-clv", "--user", "00001", "--user", "00002", "--user", "00003"},
	); err != nil {
		return err
	}
	d.models = append(d.models, "cdnow-spend", "cdnow-repurchase", "cdnow-clv")
	return nil
}

func (d *demo) reports() error {
	d.section("4. Reports")
	for _, m := range d.models {
		args := []string{"report", "--out", d.opts.Out, m}
		if m == "cdnow-spend" {
			args = append(args, "--unit", "USD")
		}
		if err := d.run(args...); err != nil {
			return err
		}
	}
	return nil
}

func (d *demo) runAll(cmds ...[]string) error {
	for _, c := range cmds {
		if err := d.ctx.Err(); err != nil {
			return errors.Join(errors.New("interrupted"), err)
		}
		if err := d.run(c...); err != nil {
			return err
		}
	}
	return nil
}

func (d *demo) recommender() error {
	d.section("3. A recommender: what should each customer see next?")
	// No real rating set may be shipped: generate one shaped like MovieLens
	// 100K (943 users, 1,682 items, 100,000 ratings) with planted rank-10
	// structure, in MovieLens's own u.data format.
	data, err := synth.Generate(synth.MovieLens100K())
	if err != nil {
		return err
	}
	file := filepath.Join(d.opts.Out, "generated-ratings.u.data")
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := synth.WriteMovieLens(f, data.Interactions); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(d.opts.Stdout, "generated %d ratings of %d users on %d items into %s\n",
		len(data.Interactions.Users), len(data.Interactions.UserIDs), len(data.Interactions.ItemIDs), file)
	if err := d.runAll(
		[]string{"import", "--mapping", d.example("movielens", "mapping.yaml"), file},
		[]string{"train", d.example("movielens", "train-als.yaml")},
		[]string{"promote", "movielens-als", "--version", "1", "--reason", "demo"},
		[]string{"recommend", "movielens-als", "--user", "1", "--user", "2", "--user", "3", "-k", "5"},
	); err != nil {
		return err
	}
	d.models = append(d.models, "movielens-als")
	return nil
}
