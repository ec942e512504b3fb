package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/importclient"
)

// importOpts tunes importFile.
type importOpts = importclient.Options

// importFile runs one Import stream for data.
func importFile(ctx context.Context, client ingestv1.IngestServiceClient, name string, data []byte, m *ingestv1.ImportMapping, o importOpts) (*ingestv1.ImportResponse, error) {
	return importclient.Import(ctx, client, name, data, m, o)
}

func readData(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bankMapping() *ingestv1.ImportMapping {
	num := commonv1.ValueType_VALUE_TYPE_NUMBER
	return &ingestv1.ImportMapping{
		Format: ingestv1.FileFormat_FILE_FORMAT_CSV,
		Csv:    &ingestv1.CsvOptions{Delimiter: ";", HeaderRow: true},
		Entity: &ingestv1.ImportMapping_GeneratedIds{GeneratedIds: &ingestv1.GeneratedIds{Prefix: "bank-"}},
		Time:   &ingestv1.ImportMapping_FixedTime{FixedTime: timestamppb.New(time.Date(2010, 11, 30, 0, 0, 0, 0, time.UTC))},
		// The indicators change value only after the first 1,000 rows: give
		// their type rather than let inference guess "whole number".
		TraitColumns: []*ingestv1.ColumnMapping{
			{Column: "y"},
			{Column: "emp.var.rate", Type: num}, {Column: "cons.price.idx", Type: num},
			{Column: "cons.conf.idx", Type: num}, {Column: "euribor3m", Type: num}, {Column: "nr.employed", Type: num},
		},
		UnmappedColumns: ingestv1.UnmappedColumns_UNMAPPED_COLUMNS_TRAITS,
	}
}

func cdnowMapping() *ingestv1.ImportMapping {
	return &ingestv1.ImportMapping{
		Format: ingestv1.FileFormat_FILE_FORMAT_CSV,
		Csv:    &ingestv1.CsvOptions{WhitespaceSeparated: true, HeaderRow: true},
		Entity: &ingestv1.ImportMapping_UserIdColumn{UserIdColumn: "customer_id"},
		Time: &ingestv1.ImportMapping_TimestampColumn{TimestampColumn: &ingestv1.TimestampColumn{
			Column: "date", Format: ingestv1.TimeFormat_TIME_FORMAT_LAYOUT, Layout: "20060102"}},
		OutcomeEvents: []*ingestv1.OutcomeEventMapping{{
			EventName:   &ingestv1.OutcomeEventMapping_Name{Name: "Order Completed"},
			ValueColumn: "dollar_value",
			Currency:    "USD",
		}},
		PropertyColumns: []*ingestv1.ColumnMapping{{Column: "number_of_cds", Name: "quantity"}},
	}
}

func criteoMapping() *ingestv1.ImportMapping {
	return &ingestv1.ImportMapping{
		Format:          ingestv1.FileFormat_FILE_FORMAT_CSV,
		Csv:             &ingestv1.CsvOptions{HeaderRow: true},
		Entity:          &ingestv1.ImportMapping_GeneratedIds{GeneratedIds: &ingestv1.GeneratedIds{Prefix: "criteo-"}},
		Time:            &ingestv1.ImportMapping_FixedTime{FixedTime: timestamppb.New(time.Date(2014, 9, 1, 0, 0, 0, 0, time.UTC))},
		UnmappedColumns: ingestv1.UnmappedColumns_UNMAPPED_COLUMNS_TRAITS,
	}
}

// decodeStored decodes the records of the events stream by message id.
func (e *env) decodeStored() map[string]*ingestv1.StoredEvent {
	e.t.Helper()
	out := map[string]*ingestv1.StoredEvent{}
	for _, m := range e.messages(eventlog.EventsStream) {
		ev := new(ingestv1.StoredEvent)
		if err := proto.Unmarshal(m.data, ev); err != nil {
			e.t.Fatal(err)
		}
		if _, dup := out[ev.GetMessageId()]; dup {
			e.t.Errorf("record %s stored twice", ev.GetMessageId())
		}
		out[ev.GetMessageId()] = ev
	}
	return out
}

func TestImportDataSets(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		file    string
		mapping *ingestv1.ImportMapping
		rows    int64
		check   func(t *testing.T, importID string, recs map[string]*ingestv1.StoredEvent)
	}{
		{"bank-additional-full.csv", bankMapping(), 41188, func(t *testing.T, id string, recs map[string]*ingestv1.StoredEvent) {
			r := recs[id+"-0:t"]
			tr := r.GetTraits()
			if tr["age"].GetIntValue() != 56 || tr["job"].GetStringValue() != "housemaid" || tr["y"].GetStringValue() != "no" ||
				tr["emp.var.rate"].GetNumberValue() != 1.1 || tr["nr.employed"].GetNumberValue() != 5191 || len(tr) != 21 {
				t.Errorf("row 0 traits %v", tr)
			}
			if !strings.HasPrefix(r.GetUserId(), "bank-") || r.GetRowNumber() != 0 || r.GetImportId() != id || r.GetSource() != ingestv1.EventSource_EVENT_SOURCE_IMPORT {
				t.Errorf("row 0 record %v", r)
			}
			last := recs[id+"-41187:t"]
			if last.GetTraits()["y"].GetStringValue() != "no" || last.GetTraits()["nr.employed"].GetNumberValue() != 4963.6 || last.GetRowNumber() != 41187 {
				t.Errorf("last row traits %v", last.GetTraits())
			}
			yes := 0
			for _, rec := range recs {
				if rec.GetImportId() == id && rec.GetTraits()["y"].GetStringValue() == "yes" {
					yes++
				}
			}
			if yes != 4640 {
				t.Errorf("%d rows with y = yes, want 4640", yes)
			}
		}},
		{"CDNOW_master.txt", cdnowMapping(), 69659, func(t *testing.T, id string, recs map[string]*ingestv1.StoredEvent) {
			r := recs[id+"-0:e0"]
			if r.GetUserId() != "00001" || r.GetName() != "Order Completed" || r.GetValue() != 11.77 || r.GetCurrency() != "USD" ||
				r.GetProperties()["quantity"].GetIntValue() != 1 || !r.GetEventTime().AsTime().Equal(time.Date(1997, 1, 1, 0, 0, 0, 0, time.UTC)) {
				t.Errorf("row 0 record %v", r)
			}
			if r := recs[id+"-69658:e0"]; r.GetUserId() != "23570" || r.GetValue() != 42.96 {
				t.Errorf("last row record %v", r)
			}
		}},
		{"criteo_sample.txt", criteoMapping(), 200, func(t *testing.T, id string, recs map[string]*ingestv1.StoredEvent) {
			tr := recs[id+"-0:t"].GetTraits()
			if tr["label"].GetIntValue() != 0 || tr["I1"].GetKind() != nil || tr["I2"].GetIntValue() != 3 || tr["I3"].GetNumberValue() != 260 ||
				tr["C1"].GetStringValue() != "05db9164" || tr["C20"].GetKind() != nil || len(tr) != 40 {
				t.Errorf("row 0 traits %v", tr)
			}
			if _, isNull := tr["I1"]; !isNull {
				t.Error("empty I1 is not stored as null")
			}
		}},
	}
	total := uint64(0)
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data := readData(t, tt.file)
			start := time.Now()
			last, err := importFile(e.ctx(60*time.Second), e.client, tt.file, data, tt.mapping, importOpts{})
			if err != nil {
				t.Fatalf("import: %v (last progress %v)", err, last)
			}
			t.Logf("%s: %d rows in %s", tt.file, last.GetRowsRead(), time.Since(start).Round(time.Millisecond))
			if !last.GetDone() || last.GetRowsRead() != tt.rows || last.GetRowsAccepted() != tt.rows || last.GetRowsRejected() != 0 ||
				last.GetRecordsStored() != tt.rows || last.GetResumeOffset() != int64(len(data)) || last.GetBytesRead() != int64(len(data)) {
				t.Fatalf("last progress %v, want %d rows accepted and stored", last, tt.rows)
			}
			total += uint64(tt.rows)
			if n := e.count(eventlog.EventsStream); n != total {
				t.Fatalf("events stream holds %d records, want %d", n, total)
			}
			tt.check(t, last.GetImportId(), e.decodeStored())
			// Importing the same file again adds nothing.
			again, err := importFile(e.ctx(20*time.Second), e.client, tt.file, data, tt.mapping, importOpts{})
			if err != nil {
				t.Fatal(err)
			}
			if !again.GetAlreadyImported() || !again.GetDone() || again.GetRowsAccepted() != tt.rows || again.GetResumeOffset() != int64(len(data)) {
				t.Errorf("second import: %v", again)
			}
			if n := e.count(eventlog.EventsStream); n != total {
				t.Errorf("after the second import the stream holds %d records, want %d", n, total)
			}
		})
	}
}

