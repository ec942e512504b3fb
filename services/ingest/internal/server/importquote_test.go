package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

// planMapping maps a CSV of id,plan,note with a header to the plan and note
// traits.
func planMapping() *ingestv1.ImportMapping {
	return &ingestv1.ImportMapping{
		Format:       ingestv1.FileFormat_FILE_FORMAT_CSV,
		Csv:          &ingestv1.CsvOptions{HeaderRow: true},
		Entity:       &ingestv1.ImportMapping_UserIdColumn{UserIdColumn: "id"},
		Time:         &ingestv1.ImportMapping_FixedTime{FixedTime: timestamppb.New(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))},
		TraitColumns: []*ingestv1.ColumnMapping{{Column: "plan"}, {Column: "note"}},
	}
}

// TestImportUnclosedQuoteStopsWithItsLine imports 20 rows whose row 5 opens
// a quote that is never closed: it would swallow the 14 good rows after it.
// The import ends with INVALID_ARGUMENT naming the line and the column of
// the quote instead of reporting a complete import of 6 rows.
func TestImportUnclosedQuoteStopsWithItsLine(t *testing.T) {
	e := newEnv(t)
	var b strings.Builder
	b.WriteString("id,plan,note\n")
	for i := range 20 {
		if i == 5 {
			fmt.Fprintf(&b, "c-%d,pro,\"an open quote\n", i)
			continue
		}
		fmt.Fprintf(&b, "c-%d,pro,fine\n", i)
	}
	last, err := importFile(e.ctx(20*time.Second), e.client, "quote.csv", []byte(b.String()), planMapping(), importOpts{})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("Import: %v (last progress %v), want INVALID_ARGUMENT", err, last)
	}
	var desc string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			desc = br.GetFieldViolations()[0].GetDescription()
		}
	}
	if want := `line 7, column 3 ("note"): a quoted field opens here and is not closed`; !strings.HasPrefix(desc, want) {
		t.Errorf("violation %q, want it to start with %q", desc, want)
	}
	if n := len(e.decodeStored()); n != 5 {
		t.Errorf("%d records stored, want the 5 rows before the quote", n)
	}

	// Text after a closing quote spoils only its row, which names its
	// column; the rows after it are imported.
	data := "id,plan,note\nc-1,pro,fine\nc-2,\"pro\"x,fine\nc-3,pro,fine\n"
	last, err = importFile(e.ctx(20*time.Second), e.client, "after.csv", []byte(data), planMapping(), importOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if last.GetRowsRead() != 3 || last.GetRowsAccepted() != 2 || last.GetRowsRejected() != 1 {
		t.Errorf("counts %d read, %d accepted, %d rejected; want 3, 2, 1", last.GetRowsRead(), last.GetRowsAccepted(), last.GetRowsRejected())
	}
	if r := last.GetRejections(); len(r) != 1 || r[0].GetLineNumber() != 3 || r[0].GetProblems()[0].GetField() != "plan" || !strings.HasPrefix(r[0].GetProblems()[0].GetDescription(), "column 2: ") {
		t.Errorf("rejections %v, want line 3 naming column 2 (plan)", r)
	}
}
