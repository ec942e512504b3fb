package server_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

// TestImportKeyedByDigestAndMapping imports the same bytes twice under two
// event names (as MovieLens's folds are, one name per file): both sets of
// events are stored, under two import ids. The same bytes with the same
// mapping again are already imported, and add nothing.
func TestImportKeyedByDigestAndMapping(t *testing.T) {
	e := newEnv(t)
	data := []byte("user,item,rating\nu-1,i-1,4\nu-2,i-1,5\nu-2,i-7,3\n")
	mapping := func(name string) *ingestv1.ImportMapping {
		return &ingestv1.ImportMapping{
			Format: ingestv1.FileFormat_FILE_FORMAT_CSV,
			Csv:    &ingestv1.CsvOptions{HeaderRow: true},
			Entity: &ingestv1.ImportMapping_UserIdColumn{UserIdColumn: "user"},
			Time:   &ingestv1.ImportMapping_FixedTime{FixedTime: timestamppb.New(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))},
			OutcomeEvents: []*ingestv1.OutcomeEventMapping{{
				EventName:       &ingestv1.OutcomeEventMapping_Name{Name: name},
				ItemIdColumn:    "item",
				PropertyColumns: []*ingestv1.ColumnMapping{{Column: "rating"}},
			}},
		}
	}
	ids := map[string]string{}
	for _, name := range []string{"u1.base", "u1.test"} {
		last, err := importFile(e.ctx(20*time.Second), e.client, "ratings.csv", data, mapping(name), importOpts{})
		if err != nil {
			t.Fatalf("import as %s: %v", name, err)
		}
		if last.GetAlreadyImported() || last.GetRowsAccepted() != 3 || last.GetRecordsStored() != 3 {
			t.Errorf("import as %s: already %v, %d accepted, %d records; want a new import of 3 rows and 3 records", name, last.GetAlreadyImported(), last.GetRowsAccepted(), last.GetRecordsStored())
		}
		ids[name] = last.GetImportId()
	}
	if ids["u1.base"] == ids["u1.test"] {
		t.Errorf("both imports have the id %s", ids["u1.base"])
	}
	byName := map[string]int{}
	for _, ev := range e.decodeStored() {
		if ev.GetImportId() != ids[ev.GetName()] {
			t.Errorf("event %s named %s carries import id %s, want %s", ev.GetMessageId(), ev.GetName(), ev.GetImportId(), ids[ev.GetName()])
		}
		byName[ev.GetName()]++
	}
	if byName["u1.base"] != 3 || byName["u1.test"] != 3 {
		t.Errorf("stored events by name %v, want 3 of each", byName)
	}

	last, err := importFile(e.ctx(20*time.Second), e.client, "ratings.csv", data, mapping("u1.test"), importOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if !last.GetAlreadyImported() || last.GetImportId() != ids["u1.test"] || last.GetRowsAccepted() != 3 {
		t.Errorf("the same file and mapping again: already %v, id %s, %d accepted; want already imported as %s with its 3 rows", last.GetAlreadyImported(), last.GetImportId(), last.GetRowsAccepted(), ids["u1.test"])
	}
	if n := len(e.decodeStored()); n != 6 {
		t.Errorf("%d records stored, want 6", n)
	}
}
