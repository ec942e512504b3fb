package dataset

import (
	"fmt"
	"math"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	"github.com/bullseye-ml/bullseye/pkg/ml/clv"
)

// BTYD is the buy-till-you-die summary of some rows of a training set: the customers, with
// their times in a CLV model's unit, and the rows they come from.
type BTYD struct {
	// Customers are the summaries, ID the row's entity.
	Customers []clv.Customer
	// Rows are the rows of the customers, in the same order.
	Rows []int
	// Skipped counts the rows left out for want of a purchase (every BTYD value null).
	Skipped int
}

// Customers reads the BTYD columns m names of the given rows as m's customers, leaving out
// the rows without a purchase (every value null). A column missing from the set, a value
// missing on its own, or a value no model can take (artifact.CLVInputs.Check) is an error
// naming the customer and the column.
func (d *Dataset) Customers(m *artifact.CLVModel, rows []int) (*BTYD, error) {
	names := [4]string{m.Inputs.Frequency, m.Inputs.RecencyDays, m.Inputs.AgeDays, m.Inputs.Monetary}
	var cols [4][]float64
	for k, name := range names {
		c, ok := d.Table.Column(name)
		if !ok || c.Numeric == nil {
			return nil, fmt.Errorf("the training set has no numeric column %q: a CLV model reads the columns of the feature set's RFM_STYLE_BTYD group (hyperparameter rfm_prefix names its prefix)", name)
		}
		cols[k] = c.Numeric
	}
	out := &BTYD{}
	for _, i := range rows {
		f, rec, age, mon := cols[0][i], cols[1][i], cols[2][i], cols[3][i]
		if math.IsNaN(f) && math.IsNaN(rec) && math.IsNaN(age) && math.IsNaN(mon) {
			out.Skipped++
			continue
		}
		for k, name := range names {
			if math.IsNaN(cols[k][i]) {
				return nil, fmt.Errorf("customer %q: feature %q is missing", d.Entities[i], name)
			}
		}
		if err := m.Inputs.Check(f, rec, age, mon); err != nil {
			return nil, fmt.Errorf("customer %q: %w", d.Entities[i], err)
		}
		out.Customers = append(out.Customers, m.Customer(d.Entities[i], f, rec, age, mon))
		out.Rows = append(out.Rows, i)
	}
	return out, nil
}
