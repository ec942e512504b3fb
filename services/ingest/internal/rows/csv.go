package rows

import (
	"bytes"
	"strings"
)

// lineEnd reports whether a line ends at b[j]: n is the length of the line
// end (0 when none), bare is true for a "\n" that CRLF mode refuses, and
// more is true when b ends in the middle of a possible line end.
func (r *Reader) lineEnd(b []byte, j int, eof bool) (n int, bare, more bool) {
	if j >= len(b) {
		return 0, false, false
	}
	switch b[j] {
	case '\n':
		return 1, r.csv.LineEnding == CRLF, false
	case '\r':
		if r.csv.LineEnding == LF {
			return 0, false, false
		}
		if j+1 < len(b) {
			if b[j+1] == '\n' {
				return 2, false, false
			}
			return 0, false, false
		}
		return 0, false, !eof
	}
	return 0, false, false
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// scanCSV reads one row from b. Row.Start is relative to b.
func (r *Reader) scanCSV(b []byte, eof bool) (Row, int, scanStatus) {
	ws := r.csv.Whitespace
	// Skip blank lines.
	i := 0
	for {
		j := i
		if ws {
			for j < len(b) && isSpace(b[j]) {
				j++
			}
		}
		if j == len(b) {
			if eof {
				return Row{}, len(b), onlyBlank
			}
			return Row{}, 0, needMore
		}
		n, _, more := r.lineEnd(b, j, eof)
		if more {
			return Row{}, 0, needMore
		}
		if n == 0 {
			break
		}
		i = j + n
	}
	row := Row{Start: int64(i)}
	j := i
	quoting := !r.csv.NoQuoting
	for {
		if ws {
			for j < len(b) && isSpace(b[j]) {
				j++
			}
		}
		// One field.
		if quoting && j < len(b) && b[j] == r.csv.Quote {
			text, next, ok, status := r.quoted(b, j+1, eof)
			if status == needMore {
				return Row{}, 0, needMore
			}
			row.Cells = append(row.Cells, Cell{Text: text})
			if !ok {
				row.Err = &SyntaxError{Column: len(row.Cells), Reason: ReasonUnclosedQuote, opened: j,
					Msg: "a quoted field opens here and is not closed before the end of the file, so every row after it would be read as its text; close the quote, double the quotes inside the field, or set csv.disable_quoting"}
				return row, len(b), gotRow
			}
			j = next
			skipped := false
			if ws || r.csv.TrimSpace {
				for j < len(b) && isSpace(b[j]) {
					j++
					skipped = true
				}
			}
			if j == len(b) {
				if !eof {
					return Row{}, 0, needMore
				}
				return row, j, gotRow
			}
			n, bare, more := r.lineEnd(b, j, eof)
			switch {
			case more:
				return Row{}, 0, needMore
			case n > 0:
				if bare {
					row.Err = &SyntaxError{Reason: "BAD_LINE_ENDING", Msg: `a row ends with "\n" where "\r\n" is required`}
				}
				return row, j + n, gotRow
			case !ws && b[j] == r.csv.Delimiter:
				j++
				continue
			case ws && skipped:
				continue
			}
			// Text after a closing quote: skip to the end of the line.
			end, status := r.skipLine(b, j, eof)
			if status == needMore {
				return Row{}, 0, needMore
			}
			row.Err = &SyntaxError{Column: len(row.Cells), Reason: "BAD_QUOTING", Msg: "text follows a closing quote; double quotes inside a quoted field"}
			return row, end, gotRow
		}
		// An unquoted field.
		k := j
		for ; k < len(b); k++ {
			c := b[k]
			if c == '\n' || c == '\r' || (ws && isSpace(c)) || (!ws && c == r.csv.Delimiter) {
				if c == '\r' {
					n, _, more := r.lineEnd(b, k, eof)
					if more {
						return Row{}, 0, needMore
					}
					if n == 0 {
						continue
					}
				}
				break
			}
		}
		if k == len(b) && !eof {
			return Row{}, 0, needMore
		}
		field := b[j:k]
		if r.csv.TrimSpace {
			field = bytes.Trim(field, " \t")
		}
		row.Cells = append(row.Cells, Cell{Text: string(field)})
		j = k
		if j == len(b) {
			return row, j, gotRow
		}
		if !ws && b[j] == r.csv.Delimiter {
			j++
			continue
		}
		if ws && isSpace(b[j]) {
			for j < len(b) && isSpace(b[j]) {
				j++
			}
			if j == len(b) {
				if !eof {
					return Row{}, 0, needMore
				}
				return row, j, gotRow
			}
			n, bare, more := r.lineEnd(b, j, eof)
			if more {
				return Row{}, 0, needMore
			}
			if n == 0 {
				continue
			}
			if bare {
				row.Err = &SyntaxError{Reason: "BAD_LINE_ENDING", Msg: `a row ends with "\n" where "\r\n" is required`}
			}
			return row, j + n, gotRow
		}
		n, bare, _ := r.lineEnd(b, j, eof)
		if bare {
			row.Err = &SyntaxError{Reason: "BAD_LINE_ENDING", Msg: `a row ends with "\n" where "\r\n" is required`}
		}
		return row, j + n, gotRow
	}
}

// quoted reads a quoted field whose text starts at b[j], just after the
// opening quote. It returns the field's text and the index just past the
// closing quote; ok is false when the input ends inside the field.
func (r *Reader) quoted(b []byte, j int, eof bool) (text string, next int, ok bool, status scanStatus) {
	q := r.csv.Quote
	var sb strings.Builder
	for {
		k := bytes.IndexByte(b[j:], q)
		if k < 0 {
			if !eof {
				return "", 0, false, needMore
			}
			sb.Write(b[j:])
			return sb.String(), len(b), false, gotRow
		}
		k += j
		if k+1 == len(b) && !eof {
			return "", 0, false, needMore // a doubled quote may follow
		}
		if k+1 < len(b) && b[k+1] == q {
			sb.Write(b[j : k+1])
			j = k + 2
			continue
		}
		if sb.Len() == 0 {
			return string(b[j:k]), k + 1, true, gotRow
		}
		sb.Write(b[j:k])
		return sb.String(), k + 1, true, gotRow
	}
}

// skipLine returns the index just past the line end at or after b[j].
func (r *Reader) skipLine(b []byte, j int, eof bool) (int, scanStatus) {
	k := bytes.IndexByte(b[j:], '\n')
	if k < 0 {
		if !eof {
			return 0, needMore
		}
		return len(b), gotRow
	}
	return j + k + 1, gotRow
}
