// Package importer runs the Import stream: it reads a CSV or JSON-lines file
// sent in chunks, turns each row into records by the mapping (typing the
// columns, inferring types where none is given), stores the records on the
// event log and the rejected rows as dead letters, reports progress, and
// records progress at row boundaries once those rows are stored, so that an
// interrupted import resumes where it stopped and a completed one is never
// imported again.
package importer

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/record"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/rows"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/store"
)

// Limits of imports.
const (
	// MaxFileBytes is the largest file accepted.
	MaxFileBytes = 10 << 30
	// MaxChunkBytes is the largest chunk accepted.
	MaxChunkBytes = 1 << 20
	// DefaultMaxRejections is how many rejections progress reports by
	// default.
	DefaultMaxRejections = 100
	// DefaultBatchRecords is how many records are published together.
	DefaultBatchRecords = 500
	// maxInFlight is how many batches await their acks at once.
	maxInFlight = 8
	// maxInferenceBytes bounds the rows held for type inference.
	maxInferenceBytes = 32 << 20
)

// Stable reasons of the importer's refusals.
const (
	// reasonPrecondition: the stream does not fit the import's stored state.
	reasonPrecondition = "FAILED_PRECONDITION"
	// reasonConcurrent: another import of the file is running.
	reasonConcurrent = "CONCURRENT_REQUEST"
)

// Stream is the server side of an Import stream.
type Stream interface {
	Context() context.Context
	Send(*ingestv1.ImportResponse) error
	Recv() (*ingestv1.ImportRequest, error)
}

// Importer runs imports. It is safe for concurrent use; one import (a file
// by its digest, with one mapping) runs in one stream at a time.
type Importer struct {
	store    *store.Store
	builder  *record.Builder
	logger   *slog.Logger
	progress time.Duration
	batch    int
	salvage  time.Duration

	mu     sync.Mutex
	active map[string]*importLock
}

// importLock marks a file being imported.
type importLock struct {
	done   chan struct{}   // closed when the import ends
	ctx    context.Context // its stream's
	ending bool            // its stream ended; it is recording its progress
}

// Option configures an Importer.
type Option func(*Importer)

// WithLogger sets the logger; the default is slog.Default(). Logs name
// imports by id and never hold a row's values.
func WithLogger(l *slog.Logger) Option { return func(im *Importer) { im.logger = l } }

// WithProgressInterval sets how often progress is reported and recorded
// while rows are processed; the default is one second.
func WithProgressInterval(d time.Duration) Option { return func(im *Importer) { im.progress = d } }

// WithBatchRecords sets how many records are published per batch; the
// default is DefaultBatchRecords.
func WithBatchRecords(n int) Option { return func(im *Importer) { im.batch = n } }

// New returns an Importer that stores through s and builds records with b.
func New(s *store.Store, b *record.Builder, opts ...Option) *Importer {
	im := &Importer{store: s, builder: b, logger: slog.Default(), progress: time.Second, batch: DefaultBatchRecords, salvage: 3 * time.Second, active: map[string]*importLock{}}
	for _, o := range opts {
		o(im)
	}
	return im
}

// Rejection is a rejected row as kept with the import's progress.
type Rejection struct {
	Row          int64          `json:"row"`
	Line         int64          `json:"line"`
	Problems     []*ProblemJSON `json:"problems"`
	DeadLetterID string         `json:"dead_letter_id,omitempty"`
}

// ProblemJSON is a Problem as kept with the import's progress.
type ProblemJSON struct {
	Field       string `json:"field,omitempty"`
	Reason      string `json:"reason"`
	Description string `json:"description,omitempty"`
}

// State is an import's progress as recorded in the imports bucket under the
// file's digest and the mapping's hash (importKey).
type State struct {
	ImportID      string       `json:"import_id"`
	MappingHash   string       `json:"mapping_hash"`
	Size          int64        `json:"size"`
	StartTime     time.Time    `json:"start_time"`
	CompleteTime  *time.Time   `json:"complete_time,omitempty"`
	Offset        int64        `json:"offset"`
	Line          int64        `json:"line"`
	NextRow       int64        `json:"next_row"`
	HashState     []byte       `json:"hash_state,omitempty"`
	ColumnsKnown  bool         `json:"columns_known,omitempty"`
	Header        []string     `json:"header,omitempty"`
	Columns       []Column     `json:"columns,omitempty"`
	RowsAccepted  int64        `json:"rows_accepted"`
	RowsRejected  int64        `json:"rows_rejected"`
	RowsDuplicate int64        `json:"rows_duplicate"`
	RecordsStored int64        `json:"records_stored"`
	Rejections    []*Rejection `json:"rejections,omitempty"`
	Done          bool         `json:"done,omitempty"`
}

