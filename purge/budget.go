package purge

import "fmt"

// fdBudget is how many connections the open-file limit leaves a step.
type fdBudget struct {
	n     int    // connections; 0: no limit known
	limit uint64 // the soft limit
}

func connectionBudget() fdBudget {
	n, limit, ok := fileBudget()
	if !ok {
		return fdBudget{}
	}
	return fdBudget{n: max(n, 1), limit: limit}
}

// cap limits want to the budget, and says so when it bites.
func (b fdBudget) cap(want int) (int, string) {
	if b.n == 0 || want <= b.n {
		return want, ""
	}
	return b.n, fmt.Sprintf("connections limited to %d by the open-file limit (%d; see ulimit -n): the instances are reached in turns", b.n, b.limit)
}