// checkBankStoredOnce checks that every bank row is stored exactly once.
func checkBankStoredOnce(t *testing.T, e *env) {
	t.Helper()
	seen := map[string]int{}
	for _, m := range e.messages(eventlog.EventsStream) {
		seen[m.header.Get(eventlog.HeaderMsgID)]++
	}
	if len(seen) != 41188 {
		t.Errorf("%d distinct rows stored, want 41188", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("record %s stored %d times", id, n)
		}
	}
}

// TestImportCancelledAndResumed cancels an import from the client side and
// imports again, sending the whole file from the start (a client that
// cannot seek).
func TestImportCancelledAndResumed(t *testing.T) {
	data := readData(t, "bank-additional-full.csv")
	e := newEnv(t)
	stop := errors.New("stop")
	_, err := importFile(e.ctx(60*time.Second), e.client, "bank", data, bankMapping(), importOpts{
		ChunkBytes: 16 << 10,
		OnProgress: func(p *ingestv1.ImportResponse) error { return map[bool]error{true: stop}[p.GetRowsRead() >= 20000] },
	})
	if !errors.Is(err, stop) {
		t.Fatalf("first import: %v", err)
	}
	// The server may not have seen the cancellation yet: ABORTED asks to
	// retry.
	var last *ingestv1.ImportResponse
	for try := 0; ; try++ {
		last, err = importFile(e.ctx(60*time.Second), e.client, "bank", data, bankMapping(), importOpts{From: func(int64) int64 { return 0 }})
		if status.Code(err) != codes.Aborted || try == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !last.GetDone() || last.GetRecordsStored() != 41188 {
		t.Errorf("second import ended with %v", last)
	}
	checkBankStoredOnce(t, e)
}

func TestImportRowsAndTypes(t *testing.T) {
	e := newEnv(t)
	csv := "id;when;amount;plan;email;bought\r\n" +
		"c-1;2024-01-02T10:00:00Z;10.5;pro;a@example.com;yes\r\n" +
		"c-2;2024-01-03T10:00:00Z;7;basic;;no\r\n" +
		"ana@example.com;2024-01-03T10:00:00Z;1;basic;b@example.com;no\r\n" +
		"c-3;yesterday;1;basic;;no\r\n" +
		"c-4;2024-01-04T10:00:00Z;lots;basic;;yes\r\n" +
		"c-5;2024-01-05T10:00:00Z;\"3\"x;basic;;no\r\n" +
		"c-6;2024-01-06T10:00:00Z;3\r\n" +
		"c-7;2024-01-07T10:00:00Z;4;\"pro; annual\";;yes\r\n"
	m := &ingestv1.ImportMapping{
		Format: ingestv1.FileFormat_FILE_FORMAT_CSV,
		Csv:    &ingestv1.CsvOptions{Delimiter: ";", HeaderRow: true, LineEnding: ingestv1.LineEnding_LINE_ENDING_CRLF},
		Entity: &ingestv1.ImportMapping_UserIdColumn{UserIdColumn: "id"},
		Time:   &ingestv1.ImportMapping_TimestampColumn{TimestampColumn: &ingestv1.TimestampColumn{Column: "when"}},
		TraitColumns: []*ingestv1.ColumnMapping{
			{Column: "plan"}, {Column: "email"},
			{Column: "amount", Name: "last_amount"},
		},
		OutcomeEvents: []*ingestv1.OutcomeEventMapping{{
			EventName:   &ingestv1.OutcomeEventMapping_Name{Name: "Campaign Responded"},
			ValueColumn: "amount", Currency: "EUR",
			WhenColumn: "bought", WhenValues: []string{"yes"},
		}},
		InferenceRows: 2,
	}
	last, err := importFile(e.ctx(20*time.Second), e.client, "small.csv", []byte(csv), m, importOpts{ChunkBytes: 7})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range last.GetRejections() {
		got = append(got, fmt.Sprintf("%d@%d %v", r.GetRowNumber(), r.GetLineNumber(), problemKeys(r.GetProblems())))
		if r.GetDeadLetterId() == "" {
			t.Errorf("row %d has no dead letter", r.GetRowNumber())
		}
	}
	want := []string{
		"2@4 [id:LOOKS_LIKE_EMAIL]",
		"3@5 [when:INVALID_TIMESTAMP]",
		"4@6 [amount:WRONG_TYPE amount:WRONG_TYPE]",
		"5@7 [amount:BAD_QUOTING]",
		"6@8 [:FIELD_COUNT]",
	}
	if !slices.Equal(got, want) {
		t.Errorf("rejections\n%q\nwant\n%q", got, want)
	}
	if last.GetRowsRead() != 8 || last.GetRowsAccepted() != 3 || last.GetRowsRejected() != 5 || last.GetRecordsStored() != 5 {
		t.Errorf("counts: %v", last)
	}
	var cols []string
	for _, c := range last.GetColumns() {
		cols = append(cols, fmt.Sprintf("%s %s %v %s", c.GetColumn(), c.GetType(), c.GetInferred(), c.GetRole()))
	}
	wantCols := []string{
		"id VALUE_TYPE_STRING false user_id",
		"when VALUE_TYPE_STRING false timestamp",
		"amount VALUE_TYPE_NUMBER true trait:last_amount,value",
		"plan VALUE_TYPE_STRING true trait:plan",
		"email VALUE_TYPE_STRING true trait:email",
		"bought VALUE_TYPE_STRING false when",
	}
	if !slices.Equal(cols, wantCols) {
		t.Errorf("columns\n%q\nwant\n%q", cols, wantCols)
	}
	recs := e.decodeStored()
	id := last.GetImportId()
	if r := recs[id+"-0:t"]; r.GetTraits()["email"].GetStringValue() != e.p.Pseudonymise("a@example.com") || r.GetTraits()["last_amount"].GetNumberValue() != 10.5 {
		t.Errorf("row 0 traits %v", r.GetTraits())
	}
	if r := recs[id+"-0:e0"]; r.GetValue() != 10.5 || r.GetCurrency() != "EUR" || r.GetName() != "Campaign Responded" {
		t.Errorf("row 0 event %v", r)
	}
	if _, ok := recs[id+"-1:e0"]; ok {
		t.Error("row 1 made an event though bought is no")
	}
	if r := recs[id+"-7:t"]; r.GetTraits()["plan"].GetStringValue() != "pro; annual" {
		t.Errorf("row 7 traits %v", r.GetTraits())
	}
	if len(recs) != 5 {
		t.Errorf("%d records stored, want 5", len(recs))
	}
	// The dead letter of the email-shaped id keeps only its pseudonym.
	dls, err := e.client.ListDeadLetters(e.ctx(10*time.Second), &ingestv1.ListDeadLettersRequest{ImportId: id, Reasons: []string{"LOOKS_LIKE_EMAIL"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(dls.GetDeadLetters()) != 1 {
		t.Fatalf("dead letters %v", dls.GetDeadLetters())
	}
	dl := dls.GetDeadLetters()[0]
	if u := dl.GetTraitUpdate(); u.GetUserId() != e.p.Pseudonymise("ana@example.com") || u.GetTraits()["email"].GetStringValue() != e.p.Pseudonymise("b@example.com") || dl.GetRowNumber() != 2 {
		t.Errorf("dead letter %v", dl)
	}
}

func TestImportJSONLines(t *testing.T) {
	e := newEnv(t)
	jsonl := `{"order":{"id":"o-1","total":12.5,"customer":"c-1"},"ts":1704067200,"gift":true}` + "\n" +
		`{"order":{"id":"o-2","total":3,"customer":"c-2"},"ts":1704153600,"gift":false,"note":"first"}` + "\n" +
		"\n" +
		`{"order":{"id":"o-3","total":"n/a","customer":"c-3"},"ts":1704240000,"gift":null}` + "\n" +
		`{"order":{"id":"o-1","total":12.5,"customer":"c-1"},"ts":1704067200,"gift":true}` + "\n"
	m := &ingestv1.ImportMapping{
		Format: ingestv1.FileFormat_FILE_FORMAT_JSON_LINES,
		Entity: &ingestv1.ImportMapping_UserIdColumn{UserIdColumn: "order.customer"},
		Time: &ingestv1.ImportMapping_TimestampColumn{TimestampColumn: &ingestv1.TimestampColumn{
			Column: "ts", Format: ingestv1.TimeFormat_TIME_FORMAT_UNIX_SECONDS}},
		OutcomeEvents: []*ingestv1.OutcomeEventMapping{{
			EventName:   &ingestv1.OutcomeEventMapping_Name{Name: "Order Completed"},
			ValueColumn: "order.total", Currency: "EUR", ItemIdColumn: "order.id",
		}},
		MessageIdColumn: "order.id",
		UnmappedColumns: ingestv1.UnmappedColumns_UNMAPPED_COLUMNS_PROPERTIES,
	}
	last, err := importFile(e.ctx(20*time.Second), e.client, "orders.jsonl", []byte(jsonl), m, importOpts{ChunkBytes: 5})
	if err != nil {
		t.Fatal(err)
	}
	if last.GetRowsRead() != 4 || last.GetRowsAccepted() != 2 || last.GetRowsDuplicate() != 1 || last.GetRowsRejected() != 1 || last.GetRecordsStored() != 2 {
		t.Errorf("counts %v", last)
	}
	if r := last.GetRejections(); len(r) != 1 || !slices.Equal(problemKeys(r[0].GetProblems()), []string{"order.total:WRONG_TYPE"}) || r[0].GetLineNumber() != 4 {
		t.Errorf("rejections %v", r)
	}
	recs := e.decodeStored()
	o1 := recs["row-o-1:e0"]
	if o1.GetUserId() != "c-1" || o1.GetValue() != 12.5 || o1.GetItemId() != "o-1" || !o1.GetProperties()["gift"].GetBoolValue() ||
		!o1.GetEventTime().AsTime().Equal(time.Unix(1704067200, 0)) {
		t.Errorf("o-1 stored as %v", o1)
	}
	if o2 := recs["row-o-2:e0"]; o2.GetProperties()["note"].GetStringValue() != "first" {
		t.Errorf("o-2 stored as %v", o2)
	}
}

func TestImportValidateOnlyStoresNothing(t *testing.T) {
	e := newEnv(t)
	data := []byte("customer_id date number_of_cds dollar_value\n00001 19970101 1 11.77\n00002 1997-01-12 1 12.00\n")
	last, err := importFile(e.ctx(20*time.Second), e.client, "cd.txt", data, cdnowMapping(), importOpts{ValidateOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if !last.GetDone() || last.GetRowsAccepted() != 1 || last.GetRowsRejected() != 1 || last.GetRecordsStored() != 0 {
		t.Errorf("validate only: %v", last)
	}
	if e.count(eventlog.EventsStream) != 0 || e.count(eventlog.DeadLettersStream) != 0 {
		t.Error("validate only stored something")
	}
	// It is not recorded: a real import follows.
	last, err = importFile(e.ctx(20*time.Second), e.client, "cd.txt", data, cdnowMapping(), importOpts{})
	if err != nil || last.GetAlreadyImported() || last.GetRecordsStored() != 1 {
		t.Errorf("import after validation: %v, %v", last, err)
	}
}

func TestImportErrors(t *testing.T) {
	e := newEnv(t)
	data := []byte("customer_id date number_of_cds dollar_value\n00001 19970101 1 11.77\n")
	violations := func(err error) []string {
		var out []string
		for _, d := range status.Convert(err).Details() {
			if br, ok := d.(*errdetails.BadRequest); ok {
				for _, v := range br.GetFieldViolations() {
					out = append(out, v.GetField())
				}
			}
		}
		return out
	}
	bad := cdnowMapping()
	bad.Csv.Delimiter = ";;"
	bad.Csv.WhitespaceSeparated = false
	bad.Time = nil
	bad.OutcomeEvents[0].Currency = "dollars"
	_, err := importFile(e.ctx(10*time.Second), e.client, "x", data, bad, importOpts{})
	if status.Code(err) != codes.InvalidArgument || !slices.Equal(violations(err), []string{"start.mapping.csv.delimiter", "start.mapping.time", "start.mapping.outcome_events[0].currency"}) {
		t.Errorf("bad mapping: %v %v", err, violations(err))
	}
	missing := cdnowMapping()
	missing.OutcomeEvents[0].ValueColumn = "price"
	_, err = importFile(e.ctx(10*time.Second), e.client, "x", data, missing, importOpts{})
	if status.Code(err) != codes.InvalidArgument || !slices.Equal(violations(err), []string{"start.mapping"}) {
		t.Errorf("missing column: %v %v", err, violations(err))
	}
	_, err = importFile(e.ctx(10*time.Second), e.client, "x", data, cdnowMapping(), importOpts{Digest: strings.Repeat("ab", 32)})
	if status.Code(err) != codes.InvalidArgument || !slices.Equal(violations(err), []string{"start.sha256"}) {
		t.Errorf("wrong Digest: %v %v", err, violations(err))
	}
	_, err = importFile(e.ctx(10*time.Second), e.client, "y", append(data, '\n'), cdnowMapping(), importOpts{From: func(int64) int64 { return 5 }})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("a gap: %v, want FAILED_PRECONDITION", err)
	}

	// One file is imported by one stream at a time.
	ctx, cancel := context.WithCancel(e.ctx(10 * time.Second))
	defer cancel()
	sum := sha256.Sum256(data)
	start := &ingestv1.ImportRequest{Kind: &ingestv1.ImportRequest_Start{Start: &ingestv1.ImportStart{SizeBytes: int64(len(data)), Sha256: hex.EncodeToString(sum[:]), Mapping: cdnowMapping()}}}
	first, err := e.client.Import(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Send(start); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Recv(); err != nil {
		t.Fatal(err)
	}
	second, err := e.client.Import(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Send(start); err != nil {
		t.Fatal(err)
	}
	if _, err := second.Recv(); status.Code(err) != codes.Aborted {
		t.Errorf("a concurrent import of the same file: %v, want ABORTED", err)
	}
}
