package importer

import (
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/rows"
)

// Column is what the import knows of one column; it is kept with the
// import's progress so that a resumed import reads values the same way.
type Column struct {
	// Name is the column's name (CSV) or dotted path (JSON lines).
	Name string `json:"name"`
	// Type is how trait and property values are parsed.
	Type commonv1.ValueType `json:"type"`
	// Inferred is true when Type was inferred.
	Inferred bool `json:"inferred,omitempty"`
	// Role says what the column is used for.
	Role string `json:"role"`
}

// columns is the set of known columns.
type columns struct {
	list  []Column
	index map[string]int
}

func newColumns(list []Column) *columns {
	c := &columns{index: map[string]int{}}
	for _, col := range list {
		c.add(col)
	}
	return c
}

func (c *columns) add(col Column) {
	c.index[col.Name] = len(c.list)
	c.list = append(c.list, col)
}

func (c *columns) get(name string) (Column, bool) {
	i, ok := c.index[name]
	if !ok {
		return Column{}, false
	}
	return c.list[i], true
}

func (c *columns) proto() []*ingestv1.ImportColumn {
	out := make([]*ingestv1.ImportColumn, len(c.list))
	for i, col := range c.list {
		out[i] = &ingestv1.ImportColumn{Column: col.Name, Type: col.Type, Inferred: col.Inferred, Role: col.Role}
	}
	return out
}

