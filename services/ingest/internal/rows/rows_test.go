package rows

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// readAll reads every row of in; it also checks that the Raw bytes of every
// call add up to the input.
func readAll(t testing.TB, in []byte, newReader func(io.Reader, Position) *Reader) ([]Row, error) {
	t.Helper()
	r := newReader(bytes.NewReader(in), Position{})
	var rows []Row
	var raw []byte
	for {
		row, err := r.Next()
		raw = append(raw, r.Raw()...)
		if err == io.EOF {
			if !bytes.Equal(raw, in) {
				t.Fatalf("Raw bytes add up to %q, want the input %q", raw, in)
			}
			return rows, nil
		}
		if err != nil {
			return rows, err
		}
		rows = append(rows, row)
	}
}

func texts(row Row) []string {
	out := make([]string, len(row.Cells))
	for i, c := range row.Cells {
		out[i] = c.Text
	}
	return out
}

func TestCSV(t *testing.T) {
	tests := []struct {
		name  string
		opts  CSVOptions
		in    string
		want  [][]string
		lines []int64
		errs  []string // per row: the SyntaxError reason, "" for none
		fatal string   // the start of the error that ends the file, if any
	}{
		{
			name:  "plain with header and no final newline",
			in:    "a,b,c\n1,2,3\n4,5,6",
			want:  [][]string{{"a", "b", "c"}, {"1", "2", "3"}, {"4", "5", "6"}},
			lines: []int64{1, 2, 3},
		},
		{
			name:  "semicolons, quotes, CRLF (Bank Marketing)",
			opts:  CSVOptions{Delimiter: ';'},
			in:    "\"age\";\"job\";\"y\"\r\n56;\"housemaid\";\"no\"\r\n57;\"services\";\"yes\"\r\n",
			want:  [][]string{{"age", "job", "y"}, {"56", "housemaid", "no"}, {"57", "services", "yes"}},
			lines: []int64{1, 2, 3},
		},
		{
			name:  "whitespace-separated with leading spaces (CDNOW)",
			opts:  CSVOptions{Whitespace: true},
			in:    " customer_id  date number_of_cds  dollar_value\r\n 00001 19970101  1   11.77\r\n 00002\t19970112  1   12.00 \r\n",
			want:  [][]string{{"customer_id", "date", "number_of_cds", "dollar_value"}, {"00001", "19970101", "1", "11.77"}, {"00002", "19970112", "1", "12.00"}},
			lines: []int64{1, 2, 3},
		},
		{
			name:  "empty fields (Criteo)",
			in:    "label,I1,C1\n0,,05db9164\n1,3,\n",
			want:  [][]string{{"label", "I1", "C1"}, {"0", "", "05db9164"}, {"1", "3", ""}},
			lines: []int64{1, 2, 3},
		},
		{
			name:  "quoted delimiters, doubled quotes and line breaks",
			in:    "id,text\n1,\"a, b\"\n2,\"say \"\"hi\"\"\"\n3,\"two\nlines\"\n4,x\n",
			want:  [][]string{{"id", "text"}, {"1", "a, b"}, {"2", `say "hi"`}, {"3", "two\nlines"}, {"4", "x"}},
			lines: []int64{1, 2, 3, 4, 6},
		},
		{
			name:  "blank lines are skipped",
			in:    "\n\na\r\n\r\nb\n\n",
			want:  [][]string{{"a"}, {"b"}},
			lines: []int64{3, 5},
		},
		{
			name:  "trim space",
			opts:  CSVOptions{TrimSpace: true},
			in:    " a ,\" b \" , c\n",
			want:  [][]string{{"a", " b ", "c"}},
			lines: []int64{1},
		},
		{
			name:  "no quoting",
			opts:  CSVOptions{NoQuoting: true, Delimiter: '\t'},
			in:    "\"a\t\"b\n",
			want:  [][]string{{`"a`, `"b`}},
			lines: []int64{1},
		},
		{
			name:  "custom quote",
			opts:  CSVOptions{Quote: '\'', Delimiter: '|'},
			in:    "'a|b'|c\n",
			want:  [][]string{{"a|b", "c"}},
			lines: []int64{1},
		},
		{
			name:  "LF keeps a carriage return",
			opts:  CSVOptions{LineEnding: LF},
			in:    "a,b\r\n",
			want:  [][]string{{"a", "b\r"}},
			lines: []int64{1},
		},
		{
			name:  "CRLF refuses a bare line feed",
			opts:  CSVOptions{LineEnding: CRLF},
			in:    "a,b\r\nc,d\ne,f\r\n",
			want:  [][]string{{"a", "b"}, {"c", "d"}, {"e", "f"}},
			lines: []int64{1, 2, 3},
			errs:  []string{"", "BAD_LINE_ENDING", ""},
		},
		{
			name:  "text after a closing quote spoils only its row",
			in:    "a,\"b\"x,c\nd,e\n",
			want:  [][]string{{"a", "b"}, {"d", "e"}},
			lines: []int64{1, 2},
			errs:  []string{"BAD_QUOTING", ""},
		},
		{
			name:  "an unclosed quote stops the file where it opens",
			in:    "a,b\nc,\"d\ne\n",
			want:  [][]string{{"a", "b"}},
			lines: []int64{1},
			fatal: "line 2, column 2: a quoted field opens here and is not closed",
		},
		{
			name:  "an unclosed quote on a later line of its row",
			in:    "a,\"b\nb\",\"c\nd,e\n",
			want:  nil,
			fatal: "line 2, column 3: a quoted field opens here",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, oneByte := range []bool{false, true} {
				r := NewCSV(bytes.NewReader([]byte(tt.in)), tt.opts, Position{})
				if oneByte {
					r = NewCSV(iotest.OneByteReader(strings.NewReader(tt.in)), tt.opts, Position{})
				}
				var got [][]string
				var lines []int64
				var errs []string
				for {
					row, err := r.Next()
					if err == io.EOF {
						if tt.fatal != "" {
							t.Errorf("the file ended without the error %q", tt.fatal)
						}
						break
					}
					if err != nil {
						var se *SyntaxError
						if tt.fatal == "" || !errors.As(err, &se) || se.Reason != ReasonUnclosedQuote || !strings.HasPrefix(err.Error(), tt.fatal) {
							t.Fatalf("Next: %v, want %q", err, tt.fatal)
						}
						break
					}
					got = append(got, texts(row))
					lines = append(lines, row.Line)
					reason := ""
					if row.Err != nil {
						reason = row.Err.Reason
						if row.Err.Line != row.Line {
							t.Errorf("error line %d, row line %d", row.Err.Line, row.Line)
						}
					}
					errs = append(errs, reason)
				}
				if !slices.EqualFunc(got, tt.want, slices.Equal) {
					t.Errorf("one byte at a time %v: rows %q, want %q", oneByte, got, tt.want)
				}
				if !slices.Equal(lines, tt.lines) {
					t.Errorf("one byte at a time %v: lines %v, want %v", oneByte, lines, tt.lines)
				}
				if tt.errs == nil {
					tt.errs = make([]string, len(tt.want))
				}
				if !slices.Equal(errs, tt.errs) {
					t.Errorf("one byte at a time %v: errors %q, want %q", oneByte, errs, tt.errs)
				}
			}
		})
	}
}

