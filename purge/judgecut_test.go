package purge

import (
	"io"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
)

// judgeCut decides, alone, what a batch cut short means: one rule a row.
func TestJudgeCut(t *testing.T) {
	timeout := os.ErrDeadlineExceeded
	for _, tc := range []struct {
		name string
		cut  cutInfo
		want fate
	}{
		{"Connection: close, then the rest: not processed, free, a limit",
			cutInfo{announced: true, served: 3}, fate{again: true, free: true, limit: true}},
		{"answers that do not pair: each again alone, one at a time from now",
			cutInfo{err: errUnpaired, served: 8, batch: 8}, fate{again: true, solo: true, oneAtATime: true}},
		{"garbage after good answers (204 with a body)",
			cutInfo{err: protocolErr("x"), served: 1, batch: 4}, fate{again: true, solo: true, oneAtATime: true}},
		{"garbage as the first answer of a fresh connection",
			cutInfo{err: protocolErr("x"), batch: 1}, fate{again: true}},
		{"a body that never ended: it answered",
			cutInfo{err: &bodyError{status: 200, err: timeout}, batch: 1}, fate{again: true}},
		{"nothing answered on the connection: the instance's fault",
			cutInfo{err: timeout, batch: 1}, fate{fault: true, again: true}},
		{"a kept-alive connection found closed after its last answer",
			cutInfo{err: io.EOF, served: 5, kept: true, batch: 4}, fate{again: true, raced: true, limit: true}},
		{"a kept-alive connection closed while idle: no limit learned",
			cutInfo{err: syscall.ECONNRESET, served: 5, kept: true, idle: true, batch: 4}, fate{again: true, raced: true}},
		{"answers, then silence on a lone request: one request per connection",
			cutInfo{err: timeout, served: 1, kept: true, answered: 0, batch: 1}, fate{again: true, oneAtATime: true, limit: true}},
		{"answers, then silence in a batch: one at a time",
			cutInfo{err: timeout, served: 2, answered: 2, batch: 8}, fate{again: true, oneAtATime: true}},
		{"answers, then the connection closed mid-batch: a keep-alive limit",
			cutInfo{err: io.ErrUnexpectedEOF, served: 3, answered: 3, batch: 8}, fate{again: true, limit: true}},
	} {
		assert.Equal(t, tc.want, judgeCut(tc.cut, true), tc.name)
		notIdem := judgeCut(tc.cut, false)
		assert.Equal(t, tc.cut.announced, notIdem.again, "%s: only what was not processed goes again when not idempotent", tc.name)
	}
}
