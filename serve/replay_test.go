package serve_test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/serve/api"
)

// An instance stopped when a job comes gets the job's purges once it is
// started again; one that leaves discovery instead is given up as gone.
func TestStoppedInstanceGetsWhatItMissed(t *testing.T) {
	f := startOwnFleet(t, 3, "", "")
	p := startServe(t, filepath.Join(t.TempDir(), "journal.db"), nil, append(f.Args(), "--retries", "0", "--timeout", "2s")...)

	f.Stop(1)
	f.Stop(2)
	list := urls("missed", 20)
	st, h, body := call(t, http.MethodPost, p.url(api.PathPurge), "", api.Request{URLs: list})
	require.Equal(t, http.StatusBadGateway, st, string(body))
	require.Contains(t, h.Get(api.HeaderFailure), "purge: 40 of 60 results failed on 2 of 3 instances")
	id := h.Get(api.HeaderJob)
	v := getJob(t, p, "", id)
	require.Equal(t, "done", v.State)
	require.Len(t, v.Pending, 2, "instances 2 and 3 are owed the job")
	require.Empty(t, f.missing(0, list), "instance 1 took it at once")

	// Instance 3 leaves discovery (a replaced machine): given up. Instance 2
	// comes back on its address: it gets all 20.
	f.list(3, 2)
	f.Start(1)
	eventually(t, 30*time.Second, "instance 2 received every URL", func() (bool, string) {
		m := f.missing(1, list)
		return len(m) == 0, strings.Join(m, "; ")
	})
	eventually(t, 30*time.Second, "deliveries settled", func() (bool, string) {
		v = getJob(t, p, "", id)
		b, _ := json.Marshal(v.Deliveries)
		return len(v.Pending) == 0, string(b)
	})
	states := map[string]string{}
	for _, d := range v.Deliveries {
		states[d.Instance] = d.State
		if d.Instance == f.Instance(1) {
			require.GreaterOrEqual(t, d.Replays, 1, "each replay is recorded")
		}
	}
	require.Equal(t, map[string]string{f.Instance(0): "delivered", f.Instance(1): "delivered", f.Instance(2): "gone"}, states)
	require.Contains(t, p.out.String(), "msg=replay")
	require.Contains(t, p.out.String(), "outcome=gone")
	require.Equal(t, 0, p.stop(t), p.out.String())
}

// kill -9 of serve in the middle of a job (hundreds of URLs to slow
// instances), then a restart on the same journal: every instance receives
// every purge.
func TestKill9MidJobThenRestartDeliversEverything(t *testing.T) {
	f := startOwnFleet(t, 3, slowTemplate("10ms"), "")
	journal := filepath.Join(t.TempDir(), "journal.db")
	args := append(f.Args(), "--per-instance", "2")
	p := startServe(t, journal, nil, args...)
	list := urls("kill", 300)
	st, h, body := call(t, http.MethodPost, p.url(api.PathPurge+"?wait=false"), "", api.Request{URLs: list})
	require.Equal(t, http.StatusAccepted, st, string(body))
	require.Equal(t, api.PathJobs+"1", h.Get("Location"))
	// Kill it once the instances have some of the purges, not all.
	eventually(t, 30*time.Second, "some purges received", func() (bool, string) {
		n := len(f.received(0))
		return n >= 20, ""
	})
	p.kill()
	before := 0
	for i := range 3 {
		before += len(f.missing(i, list))
	}
	require.Positive(t, before, "the kill came before every purge was sent")

	p = startServe(t, journal, nil, args...)
	require.Contains(t, p.out.String(), "resuming jobs")
	for i := range 3 {
		eventually(t, time.Minute, "instance received every purge", func() (bool, string) {
			m := f.missing(i, list)
			return len(m) == 0, f.Instance(i) + " misses " + strings.Join(m[:min(3, len(m))], "; ")
		})
	}
	eventually(t, 30*time.Second, "nothing pending", func() (bool, string) {
		v := getJob(t, p, "", "1")
		return v.State == "done" && v.Interrupted && len(v.Pending) == 0, v.State
	})
	require.Equal(t, 0, p.stop(t), p.out.String())
}

// SIGTERM: serve stops taking jobs, lets the one in flight finish (its
// client gets the whole report), keeps the queued one in the journal, and
// exits 0; the next serve sends the queued one.
func TestSIGTERMFinishesInFlightAndKeepsQueued(t *testing.T) {
	f := startOwnFleet(t, 2, slowTemplate("10ms"), "")
	journal := filepath.Join(t.TempDir(), "journal.db")
	args := append(f.Args(), "--max-jobs", "1", "--per-instance", "1")
	p := startServe(t, journal, nil, args...)
	first, second := urls("term/1", 100), urls("term/2", 50)
	type answer struct {
		status int
		body   []byte
	}
	got := make(chan answer, 1)
	go func() {
		st, _, body := call(t, http.MethodPost, p.url(api.PathPurge), "", api.Request{URLs: first})
		got <- answer{st, body}
	}()
	eventually(t, 30*time.Second, "first job sending", func() (bool, string) { return len(f.received(0)) > 0, "" })
	st, _, body := call(t, http.MethodPost, p.url(api.PathPurge+"?wait=false"), "", api.Request{URLs: second})
	require.Equal(t, http.StatusAccepted, st, string(body))
	require.Equal(t, 0, p.stop(t), p.out.String())
	a := <-got
	require.Equal(t, http.StatusOK, a.status, string(a.body))
	require.Contains(t, string(a.body), "purged 100 URLs on 2/2 instances")
	for i := range 2 {
		require.Empty(t, f.missing(i, first))
		require.Len(t, f.missing(i, second), 50, "the queued job was not sent before the stop")
	}
	p = startServe(t, journal, nil, args...)
	for i := range 2 {
		eventually(t, 30*time.Second, "queued job delivered after the restart", func() (bool, string) {
			m := f.missing(i, second)
			return len(m) == 0, strings.Join(m[:min(3, len(m))], "; ")
		})
	}
	require.Equal(t, 0, p.stop(t))
}
