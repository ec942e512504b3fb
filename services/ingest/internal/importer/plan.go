package importer

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/rows"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

// Time zones named in mappings and feature sets must resolve in any image,
// including ones without a zoneinfo database.
import _ "time/tzdata"

// Defaults and limits of mappings.
const (
	// DefaultInferenceRows is how many rows type inference reads by default.
	DefaultInferenceRows = 1000
	// MaxInferenceRows is the most rows a mapping may ask inference to read.
	MaxInferenceRows = 100_000
	// MaxPrefixBytes bounds the prefix of generated customer ids.
	MaxPrefixBytes = 64
)

// use is one use of a column as a trait or property.
type use struct {
	column string
	name   string
}

// outcome is a compiled OutcomeEventMapping.
type outcome struct {
	name, nameColumn   string
	valueColumn        string
	currency           string
	currencyColumn     string
	itemColumn         string
	props              []use
	whenColumn         string
	whenValues         map[string]bool
	unmappedProperties bool
}

// Plan is a validated mapping: how the rows of one file become records.
type Plan struct {
	json        bool
	csv         rows.CSVOptions
	header      bool
	skipLines   int
	columnNames []string

	userColumn  string
	genPrefix   string
	digest      string
	mappingHash string
	importID    string
	key         string // of the import's progress: importKey

	tsColumn string
	tsFormat ingestv1.TimeFormat
	tsLayout string
	tsLoc    *time.Location
	fixed    time.Time

	msgIDColumn string
	traits      []use
	props       []use
	outcomes    []outcome
	unmapped    ingestv1.UnmappedColumns
	explicit    map[string]commonv1.ValueType
	named       map[string]bool // every column the mapping names
	nulls       map[string]bool
	inferRows   int
	noInference bool
}

var hexDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ImportID returns the id of the import of a file (by its digest) with a
// mapping (by mappingHash's): "imp-", the first 16 hex digits of the
// digest, "-" and the first 12 of the mapping's hash. The same bytes
// imported with another mapping (another event name, say) are another
// import, whose records do not de-duplicate against the first's.
func ImportID(digest, mappingHash string) string {
	return "imp-" + digest[:16] + "-" + mappingHash[:12]
}

// importKey is the key of an import's progress in the imports bucket: the
// file's digest and the mapping's hash, so that a file imported completely
// with one mapping can still be imported with another.
func importKey(digest, mappingHash string) string { return digest + "." + mappingHash }

