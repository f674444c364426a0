package serve_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/purge/report/reporttest"
	"github.com/cdnpurge/cdnpurge/serve/api"
)

// load sends, from clients at once, jobs jobs of size URLs each per
// client, and returns every URL sent and the results' count.
func load(t testing.TB, p *proc, clients, jobs, size int, prefix string) (sent []string, results int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &api.Client{URL: p.url(""), HTTP: hc, Busy: time.Minute}
			for j := range jobs {
				list := urls(fmt.Sprintf("%s/%d/%d", prefix, c, j), size)
				res, err := cl.Purge(ctx, api.Request{URLs: list}, "json", false)
				if err != nil {
					errs <- err
					return
				}
				if !res.OK() {
					errs <- fmt.Errorf("job %s: %d %s", res.Job, res.Status, res.Failure)
					return
				}
				if err := reporttest.Validate(res.Report); err != nil {
					errs <- fmt.Errorf("job %s: %w", res.Job, err)
					return
				}
				var rep struct {
					Steps []struct {
						Results []struct {
							OK bool `json:"ok"`
						} `json:"results"`
					} `json:"steps"`
				}
				if err := json.Unmarshal(res.Report, &rep); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				sent = append(sent, list...)
				for _, r := range rep.Steps[0].Results {
					if r.OK {
						results++
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	return sent, results
}

// 50 clients at once, 100 URLs each (10 jobs of 10), on 3 varnishd: every
// purge reaches every instance exactly as reported, and serve's memory
// stays bounded.
func TestLoadFiftyClients(t *testing.T) {
	f := startOwnFleet(t, 3, "", "")
	p := startServe(t, filepath.Join(t.TempDir(), "journal.db"), nil, append(f.Args(), "--max-queue", "16")...)
	sent, results := load(t, p, 50, 10, 10, "load")
	require.Len(t, sent, 5000)
	require.Equal(t, 5000*3, results, "every (URL, instance) reported ok")
	for i := range 3 {
		eventually(t, 30*time.Second, "instance received every purge", func() (bool, string) {
			m := f.missing(i, sent)
			return len(m) == 0, fmt.Sprintf("%s misses %d: %s", f.Instance(i), len(m), strings.Join(m[:min(3, len(m))], "; "))
		})
		require.Len(t, f.All(i), 5000, "no purge sent twice")
	}
	rss := p.rssKiB(t)
	t.Logf("serve peak RSS: %.1f MiB", float64(rss)/1024)
	require.Less(t, rss, 128<<10, "serve's peak RSS (KiB)")
	// The queue was small: some jobs waited (429 + Retry-After), none lost.
	_, _, body := call(t, http.MethodGet, p.url("/metrics"), "", nil)
	require.Contains(t, string(body), `cdnpurge_jobs_total{kind="api",outcome="ok"} 500`)
	require.Regexp(t, `cdnpurge_requests_rejected_total\{reason="busy"\} [1-9]`, string(body))
	require.Equal(t, 0, p.stop(t))
}
