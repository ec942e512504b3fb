// Package rows splits imported files into rows: delimiter-separated text
// (CSV with any one-byte delimiter, quoted fields, whitespace-separated
// columns, LF or CRLF line ends) and JSON lines. A Reader reads from an
// io.Reader, reports every row with its line number and byte offsets, and
// hands back the exact bytes each call consumed, so that a caller can hash
// the file as it goes and resume at any row boundary.
package rows

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxRowBytes is the longest row a Reader accepts unless told
// otherwise.
const DefaultMaxRowBytes = 1 << 20

// ErrRowTooLong is returned (wrapped) when a row is longer than the
// Reader's limit; the file cannot be read further.
var ErrRowTooLong = errors.New("row too long")

// Kind is how a cell's text is to be read.
type Kind uint8

// The kinds of cells.
const (
	// KindText is a field of a delimited file: text whose type is inferred.
	KindText Kind = iota
	// KindString is a JSON string.
	KindString
	// KindNumber is a JSON number; Text is its literal.
	KindNumber
	// KindBool is a JSON true or false; Text is "true" or "false".
	KindBool
	// KindNull is a JSON null.
	KindNull
	// KindJSON is a JSON array; Text is its compact encoding.
	KindJSON
)

// Cell is one value of a row.
type Cell struct {
	// Text is the value as written (unquoted, doubled quotes undone).
	Text string
	// Kind says how to read Text.
	Kind Kind
}

// SyntaxError describes a row that could be delimited but not read (as
// Row.Err: the row is skipped, the file goes on), or, returned by Next as
// its error, the structure of the file broken past a row (ReasonUnclosedQuote:
// the file cannot be read further).
type SyntaxError struct {
	// Line is the 1-based line where the row starts.
	Line int64
	// Column is the 1-based number of the field where the error is, 0 when
	// it is the row's as a whole.
	Column int
	// Reason is a stable UPPER_SNAKE_CASE reason: BAD_QUOTING,
	// BAD_LINE_ENDING, BAD_JSON, NOT_AN_OBJECT, UNCLOSED_QUOTE.
	Reason string
	// Msg says what is wrong, without quoting the row's content.
	Msg string

	opened int // where the unclosed quote is in the scanned bytes
}

// ReasonUnclosedQuote is the reason of a quoted field that is not closed
// before the end of the file: it swallows every row after it, so the file
// cannot be read as rows from there.
const ReasonUnclosedQuote = "UNCLOSED_QUOTE"