// decimalRE is what type inference takes for a number: no hex, no
// infinities, no leading zeros (those are codes, such as "01234").
var (
	intRE     = regexp.MustCompile(`^[+-]?(0|[1-9][0-9]*)$`)
	decimalRE = regexp.MustCompile(`^[+-]?(0|[1-9][0-9]*)?(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)
)

// inferrer accumulates what the values of one column could be.
type inferrer struct {
	seen                         bool
	isInt, isNum, isBool, isTime bool
}

func newInferrer() *inferrer { return &inferrer{isInt: true, isNum: true, isBool: true, isTime: true} }

func (f *inferrer) add(c rows.Cell) {
	f.seen = true
	t := strings.TrimSpace(c.Text)
	switch c.Kind {
	case rows.KindNumber:
		f.isBool, f.isTime = false, false
		if !intRE.MatchString(t) {
			f.isInt = false
		} else if _, err := strconv.ParseInt(t, 10, 64); err != nil {
			f.isInt = false
		}
		return
	case rows.KindBool:
		f.isInt, f.isNum, f.isTime = false, false, false
		return
	case rows.KindString, rows.KindJSON:
		f.isInt, f.isNum, f.isBool = false, false, false
		if c.Kind == rows.KindJSON || !isRFC3339(t) {
			f.isTime = false
		}
		return
	}
	if f.isInt && (!intRE.MatchString(t) || !fitsInt(t)) {
		f.isInt = false
	}
	if f.isNum && (t == "" || t == "." || !decimalRE.MatchString(t) || !finite(t)) {
		f.isNum = false
	}
	if f.isBool && !strings.EqualFold(t, "true") && !strings.EqualFold(t, "false") {
		f.isBool = false
	}
	if f.isTime && !isRFC3339(t) {
		f.isTime = false
	}
}

func (f *inferrer) result() commonv1.ValueType {
	switch {
	case !f.seen:
		return commonv1.ValueType_VALUE_TYPE_STRING
	case f.isInt:
		return commonv1.ValueType_VALUE_TYPE_INT
	case f.isNum:
		return commonv1.ValueType_VALUE_TYPE_NUMBER
	case f.isBool:
		return commonv1.ValueType_VALUE_TYPE_BOOL
	case f.isTime:
		return commonv1.ValueType_VALUE_TYPE_TIME
	}
	return commonv1.ValueType_VALUE_TYPE_STRING
}

// kindType is the type of a JSON value seen only after inference.
func kindType(c rows.Cell) commonv1.ValueType {
	f := newInferrer()
	f.add(c)
	if c.Kind == rows.KindNull || c.Kind == rows.KindText {
		return commonv1.ValueType_VALUE_TYPE_STRING
	}
	return f.result()
}

func fitsInt(t string) bool {
	_, err := strconv.ParseInt(t, 10, 64)
	return err == nil
}

func finite(t string) bool {
	f, err := strconv.ParseFloat(t, 64)
	return err == nil && !math.IsInf(f, 0) && !math.IsNaN(f)
}

func isRFC3339(t string) bool {
	_, err := time.Parse(time.RFC3339Nano, t)
	return err == nil
}

// parseValue reads a cell as type t; ok is false when it does not parse.
func parseValue(c rows.Cell, t commonv1.ValueType) (*commonv1.Value, bool) {
	text := c.Text
	switch t {
	case commonv1.ValueType_VALUE_TYPE_STRING, commonv1.ValueType_VALUE_TYPE_UNSPECIFIED:
		return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: text}}, true
	}
	text = strings.TrimSpace(text)
	switch t {
	case commonv1.ValueType_VALUE_TYPE_INT:
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			// A JSON number such as 3.0 is still whole.
			f, ferr := strconv.ParseFloat(text, 64)
			if ferr != nil || f != math.Trunc(f) || math.Abs(f) >= 1<<63 || c.Kind == rows.KindString {
				return nil, false
			}
			n = int64(f)
		}
		return &commonv1.Value{Kind: &commonv1.Value_IntValue{IntValue: n}}, true
	case commonv1.ValueType_VALUE_TYPE_NUMBER:
		if c.Kind == rows.KindBool || c.Kind == rows.KindJSON {
			return nil, false
		}
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, false
		}
		return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: f}}, true
	case commonv1.ValueType_VALUE_TYPE_BOOL:
		switch strings.ToLower(text) {
		case "true":
			return &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: true}}, true
		case "false":
			return &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: false}}, true
		}
		return nil, false
	case commonv1.ValueType_VALUE_TYPE_TIME:
		tm, err := time.Parse(time.RFC3339Nano, text)
		if err != nil {
			return nil, false
		}
		return &commonv1.Value{Kind: &commonv1.Value_TimeValue{TimeValue: timestamppb.New(tm)}}, true
	}
	return nil, false
}

// parseTime reads a row's time as the plan's timestamp column says.
func (p *Plan) parseTime(c rows.Cell) (time.Time, bool) {
	text := strings.TrimSpace(c.Text)
	switch p.tsFormat {
	case ingestv1.TimeFormat_TIME_FORMAT_UNSPECIFIED, ingestv1.TimeFormat_TIME_FORMAT_RFC3339:
		if t, err := time.Parse(time.RFC3339Nano, text); err == nil {
			return t, true
		}
		t, err := time.ParseInLocation("2006-01-02T15:04:05.999999999", text, p.tsLoc)
		return t, err == nil
	case ingestv1.TimeFormat_TIME_FORMAT_DATE:
		t, err := time.ParseInLocation("2006-01-02", text, p.tsLoc)
		return t, err == nil
	case ingestv1.TimeFormat_TIME_FORMAT_UNIX_SECONDS:
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || math.Abs(f) > 253402300799 {
			return time.Time{}, false
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
	case ingestv1.TimeFormat_TIME_FORMAT_UNIX_MILLIS:
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil || n > 253402300799999 || n < -62135596800000 {
			return time.Time{}, false
		}
		return time.UnixMilli(n).UTC(), true
	case ingestv1.TimeFormat_TIME_FORMAT_LAYOUT:
		t, err := time.ParseInLocation(p.tsLayout, text, p.tsLoc)
		return t, err == nil
	}
	return time.Time{}, false
}

// setupColumns decides the columns of a delimited file from its header (or
// the mapping's names) and checks the mapping against them.
func (p *Plan) checkNamed(known func(string) bool) error {
	var missing []string
	for col := range p.named {
		if !known(col) {
			missing = append(missing, col)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	return missingColumns(missing)
}

func sortStrings(s []string) { sort.Strings(s) }

func joinRoles(roles []string) string { return strings.Join(roles, ",") }