func TestJSONLines(t *testing.T) {
	in := "{\"user\":\"00001\",\"order\":{\"total\":11.77,\"items\":[1,2]},\"gift\":false,\"note\":null}\r\n" +
		"\n" +
		"[1,2]\n" +
		"{\"a\":1} x\n" +
		"{\"a\":\"x\",\"a.b\":1,\"a\":{\"b\":2}}\n" +
		"{\"big\":12345678901234567890}"
	rows, err := readAll(t, []byte(in), func(r io.Reader, pos Position) *Reader { return NewJSONLines(r, 0, pos) })
	if err != nil {
		t.Fatal(err)
	}
	type cell struct {
		name, text string
		kind       Kind
	}
	var got [][]cell
	var reasons []string
	var lines []int64
	for _, row := range rows {
		var cs []cell
		for i, c := range row.Cells {
			cs = append(cs, cell{row.Names[i], c.Text, c.Kind})
		}
		got = append(got, cs)
		reason := ""
		if row.Err != nil {
			reason = row.Err.Reason
		}
		reasons = append(reasons, reason)
		lines = append(lines, row.Line)
	}
	want := [][]cell{
		{{"gift", "false", KindBool}, {"note", "", KindNull}, {"order.items", "[1,2]", KindJSON}, {"order.total", "11.77", KindNumber}, {"user", "00001", KindString}},
		nil,
		nil,
		nil,
		{{"big", "12345678901234567890", KindNumber}},
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("cells %v, want %v", got, want)
	}
	if w := []string{"", "NOT_AN_OBJECT", "BAD_JSON", "BAD_JSON", ""}; !slices.Equal(reasons, w) {
		t.Errorf("reasons %q, want %q", reasons, w)
	}
	if w := []int64{1, 3, 4, 5, 6}; !slices.Equal(lines, w) {
		t.Errorf("lines %v, want %v", lines, w)
	}
}