// Compile validates a start message and returns its plan. Mistakes are
// fault.Violations with paths under "start".
func Compile(start *ingestv1.ImportStart) (*Plan, error) {
	var v fault.Violations
	bad := func(field, desc string) { v = append(v, fault.Violation{Field: "start." + field, Description: desc}) }
	// Every string valid UTF-8 and of bounded length, every list bounded,
	// before any of them is read.
	if v.CheckMessage("start", start); len(v) > 0 {
		return nil, v
	}
	if !hexDigest.MatchString(start.GetSha256()) {
		bad("sha256", "must be the file's SHA-256 digest as 64 lowercase hex digits (the output of sha256sum)")
	}
	if start.GetSizeBytes() < 0 || start.GetSizeBytes() > MaxFileBytes {
		bad("size_bytes", fmt.Sprintf("must be between 0 and %d", int64(MaxFileBytes)))
	}
	if n := start.GetMaxRejectionsReported(); n < 0 || n > 1000 {
		bad("max_rejections_reported", "must be between 0 and 1000")
	}
	m := start.GetMapping()
	if m == nil {
		bad("mapping", "is required")
		return nil, v
	}
	p := &Plan{explicit: map[string]commonv1.ValueType{}, named: map[string]bool{}, nulls: map[string]bool{}}
	if len(v) == 0 {
		p.digest, p.mappingHash = start.GetSha256(), mappingHash(m)
		p.importID, p.key = ImportID(p.digest, p.mappingHash), importKey(p.digest, p.mappingHash)
	}
	name := func(field, col string) {
		if col == "" {
			return
		}
		p.named[col] = true
	}
	switch m.GetFormat() {
	case ingestv1.FileFormat_FILE_FORMAT_CSV:
		c := m.GetCsv()
		o := rows.CSVOptions{Whitespace: c.GetWhitespaceSeparated(), NoQuoting: c.GetDisableQuoting(), TrimSpace: c.GetTrimSpace()}
		if d := c.GetDelimiter(); d != "" && !c.GetWhitespaceSeparated() {
			if len(d) != 1 || d[0] == '\n' || d[0] == '\r' || d[0] >= 0x80 {
				bad("mapping.csv.delimiter", "must be one ASCII character other than a line end, e.g. \",\", \";\", \"\\t\" or \"|\"")
			} else {
				o.Delimiter = d[0]
			}
		}
		if q := c.GetQuote(); q != "" {
			if len(q) != 1 || q[0] == '\n' || q[0] == '\r' || q[0] >= 0x80 {
				bad("mapping.csv.quote", "must be one ASCII character other than a line end")
			} else {
				o.Quote = q[0]
			}
		}
		if d := cmp.Or(o.Delimiter, ','); !o.Whitespace && !o.NoQuoting && cmp.Or(o.Quote, '"') == d {
			bad("mapping.csv.quote", "must differ from the delimiter")
		}
		switch c.GetLineEnding() {
		case ingestv1.LineEnding_LINE_ENDING_LF:
			o.LineEnding = rows.LF
		case ingestv1.LineEnding_LINE_ENDING_CRLF:
			o.LineEnding = rows.CRLF
		}
		p.csv = o
		p.header = c.GetHeaderRow()
		p.columnNames = c.GetColumnNames()
		if !p.header && len(p.columnNames) == 0 {
			bad("mapping.csv.column_names", "are required when the file has no header row")
		}
		if c.GetSkipLines() < 0 {
			bad("mapping.csv.skip_lines", "must not be negative")
		}
		p.skipLines = int(c.GetSkipLines())
		if dup := firstDuplicate(p.columnNames); dup != "" {
			bad("mapping.csv.column_names", "name a column twice")
		}
	case ingestv1.FileFormat_FILE_FORMAT_JSON_LINES:
		p.json = true
	default:
		bad("mapping.format", "is required: FILE_FORMAT_CSV or FILE_FORMAT_JSON_LINES")
	}

	switch e := m.GetEntity().(type) {
	case *ingestv1.ImportMapping_UserIdColumn:
		if e.UserIdColumn == "" {
			bad("mapping.user_id_column", "must name a column")
		}
		p.userColumn = e.UserIdColumn
		name("user_id", e.UserIdColumn)
	case *ingestv1.ImportMapping_GeneratedIds:
		if len(e.GeneratedIds.GetPrefix()) > MaxPrefixBytes {
			bad("mapping.generated_ids.prefix", "is longer than 64 bytes")
		}
		p.genPrefix = e.GeneratedIds.GetPrefix()
		if p.genPrefix == "" {
			p.genPrefix = "gen-"
		}
	default:
		bad("mapping.entity", "is required: user_id_column or generated_ids")
	}

	switch t := m.GetTime().(type) {
	case *ingestv1.ImportMapping_TimestampColumn:
		tc := t.TimestampColumn
		if tc.GetColumn() == "" {
			bad("mapping.timestamp_column.column", "must name a column")
		}
		p.tsColumn, p.tsFormat, p.tsLayout = tc.GetColumn(), tc.GetFormat(), tc.GetLayout()
		name("timestamp", tc.GetColumn())
		if p.tsFormat == ingestv1.TimeFormat_TIME_FORMAT_LAYOUT && p.tsLayout == "" {
			bad("mapping.timestamp_column.layout", "is required with TIME_FORMAT_LAYOUT, e.g. \"20060102\"")
		}
		if _, ok := ingestv1.TimeFormat_name[int32(p.tsFormat)]; !ok {
			bad("mapping.timestamp_column.format", "is not a known format")
		}
		p.tsLoc = time.UTC
		if tz := tc.GetTimeZone(); tz != "" {
			loc, err := time.LoadLocation(tz)
			if err != nil {
				bad("mapping.timestamp_column.time_zone", "is not a known IANA time zone")
			} else {
				p.tsLoc = loc
			}
		}
	case *ingestv1.ImportMapping_FixedTime:
		if err := t.FixedTime.CheckValid(); err != nil {
			bad("mapping.fixed_time", "is not a valid timestamp")
		} else {
			p.fixed = t.FixedTime.AsTime()
		}
	default:
		bad("mapping.time", "is required: timestamp_column or fixed_time")
	}

	uses := func(field string, cms []*ingestv1.ColumnMapping) []use {
		var out []use
		for i, cm := range cms {
			f := fmt.Sprintf("mapping.%s[%d]", field, i)
			if cm.GetColumn() == "" {
				bad(f+".column", "must name a column")
				continue
			}
			n := cm.GetName()
			if n == "" {
				n = cm.GetColumn()
			}
			v.CheckName("start."+f+".name", n)
			if t := cm.GetType(); t != commonv1.ValueType_VALUE_TYPE_UNSPECIFIED {
				if _, ok := commonv1.ValueType_name[int32(t)]; !ok {
					bad(f+".type", "is not a known type")
				} else if prev, ok := p.explicit[cm.GetColumn()]; ok && prev != t {
					bad(f+".type", "differs from the type given for the same column elsewhere")
				} else {
					p.explicit[cm.GetColumn()] = t
				}
			}
			name(f, cm.GetColumn())
			out = append(out, use{column: cm.GetColumn(), name: n})
		}
		return out
	}
	p.traits = uses("trait_columns", m.GetTraitColumns())
	p.props = uses("property_columns", m.GetPropertyColumns())
	if dup := firstDuplicate(useNames(p.traits)); dup != "" {
		bad("mapping.trait_columns", "store two columns under the same trait name")
	}
	p.unmapped = m.GetUnmappedColumns()
	if _, ok := ingestv1.UnmappedColumns_name[int32(p.unmapped)]; !ok {
		bad("mapping.unmapped_columns", "is not a known choice")
	}
	for i, om := range m.GetOutcomeEvents() {
		f := fmt.Sprintf("mapping.outcome_events[%d]", i)
		o := outcome{
			valueColumn:    om.GetValueColumn(),
			currency:       om.GetCurrency(),
			currencyColumn: om.GetCurrencyColumn(),
			itemColumn:     om.GetItemIdColumn(),
			whenColumn:     om.GetWhenColumn(),
		}
		switch n := om.GetEventName().(type) {
		case *ingestv1.OutcomeEventMapping_Name:
			o.name = n.Name
			v.CheckName("start."+f+".name", n.Name)
		case *ingestv1.OutcomeEventMapping_NameColumn:
			o.nameColumn = n.NameColumn
			if n.NameColumn == "" {
				bad(f+".name_column", "must name a column")
			}
		default:
			bad(f+".event_name", "is required: name or name_column")
		}
		if o.currency != "" && !regexp.MustCompile(`^[A-Z]{3}$`).MatchString(o.currency) {
			bad(f+".currency", "must be an ISO 4217 code of three capital letters")
		}
		if o.whenColumn != "" {
			if len(om.GetWhenValues()) == 0 {
				bad(f+".when_values", "are required with when_column")
			}
			o.whenValues = map[string]bool{}
			for _, w := range om.GetWhenValues() {
				o.whenValues[strings.TrimSpace(w)] = true
			}
		}
		for _, c := range []string{o.nameColumn, o.valueColumn, o.currencyColumn, o.itemColumn, o.whenColumn} {
			name(f, c)
		}
		o.props = uses(f[len("mapping."):]+".property_columns", om.GetPropertyColumns())
		o.unmappedProperties = p.unmapped == ingestv1.UnmappedColumns_UNMAPPED_COLUMNS_PROPERTIES
		p.outcomes = append(p.outcomes, o)
	}
	if len(p.props) > 0 && len(p.outcomes) == 0 {
		bad("mapping.property_columns", "need at least one outcome event mapping to be properties of")
	}
	if p.unmapped == ingestv1.UnmappedColumns_UNMAPPED_COLUMNS_PROPERTIES && len(p.outcomes) == 0 {
		bad("mapping.unmapped_columns", "UNMAPPED_COLUMNS_PROPERTIES needs at least one outcome event mapping")
	}
	if len(p.traits) == 0 && len(p.outcomes) == 0 && p.unmapped != ingestv1.UnmappedColumns_UNMAPPED_COLUMNS_TRAITS {
		bad("mapping", "makes no records: name trait columns, outcome events, or UNMAPPED_COLUMNS_TRAITS")
	}
	p.msgIDColumn = m.GetMessageIdColumn()
	name("message_id_column", p.msgIDColumn)
	p.noInference = m.GetDisableTypeInference()
	p.inferRows = int(m.GetInferenceRows())
	if p.inferRows < 0 || p.inferRows > MaxInferenceRows {
		bad("mapping.inference_rows", fmt.Sprintf("must be between 0 and %d", MaxInferenceRows))
	}
	if p.inferRows == 0 {
		p.inferRows = DefaultInferenceRows
	}
	if p.noInference {
		p.inferRows = 0
	}
	if len(m.GetNullValues()) == 0 {
		p.nulls[""] = true
	}
	for _, n := range m.GetNullValues() {
		p.nulls[strings.TrimSpace(n)] = true
	}
	if len(v) > 0 {
		return nil, v
	}
	return p, nil
}