// mappingHash identifies a mapping, so that a resumed import is read the
// same way.
func mappingHash(m *ingestv1.ImportMapping) string {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// checkpoint is a row boundary to resume from.
type checkpoint struct {
	offset, line, nextRow int64
	hash                  []byte
}

type batchRow struct {
	number, line int64
	recStart     int
	nrec         int
	rejected     bool
	problems     []*commonv1.Problem
	dl           int // index of its dead letter in msgs, or -1
}

type batch struct {
	msgs    []store.Message
	rows    []batchRow
	cp      *checkpoint
	pending *store.Pending
}

// run is one Import stream.
type run struct {
	im           *Importer
	ctx          context.Context
	stream       Stream
	plan         *Plan
	start        *ingestv1.ImportStart
	validateOnly bool
	maxRej       int
	digest       string
	key          string // importKey of the digest and the mapping

	state State
	rev   uint64

	header      []string
	headerIndex map[string]int
	cols        *columns
	hash        hash.Hash
	rr          *rows.Reader
	cr          *chunkReader
	nextRow     int64

	cur          *batch
	inflight     []*batch
	fatal        error
	lastProgress time.Time
	persisted    time.Time
}

// Import runs one Import stream to its end. Errors are fault kinds,
// store.ErrUnavailable or the stream's own (marked fault.Transport).
func (im *Importer) Import(stream Stream) (err error) {
	ctx := stream.Context()
	req, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return fault.Invalid("start", "the stream ended before its start message")
	}
	if err != nil {
		return fault.Transport(err)
	}
	start := req.GetStart()
	if start == nil {
		return fault.Invalid("start", "the first message must be a start message")
	}
	plan, err := Compile(start)
	if err != nil {
		return err
	}
	r := &run{
		im: im, ctx: ctx, stream: stream, plan: plan, start: start,
		validateOnly: start.GetValidateOnly(), digest: start.GetSha256(), key: plan.key,
		maxRej: int(start.GetMaxRejectionsReported()),
	}
	if r.maxRej == 0 {
		r.maxRej = DefaultMaxRejections
	}
	if !r.validateOnly {
		if !im.lock(ctx, r.key) {
			return fault.New(fault.ErrAborted, reasonConcurrent, "an import of this file with this mapping is already running; wait for it to end or cancel it")
		}
		defer im.unlock(r.key)
		done, err := r.load()
		if err != nil || done {
			return err
		}
	} else {
		r.state = State{ImportID: plan.importID, Size: start.GetSizeBytes(), StartTime: time.Now().UTC()}
	}
	defer func() {
		if err != nil && !r.validateOnly {
			im.ending(r.key)
			r.salvageProgress()
		}
	}()
	if err := r.send(false); err != nil {
		return err
	}
	if err := r.read(); err != nil {
		return err
	}
	return r.finish()
}