func TestResumeAtRowBoundary(t *testing.T) {
	in := []byte("h1;h2\r\n1;\"a\r\nb\"\r\n\r\n2;c\r\n3;d")
	opts := CSVOptions{Delimiter: ';'}
	all, err := readAll(t, in, func(r io.Reader, pos Position) *Reader { return NewCSV(r, opts, pos) })
	if err != nil {
		t.Fatal(err)
	}
	for i, row := range all[:len(all)-1] {
		r := NewCSV(bytes.NewReader(in[row.End:]), opts, Position{Offset: row.End, Line: all[i+1].Line - blankLinesBefore(in, row.End, all[i+1].Start)})
		for _, want := range all[i+1:] {
			got, err := r.Next()
			if err != nil {
				t.Fatalf("resuming after row %d: %v", i, err)
			}
			if got.Line != want.Line || got.Start != want.Start || got.End != want.End || !slices.Equal(texts(got), texts(want)) {
				t.Errorf("resuming after row %d: got %+v, want %+v", i, got, want)
			}
		}
	}
}

func blankLinesBefore(in []byte, from, to int64) int64 {
	return int64(bytes.Count(in[from:to], []byte("\n")))
}

func TestSkipLineAndLimits(t *testing.T) {
	r := NewCSV(strings.NewReader("# title\nA,B\n1,2\n"), CSVOptions{}, Position{})
	if err := r.SkipLine(); err != nil {
		t.Fatal(err)
	}
	if string(r.Raw()) != "# title\n" || r.Offset() != 8 || r.Line() != 2 {
		t.Errorf("after SkipLine: raw %q offset %d line %d", r.Raw(), r.Offset(), r.Line())
	}
	row, err := r.Next()
	if err != nil || !slices.Equal(texts(row), []string{"A", "B"}) || row.Line != 2 || row.Start != 8 || row.End != 12 {
		t.Errorf("header: %+v, %v", row, err)
	}

	long := NewCSV(strings.NewReader("a,\""+strings.Repeat("x", 300)+"\n"), CSVOptions{MaxRowBytes: 100}, Position{})
	if _, err := long.Next(); !errors.Is(err, ErrRowTooLong) {
		t.Errorf("long row: %v, want ErrRowTooLong", err)
	}

	failing := NewCSV(io.MultiReader(strings.NewReader("a,b\nc,"), iotest.ErrReader(errors.New("disk on fire"))), CSVOptions{}, Position{})
	if _, err := failing.Next(); err != nil {
		t.Fatalf("first row: %v", err)
	}
	if _, err := failing.Next(); err == nil || err == io.EOF {
		t.Errorf("read error: got %v, want the reader's error (not a truncated row)", err)
	}
}

// modes of FuzzParseRows, chosen by the fuzzer's second argument.
var fuzzModes = []struct {
	json bool
	opts CSVOptions
}{
	{opts: CSVOptions{}},
	{opts: CSVOptions{Delimiter: ';'}},
	{opts: CSVOptions{Whitespace: true}},
	{opts: CSVOptions{Delimiter: '\t', NoQuoting: true}},
	{opts: CSVOptions{LineEnding: CRLF}},
	{opts: CSVOptions{LineEnding: LF, TrimSpace: true}},
	{opts: CSVOptions{Quote: '\'', Delimiter: '|'}},
	{json: true},
}

