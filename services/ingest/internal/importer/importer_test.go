package importer

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/rows"
)

func texts(kind rows.Kind, vs ...string) []rows.Cell {
	out := make([]rows.Cell, len(vs))
	for i, v := range vs {
		out[i] = rows.Cell{Text: v, Kind: kind}
	}
	return out
}

func TestInference(t *testing.T) {
	tests := []struct {
		name  string
		cells []rows.Cell
		want  commonv1.ValueType
	}{
		{"whole numbers", texts(rows.KindText, "56", "-3", "+7"), commonv1.ValueType_VALUE_TYPE_INT},
		{"decimals", texts(rows.KindText, "1.1", "93.994", "-36.4", "5191"), commonv1.ValueType_VALUE_TYPE_NUMBER},
		{"exponents", texts(rows.KindText, "1e3", "2.5E-2"), commonv1.ValueType_VALUE_TYPE_NUMBER},
		{"zero-padded codes stay text", texts(rows.KindText, "00001", "00002"), commonv1.ValueType_VALUE_TYPE_STRING},
		{"hashes stay text", texts(rows.KindText, "05db9164", "68fd1e64"), commonv1.ValueType_VALUE_TYPE_STRING},
		{"booleans", texts(rows.KindText, "true", "FALSE"), commonv1.ValueType_VALUE_TYPE_BOOL},
		{"yes and no are text", texts(rows.KindText, "yes", "no"), commonv1.ValueType_VALUE_TYPE_STRING},
		{"times", texts(rows.KindText, "2024-01-02T10:00:00Z", "2024-01-02T10:00:00.5+01:00"), commonv1.ValueType_VALUE_TYPE_TIME},
		{"no values", nil, commonv1.ValueType_VALUE_TYPE_STRING},
		{"too big for int64", texts(rows.KindText, "12345678901234567890"), commonv1.ValueType_VALUE_TYPE_NUMBER},
		{"NaN is not a number", texts(rows.KindText, "NaN"), commonv1.ValueType_VALUE_TYPE_STRING},
		{"JSON numbers", texts(rows.KindNumber, "3", "4"), commonv1.ValueType_VALUE_TYPE_INT},
		{"JSON decimals", texts(rows.KindNumber, "3", "4.5"), commonv1.ValueType_VALUE_TYPE_NUMBER},
		{"JSON strings of digits stay text", texts(rows.KindString, "3", "4"), commonv1.ValueType_VALUE_TYPE_STRING},
		{"JSON bools", texts(rows.KindBool, "true"), commonv1.ValueType_VALUE_TYPE_BOOL},
	}
	for _, tt := range tests {
		f := newInferrer()
		for _, c := range tt.cells {
			f.add(c)
		}
		if got := f.result(); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestParseValue(t *testing.T) {
	tests := []struct {
		cell rows.Cell
		typ  commonv1.ValueType
		want *commonv1.Value // nil: does not parse
	}{
		{rows.Cell{Text: " 41 "}, commonv1.ValueType_VALUE_TYPE_INT, &commonv1.Value{Kind: &commonv1.Value_IntValue{IntValue: 41}}},
		{rows.Cell{Text: "4.0", Kind: rows.KindNumber}, commonv1.ValueType_VALUE_TYPE_INT, &commonv1.Value{Kind: &commonv1.Value_IntValue{IntValue: 4}}},
		{rows.Cell{Text: "4.5"}, commonv1.ValueType_VALUE_TYPE_INT, nil},
		{rows.Cell{Text: "11.77"}, commonv1.ValueType_VALUE_TYPE_NUMBER, &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: 11.77}}},
		{rows.Cell{Text: "Inf"}, commonv1.ValueType_VALUE_TYPE_NUMBER, nil},
		{rows.Cell{Text: "True"}, commonv1.ValueType_VALUE_TYPE_BOOL, &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: true}}},
		{rows.Cell{Text: "yes"}, commonv1.ValueType_VALUE_TYPE_BOOL, nil},
		{rows.Cell{Text: " keep spaces "}, commonv1.ValueType_VALUE_TYPE_STRING, &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: " keep spaces "}}},
	}
	for _, tt := range tests {
		got, ok := parseValue(tt.cell, tt.typ)
		if (tt.want == nil) == ok || (ok && !proto.Equal(got, tt.want)) {
			t.Errorf("parseValue(%q, %s) = %v, %v; want %v", tt.cell.Text, tt.typ, got, ok, tt.want)
		}
	}
}

