package purge

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// idleStates are the TCP states of tr's idle connections, as the kernel
// has them (unix.BPF_TCP_ESTABLISHED, ...), read without consuming an error
// the connection holds.
func idleStates(t *testing.T, tr *Transport) []uint8 {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []uint8
	for _, h := range tr.hosts {
		for _, pc := range h.idle {
			rc, err := pc.tcp.SyscallConn()
			require.NoError(t, err)
			require.NoError(t, rc.Control(func(fd uintptr) {
				info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
				require.NoError(t, err)
				out = append(out, info.State)
			}))
		}
	}
	return out
}

// Kept connections the instance closed, or reset, while they were idle:
// found closed before anything is written on them, so the next run dials
// and every request is written once, even with one attempt allowed.
func TestTransportConnectionClosedWhileIdle(t *testing.T) {
	for _, reset := range []bool{false, true} {
		t.Run(fmt.Sprintf("reset=%v", reset), func(t *testing.T) {
			in := startCloser(t)
			tr := &Transport{}
			defer tr.Close()
			j := job(prefixed("a", 100), in.addr)
			j.Transport, j.Attempts = tr, 1
			require.True(t, run(t, j).OK())
			conns, reqs := in.conns.Load(), in.reqs.Load()
			in.closeAll(reset)
			require.Eventually(t, func() bool {
				states := idleStates(t, tr)
				for _, s := range states {
					if s == unix.BPF_TCP_ESTABLISHED {
						return false
					}
				}
				return len(states) > 0
			}, 5*time.Second, 5*time.Millisecond, "the client's side sees the close")

			j.URLs = prefixed("b", 100)
			out := run(t, j)
			require.True(t, out.OK(), out.Purge.Summary())
			for _, r := range results(out.Purge) {
				assert.Equal(t, 1, r.Attempts, r.URL)
			}
			assert.Equal(t, reqs+100, in.reqs.Load(), "nothing written on a closed connection")
			assert.Greater(t, in.conns.Load(), conns)
		})
	}
}
