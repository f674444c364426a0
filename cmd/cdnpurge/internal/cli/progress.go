package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/cdnpurge/cdnpurge/purge"
)

// progressAfter is how long a run goes before a progress line is shown.
const progressAfter = 2 * time.Second

// progress shows a line on stderr for long runs when stderr is a terminal:
// done/total, rate and failures. In CI, or piped, it says nothing.
type progress struct {
	mu    sync.Mutex
	w     io.Writer // nil: silent
	shown bool
}

func (a *App) progress() *progress {
	if f, ok := a.Stderr.(*os.File); ok && isTerminal(f) {
		return &progress{w: f}
	}
	return &progress{}
}

func (p *progress) show(pr purge.Progress) {
	if p.w == nil || pr.Elapsed < progressAfter {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	rate := float64(pr.Done) / pr.Elapsed.Seconds()
	fmt.Fprintf(p.w, "\r%s: %d/%d (%.0f%%), %.0f/s, %d failed  ", pr.Step, pr.Done, pr.Total, 100*float64(pr.Done)/float64(max(pr.Total, 1)), rate, pr.Failed)
	p.shown = true
}

// done ends the progress line, if one was shown.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprintln(p.w)
	}
}
