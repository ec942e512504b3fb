package ml

import (
	"errors"
	"fmt"
)

// Kind is the type of a table column.
type Kind int

const (
	// Numeric columns hold float64 values, with NaN for a missing value.
	Numeric Kind = iota + 1
	// Categorical columns hold strings, with "" for a missing value.
	Categorical
)

// String returns "numeric" or "categorical".
func (k Kind) String() string {
	switch k {
	case Numeric:
		return "numeric"
	case Categorical:
		return "categorical"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Column is one named, typed column of a [Table]. Exactly one of Numeric and Categorical
// is used, according to Kind.
type Column struct {
	Name        string
	Kind        Kind
	Numeric     []float64
	Categorical []string
}

// Len returns the number of values in the column.
func (c *Column) Len() int {
	if c.Kind == Categorical {
		return len(c.Categorical)
	}
	return len(c.Numeric)
}

// Table is a column-typed table: the input of preprocessing. All columns have the same
// number of rows.
type Table struct {
	Columns []Column
}

// NumericColumn returns a numeric column.
func NumericColumn(name string, values []float64) Column {
	return Column{Name: name, Kind: Numeric, Numeric: values}
}

// CategoricalColumn returns a categorical column.
func CategoricalColumn(name string, values []string) Column {
	return Column{Name: name, Kind: Categorical, Categorical: values}
}

// Rows returns the number of rows, or 0 for a table without columns.
func (t *Table) Rows() int {
	if len(t.Columns) == 0 {
		return 0
	}
	return t.Columns[0].Len()
}

// Column returns the column with the given name.
func (t *Table) Column(name string) (*Column, bool) {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i], true
		}
	}
	return nil, false
}

// Validate checks that column names are unique and non-empty, kinds are known and all
// columns have the same length.
func (t *Table) Validate() error {
	seen := make(map[string]bool, len(t.Columns))
	var errs []error
	for i := range t.Columns {
		c := &t.Columns[i]
		switch {
		case c.Name == "":
			errs = append(errs, fmt.Errorf("column %d has no name", i))
		case seen[c.Name]:
			errs = append(errs, fmt.Errorf("column %q appears twice", c.Name))
		}
		seen[c.Name] = true
		if c.Kind != Numeric && c.Kind != Categorical {
			errs = append(errs, fmt.Errorf("column %q has unknown kind %v", c.Name, c.Kind))
		}
		if c.Len() != t.Columns[0].Len() {
			errs = append(errs, fmt.Errorf("column %q has %d rows, column %q has %d",
				c.Name, c.Len(), t.Columns[0].Name, t.Columns[0].Len()))
		}
	}
	return errors.Join(errs...)
}

// Subset returns a new table holding the given rows of t, in the given order.
func (t *Table) Subset(rows []int) *Table {
	out := &Table{Columns: make([]Column, len(t.Columns))}
	for i := range t.Columns {
		c := &t.Columns[i]
		o := Column{Name: c.Name, Kind: c.Kind}
		if c.Kind == Categorical {
			o.Categorical = make([]string, len(rows))
			for k, r := range rows {
				o.Categorical[k] = c.Categorical[r]
			}
		} else {
			o.Numeric = make([]float64, len(rows))
			for k, r := range rows {
				o.Numeric[k] = c.Numeric[r]
			}
		}
		out.Columns[i] = o
	}
	return out
}

// Drop returns a table without the named columns; the columns share storage with t.
func (t *Table) Drop(names ...string) *Table {
	out := &Table{}
	for _, c := range t.Columns {
		drop := false
		for _, n := range names {
			drop = drop || c.Name == n
		}
		if !drop {
			out.Columns = append(out.Columns, c)
		}
	}
	return out
}
