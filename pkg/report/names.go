package report

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
)

// CandidateNames names the entries of a leaderboard, by candidate index, so that two entries
// whose family or hyperparameters differ never share a name: the candidate's label (else its
// family, as the spec spells it, e.g. "logistic_regression"), then the family when it differs
// among the entries of that label, then each hyperparameter whose value differs among them,
// as "name key=value ...". Entries alike in all of these (the same candidate listed twice)
// end with their candidate index, "#3".
func CandidateNames(entries []*modelv1.LeaderboardEntry) map[int32]string {
	base := func(e *modelv1.LeaderboardEntry) string {
		if e.GetLabel() != "" {
			return e.GetLabel()
		}
		return specFamily(e.GetFamily())
	}
	groups := map[string][]*modelv1.LeaderboardEntry{}
	for _, e := range entries {
		groups[base(e)] = append(groups[base(e)], e)
	}
	out := make(map[int32]string, len(entries))
	for name, group := range groups {
		// The keys whose values are not the same in every entry of the group; a key that some
		// entries lack differs too.
		keys := map[string]bool{}
		families := map[modelv1.ModelFamily]bool{}
		for _, e := range group {
			families[e.GetFamily()] = true
			for k := range e.GetHyperparameters() {
				keys[k] = true
			}
		}
		var varying []string
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			seen := map[string]bool{}
			for _, e := range group {
				seen[paramText(e, k)] = true
			}
			if len(seen) > 1 {
				varying = append(varying, k)
			}
		}
		names := map[string]int{}
		for _, e := range group {
			parts := []string{name}
			if len(families) > 1 && e.GetLabel() != "" {
				parts = append(parts, specFamily(e.GetFamily()))
			}
			for _, k := range varying {
				parts = append(parts, k+"="+paramText(e, k))
			}
			n := strings.Join(parts, " ")
			out[e.GetCandidateIndex()] = n
			names[n]++
		}
		for _, e := range group {
			if n := out[e.GetCandidateIndex()]; names[n] > 1 {
				out[e.GetCandidateIndex()] = fmt.Sprintf("%s #%d", n, e.GetCandidateIndex())
			}
		}
	}
	return out
}

// specFamily returns a family as training specs name it: "mf_als".
func specFamily(f modelv1.ModelFamily) string {
	return strings.ToLower(strings.TrimPrefix(f.String(), "MODEL_FAMILY_"))
}

// paramText is an entry's value of hyperparameter k, "unset" when it has none.
func paramText(e *modelv1.LeaderboardEntry, k string) string {
	v, ok := e.GetHyperparameters()[k]
	if !ok {
		return "unset"
	}
	return formatValue(v)
}
