package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

const chunkSize = 1 << 20

var importCommand = Command{
	Name:    "import",
	Summary: "Import a CSV or JSON-lines file through the ingest service, with a progress bar. Importing the same file with the same mapping again adds nothing; an interrupted import resumes. Exits 1 when rows were rejected, unless --allow-rejections.",
	Usage:   "--mapping MAPPING.yaml FILE",
	Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
		mappingFile := fs.String("mapping", "", "YAML file with the import mapping (bullseye.ingest.v1.ImportMapping)")
		validate := fs.Bool("validate-only", false, "parse and check the file without storing anything")
		allowRejections := fs.Bool("allow-rejections", false, "exit 0 even when rows were rejected (they are listed, and kept as dead letters)")
		if err := parse(env, fs, args, 1, 1); err != nil {
			return err
		}
		if *mappingFile == "" {
			return usagef("--mapping is required: a YAML file describing the file's columns")
		}
		mapping := &ingestv1.ImportMapping{}
		if err := readYAML(*mappingFile, mapping); err != nil {
			return fmt.Errorf("reading the mapping: %w", err)
		}
		return runImport(ctx, env, fs.Arg(0), mapping, *validate, *allowRejections)
	},
}

// runImport imports the file at path and prints its summary. It fails when
// rows were rejected, unless allowRejections: a script that imports a file
// learns from the exit status that part of it is not in.
func runImport(ctx context.Context, env *Env, path string, mapping *ingestv1.ImportMapping, validateOnly, allowRejections bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	conn, err := env.dial(ctx, "ingest")
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := ingestv1.NewIngestServiceClient(conn).Import(ctx)
	if err != nil {
		return err
	}
	err = stream.Send(&ingestv1.ImportRequest{Kind: &ingestv1.ImportRequest_Start{Start: &ingestv1.ImportStart{
		FileName:     filepath.Base(path),
		SizeBytes:    size,
		Sha256:       hex.EncodeToString(h.Sum(nil)),
		Mapping:      mapping,
		ValidateOnly: validateOnly,
	}}})
	if err != nil {
		return fmt.Errorf("starting the import: %w", recvErr(stream, err))
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	bar := newProgress(env, size)
	bar.update(first)
	// Send the file from where the server asks, while progress comes back.
	sendErr := make(chan error, 1)
	go func() { sendErr <- sendChunks(stream, f, first.GetResumeOffset(), size) }()
	last := first
	for !last.GetDone() {
		p, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
		last = p
		bar.update(p)
	}
	if err := <-sendErr; err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("sending %s: %w", path, err)
	}
	bar.finish()
	if !last.GetDone() {
		return fmt.Errorf("the import of %s ended before it was complete (%d rows read); import it again to resume", filepath.Base(path), last.GetRowsRead())
	}
	if env.output == "json" {
		if err := env.printJSON(last); err != nil {
			return err
		}
		return rejected(last, allowRejections)
	}
	fmt.Fprintf(env.Stdout, "imported %s: %d rows read, %d accepted, %d rejected, %d duplicate (import %s)\n",
		filepath.Base(path), last.GetRowsRead(), last.GetRowsAccepted(), last.GetRowsRejected(), last.GetRowsDuplicate(), last.GetImportId())
	if last.GetAlreadyImported() {
		fmt.Fprintln(env.Stdout, "the file had been imported completely before: nothing was added")
	}
	for _, r := range last.GetRejections() {
		var why []string
		for _, p := range r.GetProblems() {
			why = append(why, fmt.Sprintf("%s: %s", p.GetField(), p.GetDescription()))
		}
		fmt.Fprintf(env.Stdout, "  row %d (line %d): %s\n", r.GetRowNumber(), r.GetLineNumber(), strings.Join(why, "; "))
	}
	if n, listed := last.GetRowsRejected(), int64(len(last.GetRejections())); n > listed {
		fmt.Fprintf(env.Stdout, "  and %d more rejected rows: IngestService/ListDeadLetters with import_id %s lists them\n", n-listed, last.GetImportId())
	}
	return rejected(last, allowRejections)
}

// rejected is the error of an import that rejected rows, unless they are
// allowed.
func rejected(last *ingestv1.ImportResponse, allow bool) error {
	if n := last.GetRowsRejected(); n > 0 && !allow {
		return fmt.Errorf("%d of %d rows were rejected (the others are imported); fix those rows, or pass --allow-rejections to accept an import with rejected rows", n, last.GetRowsRead())
	}
	return nil
}

func sendChunks(stream ingestv1.IngestService_ImportClient, f *os.File, offset, size int64) error {
	buf := make([]byte, chunkSize)
	for offset < size {
		n, err := f.ReadAt(buf, offset)
		if n > 0 {
			chunk := &ingestv1.ImportChunk{Offset: offset, Data: buf[:n]}
			if err := stream.Send(&ingestv1.ImportRequest{Kind: &ingestv1.ImportRequest_Chunk{Chunk: chunk}}); err != nil {
				return err
			}
			offset += int64(n)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if n == 0 {
			break
		}
	}
	return stream.CloseSend()
}

// recvErr returns the server's status when a Send failed because the
// server ended the stream.
func recvErr(stream ingestv1.IngestService_ImportClient, err error) error {
	if errors.Is(err, io.EOF) {
		if _, rerr := stream.Recv(); rerr != nil {
			return rerr
		}
	}
	return err
}

// progress draws an import's progress bar on stderr.
type progress struct {
	env   *Env
	total int64
	drawn bool
}

func newProgress(env *Env, total int64) *progress { return &progress{env: env, total: total} }

func (p *progress) update(r *ingestv1.ImportResponse) {
	if p.env.output == "json" || !isTerminal(p.env.Stderr) {
		return
	}
	const width = 30
	frac := 1.0
	if p.total > 0 && !r.GetDone() && !r.GetAlreadyImported() {
		frac = min(max(float64(r.GetBytesRead())/float64(p.total), 0), 1)
	}
	filled := int(frac * width)
	fmt.Fprintf(p.env.Stderr, "\r[%s%s] %3.0f%%  %d rows, %d accepted, %d rejected",
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled), frac*100,
		r.GetRowsRead(), r.GetRowsAccepted(), r.GetRowsRejected())
	p.drawn = true
}

func (p *progress) finish() {
	if p.drawn {
		fmt.Fprintln(p.env.Stderr)
	}
}