func TestParseTime(t *testing.T) {
	lisbon, err := time.LoadLocation("Europe/Lisbon")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		format ingestv1.TimeFormat
		layout string
		loc    *time.Location
		text   string
		want   string // RFC 3339 in UTC; "" for an error
	}{
		{ingestv1.TimeFormat_TIME_FORMAT_UNSPECIFIED, "", time.UTC, "2024-05-01T10:00:00+02:00", "2024-05-01T08:00:00Z"},
		{ingestv1.TimeFormat_TIME_FORMAT_RFC3339, "", lisbon, "2024-05-01T10:00:00", "2024-05-01T09:00:00Z"},
		{ingestv1.TimeFormat_TIME_FORMAT_DATE, "", lisbon, "2024-01-15", "2024-01-15T00:00:00Z"},
		{ingestv1.TimeFormat_TIME_FORMAT_UNIX_SECONDS, "", time.UTC, "1704067200.5", "2024-01-01T00:00:00.5Z"},
		{ingestv1.TimeFormat_TIME_FORMAT_UNIX_MILLIS, "", time.UTC, "1704067200123", "2024-01-01T00:00:00.123Z"},
		{ingestv1.TimeFormat_TIME_FORMAT_LAYOUT, "20060102", time.UTC, "19970101", "1997-01-01T00:00:00Z"},
		{ingestv1.TimeFormat_TIME_FORMAT_LAYOUT, "20060102", time.UTC, "1997-01-01", ""},
		{ingestv1.TimeFormat_TIME_FORMAT_UNIX_SECONDS, "", time.UTC, "1e300", ""},
	}
	for _, tt := range tests {
		p := &Plan{tsFormat: tt.format, tsLayout: tt.layout, tsLoc: tt.loc}
		got, ok := p.parseTime(rows.Cell{Text: tt.text})
		gotS := ""
		if ok {
			gotS = got.UTC().Format(time.RFC3339Nano)
		}
		if gotS != tt.want {
			t.Errorf("%s %q: %q, want %q", tt.format, tt.text, gotS, tt.want)
		}
	}
}

func TestCompile(t *testing.T) {
	valid := func() *ingestv1.ImportStart {
		return &ingestv1.ImportStart{
			Sha256:    strings.Repeat("0a", 32),
			SizeBytes: 10,
			Mapping: &ingestv1.ImportMapping{
				Format:       ingestv1.FileFormat_FILE_FORMAT_CSV,
				Csv:          &ingestv1.CsvOptions{HeaderRow: true},
				Entity:       &ingestv1.ImportMapping_UserIdColumn{UserIdColumn: "id"},
				Time:         &ingestv1.ImportMapping_FixedTime{FixedTime: timestamppb.Now()},
				TraitColumns: []*ingestv1.ColumnMapping{{Column: "age"}},
			},
		}
	}
	tests := []struct {
		name   string
		change func(*ingestv1.ImportStart)
		want   []string
	}{
		{"valid", func(*ingestv1.ImportStart) {}, nil},
		{"bad digest", func(s *ingestv1.ImportStart) { s.Sha256 = "ABC" }, []string{"start.sha256"}},
		{"no format", func(s *ingestv1.ImportStart) { s.Mapping.Format = 0 }, []string{"start.mapping.format"}},
		{"no names", func(s *ingestv1.ImportStart) { s.Mapping.Csv.HeaderRow = false }, []string{"start.mapping.csv.column_names"}},
		{"quote is delimiter", func(s *ingestv1.ImportStart) { s.Mapping.Csv.Quote = "," }, []string{"start.mapping.csv.quote"}},
		{"no entity", func(s *ingestv1.ImportStart) { s.Mapping.Entity = nil }, []string{"start.mapping.entity"}},
		{"layout missing", func(s *ingestv1.ImportStart) {
			s.Mapping.Time = &ingestv1.ImportMapping_TimestampColumn{TimestampColumn: &ingestv1.TimestampColumn{Column: "d", Format: ingestv1.TimeFormat_TIME_FORMAT_LAYOUT}}
		}, []string{"start.mapping.timestamp_column.layout"}},
		{"bad zone", func(s *ingestv1.ImportStart) {
			s.Mapping.Time = &ingestv1.ImportMapping_TimestampColumn{TimestampColumn: &ingestv1.TimestampColumn{Column: "d", TimeZone: "Mars/Olympus"}}
		}, []string{"start.mapping.timestamp_column.time_zone"}},
		{"conflicting types", func(s *ingestv1.ImportStart) {
			s.Mapping.TraitColumns = []*ingestv1.ColumnMapping{{Column: "a", Type: commonv1.ValueType_VALUE_TYPE_INT}, {Column: "a", Name: "b", Type: commonv1.ValueType_VALUE_TYPE_STRING}}
		}, []string{"start.mapping.trait_columns[1].type"}},
		{"properties without events", func(s *ingestv1.ImportStart) {
			s.Mapping.PropertyColumns = []*ingestv1.ColumnMapping{{Column: "x"}}
		}, []string{"start.mapping.property_columns"}},
		{"nothing to store", func(s *ingestv1.ImportStart) { s.Mapping.TraitColumns = nil }, []string{"start.mapping"}},
		{"event without name", func(s *ingestv1.ImportStart) {
			s.Mapping.OutcomeEvents = []*ingestv1.OutcomeEventMapping{{WhenColumn: "y"}}
		}, []string{"start.mapping.outcome_events[0].event_name", "start.mapping.outcome_events[0].when_values"}},
	}
	for _, tt := range tests {
		s := valid()
		tt.change(s)
		_, err := Compile(s)
		var got []string
		if v, ok := err.(fault.Violations); ok {
			for _, x := range v {
				got = append(got, x.Field)
			}
		} else if err != nil {
			t.Fatalf("%s: %v is not Violations", tt.name, err)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: violations %v, want %v", tt.name, got, tt.want)
		}
	}
}
