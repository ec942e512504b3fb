package recommend

// The micro-kernel computes an mr × nr tile of scores from a packed panel of mr user rows
// (k columns of mr values) and a packed panel of nr item columns (k rows of nr values).
const (
	mr = 6
	nr = 16
)

// tile6x16Go is the portable micro-kernel: c[r*ldc+j] = Σ_p a[p*mr+r]·b[p*nr+j].
func tile6x16Go(k int, a, b, c []float32, ldc int) {
	var acc [mr][nr]float32
	for p := range k {
		ap := a[p*mr : p*mr+mr]
		bp := (*[nr]float32)(b[p*nr : p*nr+nr])
		for r, av := range ap {
			row := &acc[r]
			for j, bv := range bp {
				row[j] += av * bv
			}
		}
	}
	for r := range mr {
		copy(c[r*ldc:r*ldc+nr], acc[r][:])
	}
}
