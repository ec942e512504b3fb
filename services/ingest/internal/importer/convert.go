package importer

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/pkg/values"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/record"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/rows"
)

// Reasons of row problems beyond the record package's.
const (
	// ReasonFieldCount: a row has another number of fields than the header.
	ReasonFieldCount = "FIELD_COUNT"
	// ReasonErased: the row's customer was erased; the row is not kept.
	ReasonErased = "ERASED"
)

func missingColumns(cols []string) error {
	v := make(fault.Violations, 0, len(cols))
	for _, c := range cols {
		v = append(v, fault.Violation{Field: "start.mapping", Description: fmt.Sprintf("names column %s, which the file does not have", fault.Quote(c))})
	}
	return v
}

// view looks up a row's cells by column name.
type view struct {
	row    rows.Row
	header map[string]int // delimited files
}

func (v view) get(col string) (rows.Cell, bool) {
	if v.header != nil {
		i, ok := v.header[col]
		if !ok || i >= len(v.row.Cells) {
			return rows.Cell{}, false
		}
		return v.row.Cells[i], true
	}
	names := v.row.Names
	i := sort.SearchStrings(names, col)
	if i < len(names) && names[i] == col {
		return v.row.Cells[i], true
	}
	return rows.Cell{}, false
}

// names returns the row's column names.
func (v view) names(header []string) []string {
	if v.header != nil {
		return header
	}
	return v.row.Names
}

// converted is what one row becomes.
type converted struct {
	records  []record.Record
	problems []*commonv1.Problem
	// dead is the item kept as a dead letter when problems is set (nil when
	// nothing could be parsed or the customer is erased).
	deadUpdate *ingestv1.TraitUpdate
	deadEvent  *ingestv1.Event
	key        eventlog.Key
	keyOK      bool
	erased     bool
}

func (p *Plan) isNull(c rows.Cell) bool {
	return c.Kind == rows.KindNull || p.nulls[strings.TrimSpace(c.Text)]
}

// part collects the problems of one record of a row and maps the builder's
// field paths to column names.
type part struct {
	fields   map[string]string // record field path -> column
	problems []*commonv1.Problem
}

func (pt *part) add(column, reason, desc string) {
	pt.problems = append(pt.problems, &commonv1.Problem{Field: column, Reason: reason, Description: desc})
}

func (pt *part) addBuilt(ps []*commonv1.Problem) {
	for _, pr := range ps {
		col, ok := pt.fields[pr.GetField()]
		if !ok && pr.GetField() != "" {
			col = pr.GetField()
		}
		pt.problems = append(pt.problems, &commonv1.Problem{Field: col, Reason: pr.GetReason(), Description: pr.GetDescription()})
	}
}

