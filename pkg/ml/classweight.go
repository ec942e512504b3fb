package ml

// ClassWeights scale the loss of each class, as scikit-learn's class_weight: the penalty
// parameter C of a row becomes C times its class's weight. The zero value weighs both classes
// 1.
type ClassWeights struct {
	// Negative and Positive are the weights of classes 0 and 1; 0 means 1.
	Negative float64 `json:"negative,omitempty"`
	Positive float64 `json:"positive,omitempty"`
	// Balanced overrides both with n / (2 · class count), scikit-learn's "balanced".
	Balanced bool `json:"balanced,omitempty"`
}

// Resolve returns the weights of classes 0 and 1 for labels y.
func (w ClassWeights) Resolve(y []float64) (neg, pos float64) {
	if w.Balanced {
		var np float64
		for _, v := range y {
			if v != 0 {
				np++
			}
		}
		n := float64(len(y))
		if np == 0 || np == n {
			return 1, 1
		}
		return n / (2 * (n - np)), n / (2 * np)
	}
	neg, pos = w.Negative, w.Positive
	if neg == 0 {
		neg = 1
	}
	if pos == 0 {
		pos = 1
	}
	return neg, pos
}