func useNames(us []use) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.name
	}
	return out
}

func firstDuplicate(names []string) string {
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			return n
		}
		seen[n] = true
	}
	return ""
}

// MessageBase returns the base of the message ids of a row's records.
func (p *Plan) messageBase(rowNumber int64) string {
	return p.importID + "-" + strconv.FormatInt(rowNumber, 10)
}

// generatedID returns the customer id generated for a row.
func (p *Plan) generatedID(rowNumber int64) string {
	return p.genPrefix + p.digest[:16] + "-" + strconv.FormatInt(rowNumber, 10)
}

// roles returns what a column is used for, for ImportColumn.role.
func (p *Plan) roles(col string) []string {
	var r []string
	add := func(s string) {
		if !slices.Contains(r, s) {
			r = append(r, s)
		}
	}
	if col == p.userColumn {
		add("user_id")
	}
	if col == p.tsColumn {
		add("timestamp")
	}
	if col == p.msgIDColumn {
		add("message_id")
	}
	for _, u := range p.traits {
		if u.column == col {
			add("trait:" + u.name)
		}
	}
	for _, u := range p.props {
		if u.column == col {
			add("property:" + u.name)
		}
	}
	for _, o := range p.outcomes {
		switch col {
		case o.valueColumn:
			add("value")
		case o.currencyColumn:
			add("currency")
		case o.itemColumn:
			add("item_id")
		case o.nameColumn:
			add("event_name")
		}
		if col == o.whenColumn {
			add("when")
		}
		for _, u := range o.props {
			if u.column == col {
				add("property:" + u.name)
			}
		}
	}
	if !p.named[col] {
		switch p.unmapped {
		case ingestv1.UnmappedColumns_UNMAPPED_COLUMNS_TRAITS:
			add("trait:" + col)
		case ingestv1.UnmappedColumns_UNMAPPED_COLUMNS_PROPERTIES:
			add("property:" + col)
		default:
			add("ignored")
		}
	}
	return r
}

// typed reports whether a column's values are parsed by type (traits and
// properties), as opposed to read as text or by a role's own rules.
func typed(roles []string) bool {
	for _, r := range roles {
		if strings.HasPrefix(r, "trait:") || strings.HasPrefix(r, "property:") {
			return true
		}
	}
	return false
}