// convert turns one row into records, or into problems.
func (r *run) convert(row rows.Row, rowNumber int64, received time.Time) converted {
	p := r.plan
	if row.Err != nil {
		pr := &commonv1.Problem{Reason: row.Err.Reason, Description: row.Err.Msg}
		if c := row.Err.Column; c > 0 {
			pr.Description = fmt.Sprintf("column %d: %s", c, row.Err.Msg)
			if c <= len(r.header) {
				pr.Field = r.header[c-1]
			}
		}
		return converted{problems: []*commonv1.Problem{pr}}
	}
	v := view{row: row, header: r.headerIndex}
	if v.header != nil && len(row.Cells) != len(r.header) {
		return converted{problems: []*commonv1.Problem{{Reason: ReasonFieldCount, Description: fmt.Sprintf("the row has %d fields, the header %d", len(row.Cells), len(r.header))}}}
	}
	if p.json && p.unmapped == ingestv1.UnmappedColumns_UNMAPPED_COLUMNS_REJECT {
		for _, n := range row.Names {
			if !p.named[n] {
				r.fatal = fault.Invalid("start.mapping.unmapped_columns", "the file has a column the mapping does not name, and unmapped columns are refused")
				return converted{}
			}
		}
	}
	base := partBase{fields: map[string]string{}}
	var out converted
	// The customer.
	userID := ""
	if p.userColumn != "" {
		base.fields["user_id"] = p.userColumn
		c, ok := v.get(p.userColumn)
		if !ok || p.isNull(c) {
			base.add(p.userColumn, record.ReasonMissing, "the customer id is missing")
		} else {
			userID = c.Text
		}
	} else {
		userID = p.generatedID(rowNumber)
	}
	out.key, out.keyOK = record.KeyOf(userID, "")
	if out.keyOK && r.erased(userID) {
		return converted{erased: true, problems: []*commonv1.Problem{{Field: p.userColumn, Reason: ReasonErased, Description: "the customer was erased (ForgetUser); their data is not taken in again"}}}
	}
	// The time.
	t := p.fixed
	if p.tsColumn != "" {
		c, ok := v.get(p.tsColumn)
		switch {
		case !ok || p.isNull(c):
			base.add(p.tsColumn, record.ReasonMissing, "the row's time is missing")
		default:
			var ok bool
			if t, ok = p.parseTime(c); !ok {
				base.add(p.tsColumn, record.ReasonInvalidTimestamp, "the row's time does not have the mapping's format")
			}
		}
	}
	// Message ids.
	msgBase := p.messageBase(rowNumber)
	if p.msgIDColumn != "" {
		base.fields["message_id"] = p.msgIDColumn
		c, ok := v.get(p.msgIDColumn)
		if !ok || p.isNull(c) {
			base.add(p.msgIDColumn, record.ReasonMissing, "the row's message id is missing")
		} else {
			msgBase = "row-" + strings.TrimSpace(c.Text)
		}
	}

	// Traits.
	traitPart := part{fields: base.copyFields()}
	traits := map[string]*commonv1.Value{}
	addTyped := func(pt *part, dst map[string]*commonv1.Value, section, column, name string) {
		pt.fields[section+"."+name] = column
		c, ok := v.get(column)
		if !ok {
			return // absent from a JSON line: not set
		}
		if p.isNull(c) {
			dst[name] = &commonv1.Value{}
			return
		}
		col, _ := r.cols.get(column)
		val, ok := parseValue(c, col.Type)
		if !ok {
			pt.add(column, record.ReasonWrongType, "the value is not "+values.TypeName(col.Type)+", the column's type")
			return
		}
		dst[name] = val
	}
	for _, u := range p.traits {
		addTyped(&traitPart, traits, "traits", u.column, u.name)
	}
	if p.unmapped == ingestv1.UnmappedColumns_UNMAPPED_COLUMNS_TRAITS {
		for _, n := range v.names(r.header) {
			if !p.named[n] {
				addTyped(&traitPart, traits, "traits", n, n)
			}
		}
	}
	received = received.UTC()
	stamp := func(rec *record.Record) {
		st := rec.Event
		st.EventTime = timestamppb.New(t)
		st.Source = ingestv1.EventSource_EVENT_SOURCE_IMPORT
		st.ImportId = p.importID
		st.RowNumber = rowNumber
	}
	var parts []*part
	var items []proto.Message
	if len(traits) > 0 || len(p.outcomes) == 0 {
		u := &ingestv1.TraitUpdate{MessageId: msgBase + ":t", UserId: userID, Traits: traits}
		if len(traitPart.problems) == 0 && len(base.problems) == 0 {
			rec, ps := r.im.builder.TraitUpdate(u, received, "")
			traitPart.addBuilt(ps)
			if len(ps) == 0 {
				stamp(&rec)
				out.records = append(out.records, rec)
			}
		}
		parts = append(parts, &traitPart)
		items = append(items, u)
	}
	// Outcome events.
	for k, o := range p.outcomes {
		if o.whenColumn != "" {
			c, ok := v.get(o.whenColumn)
			if !ok || !o.whenValues[strings.TrimSpace(c.Text)] {
				continue
			}
		}
		ep := part{fields: base.copyFields()}
		ev := &ingestv1.Event{MessageId: msgBase + ":e" + strconv.Itoa(k), UserId: userID, Name: o.name, Currency: o.currency}
		text := func(field, column string, dst *string, required bool) {
			if column == "" {
				return
			}
			ep.fields[field] = column
			c, ok := v.get(column)
			if !ok || p.isNull(c) {
				if required {
					ep.add(column, record.ReasonMissing, "the column's value is required")
				}
				return
			}
			*dst = strings.TrimSpace(c.Text)
		}
		text("name", o.nameColumn, &ev.Name, true)
		text("currency", o.currencyColumn, &ev.Currency, false)
		text("item_id", o.itemColumn, &ev.ItemId, false)
		if o.valueColumn != "" {
			ep.fields["value"] = o.valueColumn
			if c, ok := v.get(o.valueColumn); ok && !p.isNull(c) {
				if val, ok := parseValue(c, commonv1.ValueType_VALUE_TYPE_NUMBER); ok {
					ev.Value = proto.Float64(val.GetNumberValue())
				} else {
					ep.add(o.valueColumn, record.ReasonWrongType, "the event's value is not a number")
				}
			}
		}
		props := map[string]*commonv1.Value{}
		for _, u := range p.props {
			addTyped(&ep, props, "properties", u.column, u.name)
		}
		for _, u := range o.props {
			addTyped(&ep, props, "properties", u.column, u.name)
		}
		if o.unmappedProperties {
			for _, n := range v.names(r.header) {
				if !p.named[n] {
					addTyped(&ep, props, "properties", n, n)
				}
			}
		}
		if len(props) > 0 {
			ev.Properties = props
		}
		if len(ep.problems) == 0 && len(base.problems) == 0 {
			rec, ps := r.im.builder.Event(ev, received, "")
			ep.addBuilt(ps)
			if len(ps) == 0 {
				stamp(&rec)
				out.records = append(out.records, rec)
			}
		}
		parts = append(parts, &ep)
		items = append(items, ev)
	}
	// Gather the problems; the dead letter keeps the first faulty record.
	out.problems = append(out.problems, base.problems...)
	dead := -1
	for i, pt := range parts {
		if len(pt.problems) > 0 && dead < 0 {
			dead = i
		}
		out.problems = append(out.problems, pt.problems...)
	}
	if len(out.problems) == 0 {
		return out
	}
	out.records = nil
	if dead < 0 && len(items) > 0 {
		dead = 0
	}
	if dead >= 0 {
		switch it := items[dead].(type) {
		case *ingestv1.TraitUpdate:
			it.OriginalTimestamp = timestampOrNil(t)
			out.deadUpdate = it
		case *ingestv1.Event:
			it.OriginalTimestamp = timestampOrNil(t)
			out.deadEvent = it
		}
	}
	return out
}

func timestampOrNil(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// partBase is the part of a row shared by its records: the customer, the
// time, the message id.
type partBase struct {
	fields   map[string]string
	problems []*commonv1.Problem
}

func (b *partBase) add(column, reason, desc string) {
	b.problems = append(b.problems, &commonv1.Problem{Field: column, Reason: reason, Description: desc})
}

func (b *partBase) copyFields() map[string]string {
	m := make(map[string]string, len(b.fields)+8)
	for k, v := range b.fields {
		m[k] = v
	}
	return m
}