// lock makes the caller the only runner of an import (key). One whose
// stream has just ended may still be recording its progress: lock waits for
// it (a little), but not for a running one.
func (im *Importer) lock(ctx context.Context, key string) bool {
	timer := time.NewTimer(im.salvage + time.Second)
	defer timer.Stop()
	for {
		im.mu.Lock()
		l, busy := im.active[key]
		if !busy {
			im.active[key] = &importLock{done: make(chan struct{}), ctx: ctx}
			im.mu.Unlock()
			return true
		}
		ending := l.ending || l.ctx.Err() != nil
		im.mu.Unlock()
		if !ending {
			return false
		}
		select {
		case <-l.done:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// ending marks the import of a file as recording its progress after its
// stream ended.
func (im *Importer) ending(key string) {
	im.mu.Lock()
	if l := im.active[key]; l != nil {
		l.ending = true
	}
	im.mu.Unlock()
}

func (im *Importer) unlock(key string) {
	im.mu.Lock()
	close(im.active[key].done)
	delete(im.active, key)
	im.mu.Unlock()
}

// load reads the import's recorded progress. done is true when the file
// was imported completely before, and the answer has been sent.
func (r *run) load() (done bool, err error) {
	value, rev, found, err := r.im.store.GetImport(r.ctx, r.key)
	if err != nil {
		return false, err
	}
	mh := r.plan.mappingHash
	if !found {
		r.state = State{ImportID: r.plan.importID, MappingHash: mh, Size: r.start.GetSizeBytes(), StartTime: time.Now().UTC()}
		return false, nil
	}
	if err := json.Unmarshal(value, &r.state); err != nil {
		return false, fmt.Errorf("reading the progress of import %s: %w", r.plan.importID, err)
	}
	r.rev = rev
	if r.state.Done {
		r.im.logger.InfoContext(r.ctx, "file already imported", "import_id", r.state.ImportID)
		return true, r.send(true)
	}
	if r.state.MappingHash != mh || r.state.Size != r.start.GetSizeBytes() {
		if r.state.NextRow > 0 {
			return false, fault.New(fault.ErrFailedPrecondition, reasonPrecondition, "an interrupted import of this file stored rows with another mapping or size; resume it with the same start message")
		}
		// Nothing was stored: start over with this mapping.
		r.state = State{ImportID: r.plan.importID, MappingHash: mh, Size: r.start.GetSizeBytes(), StartTime: time.Now().UTC()}
		return false, nil
	}
	r.im.logger.InfoContext(r.ctx, "resuming import", "import_id", r.state.ImportID, "offset", r.state.Offset, "rows", r.state.NextRow)
	return false, nil
}

// response builds a progress message.
func (r *run) response(already bool) *ingestv1.ImportResponse {
	s := &r.state
	resp := &ingestv1.ImportResponse{
		ImportId:        s.ImportID,
		ResumeOffset:    s.Offset,
		BytesRead:       s.Offset,
		RowsRead:        s.NextRow,
		RowsAccepted:    s.RowsAccepted,
		RowsRejected:    s.RowsRejected,
		RowsDuplicate:   s.RowsDuplicate,
		RecordsStored:   s.RecordsStored,
		Done:            s.Done,
		AlreadyImported: already,
		StartTime:       timestamppb.New(s.StartTime),
	}
	if r.rr != nil {
		resp.BytesRead = r.rr.Offset()
		resp.RowsRead = r.nextRow
	}
	if r.cols != nil {
		resp.Columns = r.cols.proto()
	} else if s.ColumnsKnown {
		resp.Columns = newColumns(s.Columns).proto()
	}
	for _, rej := range s.Rejections {
		rr := &ingestv1.RowRejection{RowNumber: rej.Row, LineNumber: rej.Line, DeadLetterId: rej.DeadLetterID}
		for _, p := range rej.Problems {
			rr.Problems = append(rr.Problems, &commonv1.Problem{Field: p.Field, Reason: p.Reason, Description: p.Description})
		}
		resp.Rejections = append(resp.Rejections, rr)
	}
	return resp
}

func (r *run) send(already bool) error {
	r.lastProgress = time.Now()
	if err := r.stream.Send(r.response(already)); err != nil {
		return fmt.Errorf("sending import progress: %w", fault.Transport(err))
	}
	return nil
}

// read reads the file and processes its rows, up to the end of the file.
func (r *run) read() error {
	r.cr = &chunkReader{stream: r.stream, pos: r.state.Offset, resume: r.state.Offset, size: r.start.GetSizeBytes()}
	r.hash = sha256.New()
	if len(r.state.HashState) > 0 {
		if err := r.hash.(encoding.BinaryUnmarshaler).UnmarshalBinary(r.state.HashState); err != nil {
			return fmt.Errorf("restoring the digest of import %s: %w", r.state.ImportID, err)
		}
	}
	pos := rows.Position{Offset: r.state.Offset, Line: r.state.Line}
	if r.plan.json {
		r.rr = rows.NewJSONLines(r.cr, 0, pos)
	} else {
		r.rr = rows.NewCSV(r.cr, r.plan.csv, pos)
	}
	r.nextRow = r.state.NextRow
	r.cur = &batch{}
	var buffered []rows.Row
	if r.state.ColumnsKnown {
		r.setHeader(r.state.Header)
		r.cols = newColumns(r.state.Columns)
	} else {
		eof, err := r.preamble()
		if err != nil || eof {
			return err
		}
		// Type inference reads ahead before any record is made. A file that
		// cannot be read further ends the read-ahead: the rows before are
		// processed first, and readError then counts them.
		var stopped error
		if r.needInference() {
			var size int64
			for len(buffered) < r.plan.inferRows && size < maxInferenceBytes {
				row, err := r.rr.Next()
				r.hash.Write(r.rr.Raw())
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					stopped = err
					break
				}
				buffered = append(buffered, row)
				size += row.End - row.Start
			}
		}
		r.inferColumns(buffered)
		if err := r.send(false); err != nil {
			return err
		}
		for i, row := range buffered {
			if err := r.process(row); err != nil {
				return err
			}
			switch {
			case i == len(buffered)-1:
				// The reader stands just after the last buffered row.
				err = r.flush(r.checkpointHere())
			case r.full():
				err = r.flush(nil)
			}
			if err != nil {
				return err
			}
		}
		if stopped != nil {
			return r.readError(stopped)
		}
	}
	for {
		row, err := r.rr.Next()
		r.hash.Write(r.rr.Raw())
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return r.readError(err)
		}
		if err := r.process(row); err != nil {
			return err
		}
		if r.full() {
			if err := r.flush(r.checkpointHere()); err != nil {
				return err
			}
		}
	}
}

// full reports whether the current batch is large enough to publish.
func (r *run) full() bool {
	return len(r.cur.msgs) >= r.im.batch || len(r.cur.rows) >= r.im.batch
}

// readError turns an error that ends the reading of the file (a
// structure broken past a row, a row too long) into one for the caller,
// naming the line (and column) where the file stopped being readable. The
// rows before that line are stored and counted first, so that the error
// can say exactly what became of them; the import is not complete.
func (r *run) readError(err error) error {
	var se *rows.SyntaxError
	var where string
	switch {
	case errors.As(err, &se):
		where = fmt.Sprintf("line %d", se.Line)
		if se.Column > 0 {
			where += fmt.Sprintf(", column %d", se.Column)
			if se.Column <= len(r.header) {
				where += " (" + fault.Quote(r.header[se.Column-1]) + ")"
			}
		}
		where += ": " + se.Msg
	case errors.Is(err, rows.ErrRowTooLong):
		where = err.Error() + "; check the delimiter and quoting settings (an unclosed quote makes the rest of the file one row)"
	default:
		return err
	}
	if r.cols != nil {
		r.flushFinal()
		for len(r.inflight) > 0 {
			if err := r.completeOldest(r.ctx); err != nil {
				return err
			}
		}
		if err := r.persist(r.ctx); err != nil {
			return err
		}
	}
	s := &r.state
	return fault.Invalid("chunk", "%s; the import stopped there: the %d rows before it were read (%d accepted, %d rejected, %d duplicate), the rest of the file was not", where, r.nextRow, s.RowsAccepted, s.RowsRejected, s.RowsDuplicate)
}

// needInference reports whether any column's type is to be inferred.
func (r *run) needInference() bool {
	if r.plan.inferRows == 0 {
		return false
	}
	if r.plan.json {
		return true
	}
	for _, col := range r.header {
		if _, ok := r.plan.explicit[col]; !ok && typed(r.plan.roles(col)) {
			return true
		}
	}
	return false
}

// preamble skips the title lines and reads the header of a delimited file.
func (r *run) preamble() (eof bool, err error) {
	if r.plan.json {
		return false, nil
	}
	for range r.plan.skipLines {
		err := r.rr.SkipLine()
		r.hash.Write(r.rr.Raw())
		if errors.Is(err, io.EOF) {
			return true, nil
		}
		if err != nil {
			return false, r.readError(err)
		}
	}
	header := r.plan.columnNames
	if r.plan.header {
		row, err := r.rr.Next()
		r.hash.Write(r.rr.Raw())
		if errors.Is(err, io.EOF) {
			return true, nil
		}
		if err != nil {
			return false, r.readError(err)
		}
		if row.Err != nil {
			return false, fault.Invalid("start.mapping.csv", "the header row cannot be read: %s", row.Err.Msg)
		}
		if len(header) == 0 {
			for _, c := range row.Cells {
				header = append(header, c.Text)
			}
		} else if len(header) != len(row.Cells) {
			return false, fault.Invalid("start.mapping.csv.column_names", "name %d columns, the header row has %d", len(header), len(row.Cells))
		}
	}
	for i, c := range header {
		if !utf8.ValidString(c) {
			return false, fault.Invalid("start.mapping.csv", "the name of column %d is not valid UTF-8", i+1)
		}
	}
	if firstDuplicate(header) != "" {
		return false, fault.Invalid("start.mapping.csv", "the header names a column twice; give column_names")
	}
	r.setHeader(header)
	if err := r.plan.checkNamed(func(c string) bool { _, ok := r.headerIndex[c]; return ok }); err != nil {
		return false, err
	}
	if r.plan.unmapped == ingestv1.UnmappedColumns_UNMAPPED_COLUMNS_REJECT {
		for _, c := range header {
			if !r.plan.named[c] {
				return false, fault.Invalid("start.mapping.unmapped_columns", "the file has column %s, which the mapping does not name, and unmapped columns are refused", fault.Quote(c))
			}
		}
	}
	return false, nil
}

func (r *run) setHeader(header []string) {
	if r.plan.json {
		return
	}
	r.header = header
	r.headerIndex = make(map[string]int, len(header))
	for i, c := range header {
		r.headerIndex[c] = i
	}
}

// inferColumns decides every known column's type and role.
func (r *run) inferColumns(buffered []rows.Row) {
	names := r.header
	if r.plan.json {
		seen := map[string]bool{}
		for _, row := range buffered {
			for _, n := range row.Names {
				if !seen[n] {
					seen[n] = true
					names = append(names, n)
				}
			}
		}
		for n := range r.plan.named {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
		sortStrings(names)
	}
	r.cols = newColumns(nil)
	for i, name := range names {
		roles := r.plan.roles(name)
		col := Column{Name: name, Role: joinRoles(roles), Type: commonv1.ValueType_VALUE_TYPE_STRING}
		if t, ok := r.plan.explicit[name]; ok {
			col.Type = t
		} else if typed(roles) && r.plan.inferRows > 0 {
			f := newInferrer()
			for _, row := range buffered {
				var c rows.Cell
				var ok bool
				if r.plan.json {
					c, ok = view{row: row}.get(name)
				} else if row.Err == nil && i < len(row.Cells) {
					c, ok = row.Cells[i], true
				}
				if ok && !r.plan.isNull(c) {
					f.add(c)
				}
			}
			col.Type, col.Inferred = f.result(), true
		}
		r.cols.add(col)
	}
}

// learnColumns adds the columns of a JSON line not seen before, typed by
// their first value.
func (r *run) learnColumns(row rows.Row) {
	if !r.plan.json || row.Err != nil {
		return
	}
	for i, n := range row.Names {
		if _, ok := r.cols.get(n); ok {
			continue
		}
		roles := r.plan.roles(n)
		col := Column{Name: n, Role: joinRoles(roles), Type: commonv1.ValueType_VALUE_TYPE_STRING}
		if t, ok := r.plan.explicit[n]; ok {
			col.Type = t
		} else if typed(roles) && r.plan.inferRows > 0 && !r.plan.isNull(row.Cells[i]) {
			col.Type, col.Inferred = kindType(row.Cells[i]), true
		}
		r.cols.add(col)
	}
}

func (r *run) checkpointHere() *checkpoint {
	h, _ := r.hash.(encoding.BinaryMarshaler).MarshalBinary()
	return &checkpoint{offset: r.rr.Offset(), line: r.rr.Line(), nextRow: r.nextRow, hash: h}
}

func (r *run) erased(userID string) bool {
	return r.im.store.Erasures().Contains(r.im.builder.Pseudonymiser().SubjectHash(userID))
}

// process turns one row into messages of the current batch.
func (r *run) process(row rows.Row) error {
	number := r.nextRow
	r.nextRow++
	r.learnColumns(row)
	now := time.Now()
	conv := r.convert(row, number, now)
	if r.fatal != nil {
		return r.fatal
	}
	b := r.cur
	br := batchRow{number: number, line: row.Line, recStart: len(b.msgs), dl: -1}
	if !r.validateOnly {
		for _, rec := range conv.records {
			data, err := proto.Marshal(rec.Event)
			if err != nil {
				return fmt.Errorf("encoding a record of row %d: %w", number, err)
			}
			subj, err := eventlog.EventSubject(rec.Key, rec.Type)
			if err != nil {
				return fmt.Errorf("row %d: %w", number, err)
			}
			b.msgs = append(b.msgs, store.Message{Subject: subj, MsgID: rec.Event.GetMessageId(), Type: rec.Type, Data: data})
		}
	}
	br.nrec = len(conv.records)
	if len(conv.problems) > 0 {
		br.rejected, br.problems = true, conv.problems
		if !r.validateOnly && !conv.erased {
			dl := r.deadLetter(conv, number, now)
			data, err := proto.Marshal(dl)
			if err != nil {
				return fmt.Errorf("encoding the dead letter of row %d: %w", number, err)
			}
			br.dl = len(b.msgs)
			b.msgs = append(b.msgs, store.Message{
				Subject: store.DeadLetterSubject(conv.key, conv.keyOK),
				MsgID:   r.plan.importID + "-" + fmt.Sprint(number) + ":dl",
				Data:    data,
			})
		}
	}
	b.rows = append(b.rows, br)
	return nil
}

func (r *run) deadLetter(conv converted, number int64, now time.Time) *ingestv1.DeadLetter {
	dl := &ingestv1.DeadLetter{
		Source:      ingestv1.EventSource_EVENT_SOURCE_IMPORT,
		ReceiveTime: timestamppb.New(now),
		Problems:    conv.problems,
		ImportId:    r.plan.importID,
		RowNumber:   number,
	}
	switch {
	case conv.deadUpdate != nil:
		u, paths := r.im.builder.DeadTraitUpdate(conv.deadUpdate)
		dl.Type, dl.Item, dl.PseudonymisedFields = ingestv1.EventType_EVENT_TYPE_IDENTIFY, &ingestv1.DeadLetter_TraitUpdate{TraitUpdate: u}, paths
	case conv.deadEvent != nil:
		ev, paths := r.im.builder.DeadEvent(conv.deadEvent, now)
		dl.Type, dl.Item, dl.PseudonymisedFields = ingestv1.EventType_EVENT_TYPE_TRACK, &ingestv1.DeadLetter_Event{Event: ev}, paths
	}
	return dl
}

// flush publishes the current batch with a checkpoint after its last row,
// and completes the oldest batches beyond the in-flight window.
func (r *run) flush(cp *checkpoint) error {
	b := r.cur
	b.cp = cp
	r.cur = &batch{}
	b.pending = r.im.store.Publish(r.ctx, b.msgs)
	r.inflight = append(r.inflight, b)
	for len(r.inflight) > maxInFlight {
		if err := r.completeOldest(r.ctx); err != nil {
			return err
		}
	}
	return r.maybeReport()
}

// completeOldest waits for the acks of the oldest batch and counts it.
func (r *run) completeOldest(ctx context.Context) error {
	b := r.inflight[0]
	acks, err := b.pending.Wait(ctx)
	if err != nil {
		return err
	}
	r.inflight = r.inflight[1:]
	s := &r.state
	for _, br := range b.rows {
		if br.rejected {
			s.RowsRejected++
			if len(s.Rejections) < r.maxRej {
				rej := &Rejection{Row: br.number, Line: br.line}
				if br.dl >= 0 {
					rej.DeadLetterID = store.DeadLetterID(acks[br.dl].Seq)
				}
				for _, p := range br.problems {
					rej.Problems = append(rej.Problems, &ProblemJSON{Field: p.GetField(), Reason: p.GetReason(), Description: p.GetDescription()})
				}
				s.Rejections = append(s.Rejections, rej)
			}
			continue
		}
		// Ids derived from the digest are this file's own: a duplicate is a
		// record an interrupted run of this import stored. Ids from a column
		// may repeat records stored by any import.
		stored := 0
		if !r.validateOnly {
			for _, a := range acks[br.recStart : br.recStart+br.nrec] {
				if !a.Duplicate || r.plan.msgIDColumn == "" {
					stored++
				}
			}
		}
		s.RecordsStored += int64(stored)
		if br.nrec > 0 && stored == 0 && !r.validateOnly {
			s.RowsDuplicate++
		} else {
			s.RowsAccepted++
		}
	}
	if b.cp != nil {
		s.Offset, s.Line, s.NextRow, s.HashState = b.cp.offset, b.cp.line, b.cp.nextRow, b.cp.hash
	}
	return nil
}

// maybeReport records progress and reports it once per interval.
func (r *run) maybeReport() error {
	if time.Since(r.lastProgress) < r.im.progress {
		return nil
	}
	if err := r.persist(r.ctx); err != nil {
		return err
	}
	return r.send(false)
}

// persist records the acknowledged progress.
func (r *run) persist(ctx context.Context) error {
	if r.validateOnly {
		return nil
	}
	s := &r.state
	if r.cols != nil {
		s.ColumnsKnown, s.Columns, s.Header = true, r.cols.list, r.header
	}
	value, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encoding the progress of import %s: %w", s.ImportID, err)
	}
	rev, err := r.im.store.PutImport(ctx, r.key, value, r.rev)
	if errors.Is(err, store.ErrConflict) {
		return fault.New(fault.ErrAborted, reasonConcurrent, "another import of this file is running on another ingest instance")
	}
	if err != nil {
		return err
	}
	r.rev, r.persisted = rev, time.Now()
	return nil
}

// finish completes every batch, checks the file against its size and
// digest, records the import as complete and sends the last message.
func (r *run) finish() error {
	r.flushFinal()
	for len(r.inflight) > 0 {
		if err := r.completeOldest(r.ctx); err != nil {
			return err
		}
	}
	if got := hex.EncodeToString(r.hash.Sum(nil)); got != r.digest {
		r.im.logger.WarnContext(r.ctx, "imported file does not match its digest", "import_id", r.state.ImportID)
		return fault.Invalid("start.sha256", "the file's bytes do not match the digest; records already stored keep their ids, send the file's true digest")
	}
	if r.validateOnly {
		r.state.Done = true
		return r.send(false)
	}
	now := time.Now().UTC()
	r.state.Done, r.state.CompleteTime = true, &now
	if err := r.persist(r.ctx); err != nil {
		return err
	}
	r.im.logger.InfoContext(r.ctx, "import complete", "import_id", r.state.ImportID,
		"rows", r.state.NextRow, "accepted", r.state.RowsAccepted, "rejected", r.state.RowsRejected,
		"duplicate", r.state.RowsDuplicate, "records", r.state.RecordsStored)
	return r.send(false)
}

// flushFinal publishes the last batch, with a checkpoint at the end of the
// file.
func (r *run) flushFinal() {
	if r.cols == nil {
		r.inferColumns(nil)
	}
	b := r.cur
	b.cp = r.checkpointHere()
	r.cur = &batch{}
	b.pending = r.im.store.Publish(r.ctx, b.msgs)
	r.inflight = append(r.inflight, b)
}

// salvageProgress records what was stored before the import stopped, so
// that it resumes from there: it waits a little for the batches in flight.
func (r *run) salvageProgress() {
	if r.rr == nil || (r.state.NextRow == 0 && len(r.inflight) == 0) {
		return // nothing stored: nothing to resume
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), r.im.salvage)
	defer cancel()
	for len(r.inflight) > 0 {
		if err := r.completeOldest(ctx); err != nil {
			break
		}
	}
	if err := r.persist(ctx); err != nil {
		r.im.logger.WarnContext(ctx, "could not record the progress of an interrupted import", "import_id", r.state.ImportID, "error", err)
		return
	}
	r.im.logger.InfoContext(ctx, "import interrupted", "import_id", r.state.ImportID, "resume_offset", r.state.Offset, "rows", r.state.NextRow)
}
