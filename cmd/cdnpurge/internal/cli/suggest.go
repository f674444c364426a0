package cli

import (
	"slices"
	"sort"
	"strings"
)

// suggest returns the candidates close to s, closest first (at most 3):
// within a few edits (a swap of two neighbours is one), or those s is the
// start of. Nothing when s is close to nothing.
func suggest(s string, candidates []string) []string {
	s = strings.ToLower(s)
	limit := 1
	if len(s) >= 5 {
		limit = 2
	}
	type scored struct {
		c string
		d int
	}
	var found []scored
	for _, c := range candidates {
		d := distance(s, strings.ToLower(c))
		switch {
		case d <= limit:
		case len(s) >= 3 && strings.HasPrefix(c, s):
			d = limit + 1
		default:
			continue
		}
		found = append(found, scored{c, d})
	}
	sort.SliceStable(found, func(i, j int) bool { return found[i].d < found[j].d })
	var out []string
	for _, f := range found {
		if len(out) == 3 {
			break
		}
		if !slices.Contains(out, f.c) {
			out = append(out, f.c)
		}
	}
	return out
}

// distance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of neighbours, one each.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range rb {
		d[0][j+1] = j + 1
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// didYouMean words suggestions: "did you mean --dns-name?", or "did you
// mean --dns-name or --dns-timeout?". prefix goes before each; a command
// ("cdnpurge ") is quoted as a whole: 'cdnpurge purge'.
func didYouMean(prefix string, s []string) string {
	if len(s) == 0 {
		return ""
	}
	for i := range s {
		s[i] = prefix + s[i]
		if strings.HasPrefix(prefix, "cdnpurge ") {
			s[i] = "'" + s[i] + "'"
		}
	}
	if len(s) == 1 {
		return "did you mean " + s[0] + "?"
	}
	return "did you mean " + orList(s) + "?"
}