// Error says where and what, without the row's content.
func (e *SyntaxError) Error() string {
	if e.Column > 0 {
		return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}

// Row is one row of a file.
type Row struct {
	// Line is the 1-based line of the file where the row starts.
	Line int64
	// Start and End are the byte offsets of the row in the file: End is just
	// past its line end, the offset at which the next row can be read.
	Start, End int64
	// Cells are the row's values: in column order for a delimited file, in
	// the order of Names for JSON lines.
	Cells []Cell
	// Names are the dotted paths of Cells for JSON lines; nil for delimited
	// files.
	Names []string
	// Err is set when the row could not be read; Cells may then be partial.
	Err *SyntaxError
}

// Position is where in a file a Reader's input starts, for resuming.
type Position struct {
	// Offset is the byte offset in the file of the input's first byte.
	Offset int64
	// Line is the 1-based line number at Offset; 0 means 1.
	Line int64
}

// LineEnding says how rows of a delimited file end.
type LineEnding uint8

// The line endings.
const (
	// AnyLineEnding accepts "\n" and "\r\n".
	AnyLineEnding LineEnding = iota
	// LF accepts "\n" only; a "\r" before it belongs to the last field.
	LF
	// CRLF accepts "\r\n" only; a bare "\n" outside quotes makes the row a
	// BAD_LINE_ENDING error.
	CRLF
)

// CSVOptions says how to split a delimited file.
type CSVOptions struct {
	// Delimiter separates columns; zero means ','. Ignored when Whitespace
	// is set.
	Delimiter byte
	// Whitespace separates columns by runs of spaces and tabs and ignores
	// them at the start and end of lines.
	Whitespace bool
	// Quote starts and ends quoted fields; zero means '"'.
	Quote byte
	// NoQuoting gives quote characters no special meaning.
	NoQuoting bool
	// LineEnding says how rows end.
	LineEnding LineEnding
	// TrimSpace removes spaces and tabs around unquoted fields.
	TrimSpace bool
	// MaxRowBytes bounds a row's length; zero means DefaultMaxRowBytes.
	MaxRowBytes int
}

type format uint8

const (
	formatCSV format = iota
	formatJSONLines
)

// Reader reads rows from a file. It is not safe for concurrent use.
type Reader struct {
	r      io.Reader
	format format
	csv    CSVOptions
	maxRow int

	buf   []byte
	start int   // first unconsumed byte of buf
	base  int64 // file offset of buf[0]
	line  int64 // line number at buf[start]
	eof   bool
	raw   []byte
}

// NewCSV returns a Reader of a delimited file whose input r starts at pos.
func NewCSV(r io.Reader, opts CSVOptions, pos Position) *Reader {
	if opts.Delimiter == 0 {
		opts.Delimiter = ','
	}
	if opts.Quote == 0 {
		opts.Quote = '"'
	}
	return newReader(r, formatCSV, opts, pos)
}

// NewJSONLines returns a Reader of a JSON-lines file (one JSON object per
// line) whose input r starts at pos. Nested objects become dotted paths.
func NewJSONLines(r io.Reader, maxRowBytes int, pos Position) *Reader {
	return newReader(r, formatJSONLines, CSVOptions{MaxRowBytes: maxRowBytes}, pos)
}

func newReader(r io.Reader, f format, opts CSVOptions, pos Position) *Reader {
	if opts.MaxRowBytes <= 0 {
		opts.MaxRowBytes = DefaultMaxRowBytes
	}
	if pos.Line <= 0 {
		pos.Line = 1
	}
	return &Reader{r: r, format: f, csv: opts, maxRow: opts.MaxRowBytes, base: pos.Offset, line: pos.Line}
}

// Offset returns the file offset of the first byte not yet consumed: after
// a row, its End.
func (r *Reader) Offset() int64 { return r.base + int64(r.start) }

// Line returns the 1-based line number at Offset.
func (r *Reader) Line() int64 { return r.line }

// Raw returns the bytes the last call to Next or SkipLine consumed, blank
// lines before a row included; at io.EOF, the trailing bytes after the last
// row; after an error, nothing. The slice is valid until the next call.
// Concatenated, the Raw of every call is the input.
func (r *Reader) Raw() []byte { return r.raw }

// fill reads more input into buf, keeping buf[start:]. At the end of the
// input it sets eof; a read error other than io.EOF is returned.
func (r *Reader) fill() error {
	if r.eof {
		return nil
	}
	if r.start > 0 && r.start == len(r.buf) {
		r.base += int64(r.start)
		r.buf = r.buf[:0]
		r.start = 0
	} else if r.start > len(r.buf)/2 {
		n := copy(r.buf, r.buf[r.start:])
		r.base += int64(r.start)
		r.buf = r.buf[:n]
		r.start = 0
	}
	// Read at least as much as is pending (doubling the window for long
	// rows), growing from 4 KiB to 64 KiB.
	want := min(max(2*cap(r.buf), 4<<10), 64<<10)
	if pending := len(r.buf) - r.start; pending > want {
		want = pending
	}
	if cap(r.buf)-len(r.buf) < want {
		nb := make([]byte, len(r.buf), len(r.buf)+want)
		copy(nb, r.buf)
		r.buf = nb
	}
	for range 100 {
		n, err := r.r.Read(r.buf[len(r.buf):cap(r.buf)])
		r.buf = r.buf[:len(r.buf)+n]
		if err == io.EOF {
			r.eof = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the file: %w", err)
		}
		if n > 0 {
			return nil
		}
	}
	return fmt.Errorf("reading the file: %w", io.ErrNoProgress)
}

// consume marks buf[start:end] as consumed.
func (r *Reader) consume(end int, lines int64) {
	r.raw = r.buf[r.start:end]
	r.start = end
	r.line += lines
}

// SkipLine consumes one line, whatever it holds (for title lines before a
// header). It returns io.EOF at the end of the input.
func (r *Reader) SkipLine() error {
	for {
		b := r.buf[r.start:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			r.consume(r.start+i+1, 1)
			return nil
		}
		if r.eof {
			if len(b) == 0 {
				r.raw = nil
				return io.EOF
			}
			r.consume(len(r.buf), 0)
			return nil
		}
		if len(b) > r.maxRow {
			return fmt.Errorf("line %d: %w (more than %d bytes)", r.line, ErrRowTooLong, r.maxRow)
		}
		if err := r.fill(); err != nil {
			return err
		}
	}
}

// scan results.
type scanStatus uint8

const (
	needMore  scanStatus = iota // the row goes on past the buffer
	gotRow                      // a row ends at end
	onlyBlank                   // only blank lines up to the end of the input
)

// Next returns the next row. Rows that cannot be read are returned with Err
// set. At the end of the input it returns io.EOF; any other error (reading
// the input, ErrRowTooLong, a *SyntaxError of reason ReasonUnclosedQuote)
// ends the file.
func (r *Reader) Next() (Row, error) {
	for {
		b := r.buf[r.start:]
		var (
			row    Row
			end    int
			status scanStatus
		)
		if r.format == formatJSONLines {
			row, end, status = r.scanJSON(b, r.eof)
		} else {
			row, end, status = r.scanCSV(b, r.eof)
		}
		switch status {
		case gotRow:
			row.Line = r.line + int64(bytes.Count(b[:row.Start], nl))
			row.Start += r.Offset()
			row.End = r.Offset() + int64(end)
			if row.Err != nil {
				row.Err.Line = row.Line
				if row.Err.Reason == ReasonUnclosedQuote {
					// The field opens on a later line of a row that spans
					// lines: name that one.
					row.Err.Line = r.line + int64(bytes.Count(b[:row.Err.opened], nl))
					r.raw = nil
					return Row{}, row.Err
				}
			}
			r.consume(r.start+end, int64(bytes.Count(b[:end], nl)))
			return row, nil
		case onlyBlank:
			if len(b) == 0 {
				r.raw = nil
			} else {
				r.consume(len(r.buf), int64(bytes.Count(b, nl)))
			}
			return Row{}, io.EOF
		}
		if len(b) > r.maxRow {
			r.raw = nil
			return Row{}, fmt.Errorf("line %d: %w (more than %d bytes)", r.line, ErrRowTooLong, r.maxRow)
		}
		// At the end of the input eof is set, and the next scan ends the row
		// there.
		if err := r.fill(); err != nil {
			r.raw = nil
			return Row{}, err
		}
	}
}

var nl = []byte{'\n'}
