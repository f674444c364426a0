package serve_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/fleet"
	"github.com/cdnpurge/cdnpurge/fleet/fleettest"
	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/report/reporttest"
	"github.com/cdnpurge/cdnpurge/serve/api"
)

// check asks every instance of f for urls and requires expect everywhere.
func check(t *testing.T, f *fleet.Fleet, expect purge.Expect, list ...string) {
	t.Helper()
	j := f.Job()
	j.URLs, j.VerifyOnly, j.Verify = list, true, []purge.Expect{expect}
	out, err := j.Run(context.Background())
	require.NoError(t, err)
	if err := out.Err(); err != nil {
		var why []string
		r := out.Verify[0]
		for k := range r.Len() {
			if e := r.Err(k); e != nil {
				why = append(why, e.Error())
			}
		}
		t.Fatalf("expect %s on %v: %v: %s", expect, list, err, strings.Join(why, "; "))
	}
}

// warm caches urls on every instance and checks that each now hits.
func warm(t *testing.T, f *fleet.Fleet, list ...string) {
	t.Helper()
	check(t, f, purge.ExpectAny, list...)
	check(t, f, purge.ExpectHit, list...)
}

// shape is what a JSON report is made of, checked against the schema: its
// steps, and the keys of each step's first result.
func shape(t *testing.T, b []byte) []string {
	t.Helper()
	reporttest.Require(t, b)
	var rep struct {
		Steps []struct {
			Step    string           `json:"step"`
			Method  string           `json:"method"`
			Expect  string           `json:"expect"`
			Results []map[string]any `json:"results"`
		} `json:"steps"`
	}
	require.NoError(t, json.Unmarshal(b, &rep))
	var out []string
	for _, s := range rep.Steps {
		out = append(out, s.Step+" "+s.Method+" "+s.Expect)
		if len(s.Results) > 0 {
			var keys []string
			for k := range s.Results[0] {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			out = append(out, strings.Join(keys, ","))
		}
	}
	return out
}

// Every path through serve, against real varnishd: the API at once and
// later, --via, and transparent PURGE, BAN and PURGEKEYS; each checked by
// what the instances' caches say afterwards.
func TestEveryPathPurgesEveryInstance(t *testing.T) {
	fleettest.NeedXkey(t)
	f := fleettest.Start(t, fleet.Options{N: 3, Xkey: true})
	p := startServe(t, filepath.Join(t.TempDir(), "journal.db"), nil,
		"--dns-name", f.Name, "--record", string(f.Record), "--port", strconv.Itoa(f.Port), "--resolver", f.Resolver)
	site := "http://serve-paths.example"

	t.Run("sync", func(t *testing.T) {
		u := site + "/sync"
		warm(t, f, u)
		st, h, body := call(t, http.MethodPost, p.url(api.PathPurge), "", api.Request{URLs: []string{u}})
		require.Equal(t, http.StatusOK, st, string(body))
		require.NotEmpty(t, h.Get(api.HeaderJob))
		check(t, f, purge.ExpectMiss, u)
		// With verification: the same JSON as `cdnpurge purge --verify
		// --format json` (a purge and a verify step).
		st, _, body = call(t, http.MethodPost, p.url(api.PathPurge), "", api.Request{URLs: []string{u}, Verify: api.Steps{purge.ExpectPurged}})
		require.Equal(t, http.StatusOK, st, string(body))
		cmd := exec.Command(cli(t), append([]string{"purge", "--url", u, "--verify", "--format", "json"}, f.Args()...)...)
		direct, err := cmd.Output()
		require.NoError(t, err)
		require.Equal(t, shape(t, direct), shape(t, body))
		rep := reporttest.Require(t, body)
		require.True(t, rep.OK)
		require.Len(t, rep.Purge().Results, 3)
	})

	t.Run("async", func(t *testing.T) {
		u := site + "/async"
		warm(t, f, u)
		st, h, body := call(t, http.MethodPost, p.url(api.PathPurge+"?wait=false"), "", api.Request{URLs: []string{u}})
		require.Equal(t, http.StatusAccepted, st, string(body))
		var acc api.Accepted
		require.NoError(t, json.Unmarshal(body, &acc))
		require.Equal(t, api.PathJobs+acc.Job, h.Get("Location"))
		var v jobView
		eventually(t, 30*time.Second, "job done", func() (bool, string) {
			v = getJob(t, p, "", acc.Job)
			return v.State == "done", v.State
		})
		require.True(t, *v.OK)
		require.Empty(t, v.Pending)
		require.Equal(t, []string{"purge PURGE ", "attempts,duration_ms,instance,objects,ok,purged_at,status,url"}, shape(t, v.Report))
		check(t, f, purge.ExpectMiss, u)
	})

	t.Run("via", func(t *testing.T) {
		u := site + "/via"
		warm(t, f, u)
		out, err := exec.Command(cli(t), "purge", "--via", p.url(""), "--url", u).CombinedOutput()
		require.NoError(t, err, string(out))
		require.Contains(t, string(out), "purged 1 URL on 3/3 instances")
		check(t, f, purge.ExpectMiss, u)
		// --format json prints the report as the CLI prints its own.
		warm(t, f, u) // each purge removes a copy: the same objects count
		out, err = exec.Command(cli(t), "purge", "--via", p.url(""), "--url", u, "--format", "json").Output()
		require.NoError(t, err, string(out))
		warm(t, f, u)
		direct, err := exec.Command(cli(t), append([]string{"purge", "--url", u, "--format", "json"}, f.Args()...)...).Output()
		require.NoError(t, err)
		ms := regexp.MustCompile(`"(duration_ms|purged_at)": ?[0-9.]+|in [0-9.]+(ms|µs|s)`)
		require.Equal(t, ms.ReplaceAllString(string(direct), "T"), ms.ReplaceAllString(string(out), "T"))
		warm(t, f, u)
		// verify --via: the caches now hit (the check above filled them);
		// expecting a miss fails with exit 1, as without --via.
		out, err = exec.Command(cli(t), "verify", "--via", p.url(""), "--url", u, "--expect", "hit", "--format", "json").Output()
		require.NoError(t, err, string(out))
		require.True(t, reporttest.Require(t, out).Verify()[0].OK)
		cmd := exec.Command(cli(t), "verify", "--via", p.url(""), "--url", u, "--expect", "miss")
		out, _ = cmd.CombinedOutput()
		require.Equal(t, 1, cmd.ProcessState.ExitCode(), string(out))
		require.Contains(t, string(out), "FAILED: verify miss: 3 of 3 checks did not match")
		// A setting serve holds is refused with --via (exit 2, nothing sent).
		cmd = exec.Command(cli(t), "purge", "--via", p.url(""), "--url", u, "--timeout", "1s")
		out, _ = cmd.CombinedOutput()
		require.Equal(t, 2, cmd.ProcessState.ExitCode(), string(out))
		require.Contains(t, string(out), "--timeout: with --via the serve decides this")
	})

	t.Run("api-ban", func(t *testing.T) {
		in, out := site+"/apiban/1", site+"/kept/1"
		warm(t, f, in, out)
		st, _, body := call(t, http.MethodPost, p.url(api.PathPurge), "", api.Request{URLs: []string{site + "/"}, Ban: &api.Ban{Regex: "^/apiban/"}})
		require.Equal(t, http.StatusOK, st, string(body))
		check(t, f, purge.ExpectMiss, in)
		check(t, f, purge.ExpectHit, out)
	})

	t.Run("transparent-purge", func(t *testing.T) {
		u := site + "/tp?x=1&y=%2F"
		warm(t, f, u)
		st, _, body := call(t, "PURGE", p.url("/tp?x=1&y=%2F"), "", nil, "Host: serve-paths.example")
		require.Equal(t, http.StatusOK, st, string(body))
		var v struct {
			OK        bool `json:"ok"`
			Instances []struct {
				Instance string `json:"instance"`
				Status   int    `json:"status"`
				OK       bool   `json:"ok"`
			} `json:"instances"`
		}
		require.NoError(t, json.Unmarshal(body, &v))
		require.True(t, v.OK)
		require.Len(t, v.Instances, 3)
		for _, in := range v.Instances {
			require.Equal(t, 200, in.Status)
		}
		check(t, f, purge.ExpectMiss, u)
	})

	t.Run("transparent-ban", func(t *testing.T) {
		in, out := site+"/tban/a.css", site+"/tban/b.js"
		warm(t, f, in, out)
		// FOSHttpCache's form: the regexes in headers.
		st, _, body := call(t, "BAN", p.url("/"), "", nil, "Host: serve-paths.example", `X-Url: ^/tban/.*\.css$`, "X-Content-Type: .*")
		require.Equal(t, http.StatusOK, st, string(body))
		check(t, f, purge.ExpectMiss, in)
		check(t, f, purge.ExpectHit, out)
	})

	t.Run("transparent-purgekeys", func(t *testing.T) {
		tagged, other := site+"/tk/1?xkey=serve-red,serve-blue", site+"/tk/2?xkey=serve-green"
		warm(t, f, tagged, other)
		st, _, body := call(t, "PURGEKEYS", p.url("/"), "", nil, "Host: serve-paths.example", "xkey-purge: serve-blue")
		require.Equal(t, http.StatusOK, st, string(body))
		check(t, f, purge.ExpectMiss, tagged)
		check(t, f, purge.ExpectHit, other)
	})

	t.Run("transparent-refused-upstream", func(t *testing.T) {
		// A BAN without X-Url is refused by every instance: 502, with each
		// instance's status and reason.
		st, h, body := call(t, "BAN", p.url("/"), "", nil, "Host: serve-paths.example")
		require.Equal(t, http.StatusBadGateway, st, string(body))
		require.Contains(t, string(body), "BAN needs an X-Url header")
		require.Contains(t, h.Get(api.HeaderFailure), "FAILED")
	})

	// The metrics count what happened, with small label sets.
	st, _, body := call(t, http.MethodGet, p.url("/metrics"), "", nil)
	require.Equal(t, http.StatusOK, st)
	for _, want := range []string{`cdnpurge_jobs_total{kind="transparent",outcome="ok"} 3`, `cdnpurge_instances_discovered 3`,
		"cdnpurge_fanout_duration_seconds_count", "cdnpurge_journal_size_bytes", "cdnpurge_replays_pending 0"} {
		require.Contains(t, string(body), want)
	}
	require.NotContains(t, string(body), "serve-paths.example", "no URL in a label")
	require.Equal(t, 0, p.stop(t), p.out.String())
}
