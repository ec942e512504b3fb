package rows

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
)

// scanJSON reads one JSON-lines row from b. Row.Start is relative to b.
func (r *Reader) scanJSON(b []byte, eof bool) (Row, int, scanStatus) {
	i := 0
	for {
		k := bytes.IndexByte(b[i:], '\n')
		var line []byte
		end := 0
		if k < 0 {
			if !eof {
				return Row{}, 0, needMore
			}
			line, end = b[i:], len(b)
			if len(bytes.TrimSpace(line)) == 0 {
				return Row{}, len(b), onlyBlank
			}
		} else {
			line, end = b[i:i+k], i+k+1
			if len(bytes.TrimSpace(line)) == 0 {
				i = end
				continue
			}
		}
		row := Row{Start: int64(i)}
		row.Names, row.Cells, row.Err = parseObject(line)
		return row, end, gotRow
	}
}

// parseObject reads one JSON object and flattens it into dotted paths, in
// sorted order.
func parseObject(line []byte) ([]string, []Cell, *SyntaxError) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, nil, &SyntaxError{Reason: "BAD_JSON", Msg: "the line is not valid JSON"}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, nil, &SyntaxError{Reason: "BAD_JSON", Msg: "text follows the JSON object on the line"}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, nil, &SyntaxError{Reason: "NOT_AN_OBJECT", Msg: "the line is JSON but not an object"}
	}
	f := flattener{seen: make(map[string]bool)}
	f.flatten("", obj)
	if f.err != nil {
		return nil, nil, f.err
	}
	idx := make([]int, len(f.names))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case f.names[a] < f.names[b]:
			return -1
		case f.names[a] > f.names[b]:
			return 1
		}
		return 0
	})
	names := make([]string, len(idx))
	cells := make([]Cell, len(idx))
	for i, j := range idx {
		names[i], cells[i] = f.names[j], f.cells[j]
	}
	return names, cells, nil
}

type flattener struct {
	names []string
	cells []Cell
	seen  map[string]bool
	err   *SyntaxError
}

func (f *flattener) flatten(prefix string, obj map[string]any) {
	for k, v := range obj {
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			f.flatten(path, sub)
			continue
		}
		if f.seen[path] {
			f.err = &SyntaxError{Reason: "BAD_JSON", Msg: "two keys make the same dotted path"}
			return
		}
		f.seen[path] = true
		var c Cell
		switch x := v.(type) {
		case nil:
			c = Cell{Kind: KindNull}
		case string:
			c = Cell{Text: x, Kind: KindString}
		case json.Number:
			c = Cell{Text: x.String(), Kind: KindNumber}
		case bool:
			c = Cell{Text: "false", Kind: KindBool}
			if x {
				c.Text = "true"
			}
		default: // arrays and empty objects
			b, _ := json.Marshal(x)
			c = Cell{Text: string(b), Kind: KindJSON}
		}
		f.names = append(f.names, path)
		f.cells = append(f.cells, c)
	}
}
