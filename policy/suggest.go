package policy

import (
	"errors"
	"strings"
)

// Suggest returns the word of valid nearest to got by edit distance
// (insertions, deletions, substitutions and swaps of adjacent letters, case
// ignored), or "" when none is near enough to be a likely typo: at most a
// third of got's length, and at least 1, edits away.
func Suggest(got string, valid []string) string {
	g := strings.ToLower(got)
	best, bestD := "", -1
	for _, v := range valid {
		d := distance(g, strings.ToLower(v))
		if bestD < 0 || d < bestD {
			best, bestD = v, d
		}
	}
	limit := max(1, len([]rune(got))/3)
	if bestD < 0 || bestD > limit {
		return ""
	}
	return best
}

// distance is the optimal-string-alignment edit distance of a and b.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

func asErr(err error, target **Error) bool { return errors.As(err, target) }
