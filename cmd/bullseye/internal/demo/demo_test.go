package demo

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bullseye-ml/bullseye/pkg/datasets"
	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, embeddedtest.GoleakOptions()...)
}

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, _ := os.Getwd()
	for d := wd; d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d
		}
	}
	t.Fatal("no go.work above the test's folder")
	return ""
}

// TestDemo runs the whole demonstration on a fresh mesh and checks what it
// leaves: every step ran, the audience is the top decile of the customers,
// and every report embeds plots that decode as images with real content.
func TestDemo(t *testing.T) {
	root := repoRoot(t)
	data := datasets.RequireDir(t)
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := Run(ctx, Options{DataDir: data, Examples: filepath.Join(root, "examples"), Out: out, Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	text := stdout.String()
	for _, want := range []string{
		"41188 rows read, 41188 accepted",
		"(bank-select v1)",
		"41188 customers scored",
		"69659 rows read, 69659 accepted",
		"registered cdnow-spend version 1",
		"registered cdnow-repurchase version 1",
		"registered cdnow-clv version 1",
		"BG/NBD in units of 7 days (23570 customers",
		"registered movielens-als version 1",
		"stopped cleanly",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	if n := strings.Count(text, " p_alive "); n != 3 {
		t.Errorf("the demo valued %d customers, want 3", n)
	}
	if n := strings.Count(text, "probability "); n != 5 {
		t.Errorf("the demo scored %d customers with probabilities, want 5", n)
	}
	if n := len(regexp.MustCompile(`(?m)^\d+: \S+ \(`).FindAllString(text, -1)); n != 3 {
		t.Errorf("the demo printed recommendations for %d customers, want 3", n)
	}

	f, err := os.Open(filepath.Join(out, "bank-select-top-decile.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(rows) != 1+4119 {
		t.Errorf("the audience file has %d rows (err %v), want a header and 4,119 customers (the top decile of 41,188)", len(rows), err)
	}

	wantPlots := map[string]int{"bank-select-v1.html": 4, "cdnow-repurchase-v1.html": 4, "cdnow-spend-v1.html": 2, "cdnow-clv-v1.html": 2}
	for name, want := range wantPlots {
		html, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Errorf("report %s: %v", name, err)
			continue
		}
		imgs := regexp.MustCompile(`data:image/png;base64,([A-Za-z0-9+/=]+)`).FindAllSubmatch(html, -1)
		if len(imgs) != want {
			t.Errorf("report %s embeds %d plots, want %d", name, len(imgs), want)
		}
		for i, m := range imgs {
			raw, err := base64.StdEncoding.DecodeString(string(m[1]))
			if err != nil {
				t.Fatalf("report %s plot %d: %v", name, i, err)
			}
			img, err := png.Decode(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf("report %s plot %d does not decode: %v", name, i, err)
			}
			checkPlot(t, name, i, img)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "movielens-als-v1.html")); err != nil {
		t.Errorf("no report for the recommender: %v", err)
	}
}

// checkPlot checks that an image is a real plot: a sensible size, many
// colours, ink over a good share of it, dark axis lines near the left and
// bottom, and ink across most columns of the inner area (a curve or bars).
func checkPlot(t *testing.T, report string, i int, img image.Image) {
	t.Helper()
	b := img.Bounds()
	if b.Dx() < 300 || b.Dy() < 200 {
		t.Errorf("%s plot %d is %dx%d", report, i, b.Dx(), b.Dy())
		return
	}
	colours := map[[3]uint32]bool{}
	ink, dark := 0, 0
	darkCol := make([]int, b.Dx())
	darkRow := make([]int, b.Dy())
	inkCol := make([]bool, b.Dx())
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				ink++
				inkCol[x-b.Min.X] = true
			}
			if r < 0x6000 && g < 0x6000 && bl < 0x6000 {
				dark++
				darkCol[x-b.Min.X]++
				darkRow[y-b.Min.Y]++
			}
		}
	}
	total := b.Dx() * b.Dy()
	if len(colours) < 32 || float64(ink)/float64(total) < 0.03 {
		t.Errorf("%s plot %d looks blank: %d colours, %.1f%% ink", report, i, len(colours), 100*float64(ink)/float64(total))
	}
	// An axis is a long dark run: a column dark over a third of the height
	// and a row dark over a third of the width.
	vertical, horizontal := false, false
	for _, n := range darkCol {
		vertical = vertical || n > b.Dy()/3
	}
	for _, n := range darkRow {
		horizontal = horizontal || n > b.Dx()/3
	}
	if !vertical || !horizontal {
		t.Errorf("%s plot %d has no axis lines (vertical %v, horizontal %v)", report, i, vertical, horizontal)
	}
	covered := 0
	for _, c := range inkCol[b.Dx()/8 : b.Dx()*7/8] {
		if c {
			covered++
		}
	}
	if covered < b.Dx()*3/8 {
		t.Errorf("%s plot %d has ink in only %d of the inner %d columns", report, i, covered, b.Dx()*3/4)
	}
}
