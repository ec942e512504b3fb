package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportExitStatus runs bullseye import against a real mesh: a file
// with a rejected row exits 1 (listing the row) unless --allow-rejections,
// and a file whose quote is never closed exits 1 naming the line and the
// column instead of reporting a complete import of the rows before it.
func TestImportExitStatus(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	mapping := write("mapping.yaml", `format: FILE_FORMAT_CSV
csv: {headerRow: true}
userIdColumn: id
fixedTime: "2024-01-01T00:00:00Z"
traitColumns:
  - {column: plan}
  - {column: age, type: VALUE_TYPE_INT}
`)
	rejecting := write("rejecting.csv", "id,plan,age\nc-1,pro,30\nc-2,pro,old\nc-3,free,41\n")
	var b strings.Builder
	b.WriteString("id,plan,age\n")
	for i := range 20 {
		if i == 5 {
			fmt.Fprintf(&b, "c-%d,\"pro,%d\n", i, i)
			continue
		}
		fmt.Fprintf(&b, "c-%d,pro,%d\n", i, i)
	}
	unclosed := write("unclosed.csv", b.String())

	m := startMesh(t)
	code, out, errOut := bullseye(t, m, "import", "--mapping", mapping, rejecting)
	if code != 1 || !strings.Contains(out, "3 rows read, 2 accepted, 1 rejected") || !strings.Contains(out, "row 1 (line 3): age:") {
		t.Errorf("import with a rejected row: exit %d\n%s%s\nwant exit 1 and the row listed", code, out, errOut)
	}
	if !strings.Contains(errOut, "1 of 3 rows were rejected") || !strings.Contains(errOut, "--allow-rejections") {
		t.Errorf("stderr %q, want it to count the rejected rows and name --allow-rejections", errOut)
	}
	code, out, errOut = bullseye(t, m, "import", "--allow-rejections", "--mapping", mapping, rejecting)
	if code != 0 || !strings.Contains(out, "2 accepted, 1 rejected") {
		t.Errorf("import --allow-rejections: exit %d\n%s%s\nwant exit 0", code, out, errOut)
	}

	code, out, errOut = bullseye(t, m, "import", "--allow-rejections", "--mapping", mapping, unclosed)
	if code != 1 || !strings.Contains(errOut, `line 7, column 2 ("plan"): a quoted field opens here and is not closed`) {
		t.Errorf("import of an unclosed quote: exit %d\n%s%s\nwant exit 1 naming line 7, column 2", code, out, errOut)
	}
	if !strings.Contains(errOut, "the 5 rows before it were read (5 accepted, 0 rejected, 0 duplicate)") {
		t.Errorf("stderr %q, want it to say what became of the rows before the quote", errOut)
	}
}