// FuzzParseRows checks, for any input and any mode, that the reader does
// not panic, that the Raw bytes add up to the input, that row offsets
// increase within the input, that reading one byte at a time and resuming at
// any row boundary give the same rows as reading at once, and that plain
// CSV agrees with encoding/csv where both apply.
func FuzzParseRows(f *testing.F) {
	f.Add([]byte("a,b,c\n1,2,3\n"), uint8(0))
	f.Add([]byte("\"age\";\"y\"\r\n56;\"no\"\r\n"), uint8(1))
	f.Add([]byte(" 00001 19970101  1   11.77\r\n"), uint8(2))
	f.Add([]byte("{\"a\":{\"b\":1},\"c\":[1]}\n{}\n"), uint8(7))
	f.Fuzz(func(t *testing.T, in []byte, mode uint8) {
		m := fuzzModes[int(mode)%len(fuzzModes)]
		newReader := func(r io.Reader, pos Position) *Reader {
			if m.json {
				return NewJSONLines(r, 1<<12, pos)
			}
			o := m.opts
			o.MaxRowBytes = 1 << 12
			return NewCSV(r, o, pos)
		}
		rows, err := readAll(t, in, newReader)
		if err != nil {
			var se *SyntaxError
			if !errors.Is(err, ErrRowTooLong) && (!errors.As(err, &se) || se.Reason != ReasonUnclosedQuote) {
				t.Fatalf("Next: %v", err)
			}
			return
		}
		prev := int64(0)
		for _, row := range rows {
			if row.Start < prev || row.End <= row.Start || row.End > int64(len(in)) {
				t.Fatalf("row %+v after offset %d in %d bytes", row, prev, len(in))
			}
			if want := int64(bytes.Count(in[:row.Start], []byte("\n"))) + 1; row.Line != want {
				t.Fatalf("row at %d: line %d, want %d", row.Start, row.Line, want)
			}
			prev = row.End
		}
		// One byte at a time.
		r := newReader(iotest.OneByteReader(bytes.NewReader(in)), Position{})
		for i, want := range rows {
			got, err := r.Next()
			if err != nil || !sameRow(got, want) {
				t.Fatalf("one byte at a time, row %d: %+v, %v; want %+v", i, got, err, want)
			}
		}
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("one byte at a time: after the last row: %v", err)
		}
		// Resume after (up to 16 of) the rows.
		step := max(1, len(rows)/16)
		for i := 0; i < len(rows); i += step {
			end := rows[i].End
			line := int64(bytes.Count(in[:end], []byte("\n"))) + 1
			r := newReader(bytes.NewReader(in[end:]), Position{Offset: end, Line: line})
			for j, want := range rows[i+1:] {
				got, err := r.Next()
				if err != nil || !sameRow(got, want) {
					t.Fatalf("resuming at %d, row %d: %+v, %v; want %+v", end, i+1+j, got, err, want)
				}
			}
		}
		// encoding/csv agrees on plain comma-separated input.
		if m.json || m.opts != (CSVOptions{}) || bytes.ContainsAny(in, "\r") {
			return
		}
		cr := csv.NewReader(bytes.NewReader(in))
		cr.FieldsPerRecord = -1
		want, err := cr.ReadAll()
		if err != nil {
			return
		}
		if len(want) != len(rows) {
			t.Fatalf("encoding/csv reads %d rows, we read %d", len(want), len(rows))
		}
		for i, row := range rows {
			if row.Err != nil || !slices.Equal(texts(row), want[i]) {
				t.Fatalf("row %d: %q (error %v), encoding/csv reads %q", i, texts(row), row.Err, want[i])
			}
		}
	})
}

func sameRow(a, b Row) bool {
	if a.Line != b.Line || a.Start != b.Start || a.End != b.End || !slices.Equal(a.Names, b.Names) || !slices.Equal(a.Cells, b.Cells) {
		return false
	}
	if (a.Err == nil) != (b.Err == nil) {
		return false
	}
	return a.Err == nil || *a.Err == *b.Err
}
