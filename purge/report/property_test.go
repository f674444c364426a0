package report_test

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/internal/hostile"
	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/report"
	"github.com/cdnpurge/cdnpurge/purge/report/reporttest"
)

// choices reads decisions from fuzz input, zeros once it is used up.
type choices struct{ data []byte }

func (c *choices) n(k int) int {
	if len(c.data) == 0 || k <= 1 {
		return 0
	}
	b := c.data[0]
	c.data = c.data[1:]
	return int(b) % k
}

func (c *choices) bool() bool { return c.n(2) == 1 }

func pick[T any](c *choices, from ...T) T { return from[c.n(len(from))] }

// answerOf is what a hostile instance answers to a request: decided by
// the fuzz input, the instance and the request alone, so that the same
// input gives the same answers whatever order requests arrive in.
func answerOf(seed []byte, inst int, r *hostile.Request, token string) (close bool, raw string) {
	h := fnv.New64a()
	h.Write(seed)
	fmt.Fprintf(h, "|%d|%s|%s|%s", inst, r.Method, r.Target, r.Get("Fly-Force-Instance-Id"))
	rng := rand.New(rand.NewPCG(h.Sum64(), 0))
	if rng.IntN(12) == 0 {
		return true, ""
	}
	status := []int{200, 200, 200, 204, 301, 401, 403, 404, 405, 500, 503}[rng.IntN(11)]
	reason := http.StatusText(status)
	var echo []string
	for k, v := range r.Header {
		echo = append(echo, k+": "+strings.Join(v, ","))
	}
	sort.Strings(echo)
	if rng.IntN(4) == 0 {
		reason = strings.Join(echo, " ") // a server that echoes the request, token and all
	}
	var hs []string
	add := func(name string, values ...string) {
		if rng.IntN(2) == 0 {
			hs = append(hs, name+": "+values[rng.IntN(len(values))])
		}
	}
	add("Cache-Status", "c; hit; ttl=7", "c; fwd=miss; stored", "c; hit; ttl=-3", `c; hit; detail="<a&b> \" `+token+`"`,
		"region=iad; origin=app; ttl=inf; grace=1; storage=memory; hit; hits=3", "region=iad; ttl=NaN; miss; hits=0", "garbage;;;=", "c; fwd=bypass")
	add("X-Cache", "HIT", "MISS", "hit graced", "HIT from squid", "\u2028weird")
	add("X-Varnish", "1", "1 2", "x y z")
	add("Age", "0", "3", "99999", "-1", "soon")
	add("Vary", "Accept-Encoding", "User-Agent", "*", "X-\"Odd\"")
	add("ETag", `"v1"`, `"v2"`, `W/"v2"`)
	add(purge.ObjectsHeader, "0", "1", "5", "-1", "x")
	add(purge.PurgeTimeHeader, "1900000000.5", "1e400", "0", "later")
	add(purge.FetchTimeHeader, "1899999999.25", "1900000001", "abc")
	body := ""
	if rng.IntN(3) == 0 {
		body = "<pre>" + strings.Join(echo, "\n") + "\n\x1b[31m\u2028\xff</pre>"
	}
	if r.Method == http.MethodHead {
		body = ""
	}
	return false, fmt.Sprintf("HTTP/1.1 %d %s\r\n%sContent-Length: %d\r\n\r\n%s", status, reason, headerLines(hs), len(body), body)
}

func bit(b bool) int {
	if b {
		return 1
	}
	return 0
}

func headerLines(hs []string) string {
	var b strings.Builder
	for _, h := range hs {
		b.WriteString(h + "\r\n")
	}
	return b.String()
}

// Whatever the instances answer and whatever the job (failures, verify
// steps of every kind, an origin, edge mode, skipped machines, warnings,
// secrets echoed back), the JSON report is one the schema accepts, with a
// result per URL and instance in every step, and it shows no secret.
func FuzzJSONReport(f *testing.F) {
	for seed := range uint64(24) {
		rng := rand.New(rand.NewPCG(seed, seed))
		b := make([]byte, 48)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		f.Add(b)
	}
	f.Fuzz(checkRandomReport)
}

// checkRandomReport runs the job data decides against instances that
// answer as it decides, and checks its JSON report.
func checkRandomReport(t *testing.T, data []byte) {
	seed := bytes.Clone(data)
	c := &choices{data: data}
	token := pick(c, "", "s3cr3t-purge-token-0123456789", "shorttok")
	flyToken := "fly-s3cr3t-token-abcdefghij"
	var urls []string
	for range 1 + c.n(3) {
		urls = append(urls, pick(c, "https://example.com/a", "https://example.com/b?x=1&y=<2>", "http://example.com/\"q\"",
			"https://EXAMPLE.com/c/../d", "https://example.com/"+token, "https://example.com/é"))
	}
	j := purge.Job{URLs: urls, Token: token, Attempts: 1 + c.n(2), Timeout: 400 * time.Millisecond, Backoff: time.Millisecond, Scheme: "http"}
	for range c.n(3) {
		j.Verify = append(j.Verify, pick(c, purge.ExpectPurged, purge.ExpectMiss, purge.ExpectHit, purge.ExpectFresh,
			purge.ExpectStale, purge.ExpectAny, purge.ExpectCurrent))
	}
	if len(j.Verify) > 0 {
		j.VerifyOnly = c.n(3) == 0
		j.VerifyMethod = pick(c, "", "GET")
		if c.bool() {
			origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Header().Set("ETag", `"v2"`) }))
			t.Cleanup(origin.Close)
			j.Origin = origin.URL
		}
		if c.n(4) == 0 {
			j.Wait, j.Interval = 300*time.Millisecond, purge.MinInterval
		}
	}
	var targets purge.Targets
	edge := c.n(3) == 0
	n := 1 + c.n(3)
	if edge {
		in := hostile.Start(t, hostile.Each(func(hc *hostile.Conn, r *hostile.Request) {
			if closeIt, raw := answerOf(seed, 0, r, token); closeIt {
				hc.End()
			} else {
				hc.Write(raw)
			}
		}))
		j.Fly = purge.Fly{App: "app", Token: flyToken, Connect: in.Addr}
		for i := range n {
			targets.Instances = append(targets.Instances, purge.Instance{Region: pick(c, "iad", "ams", "<x>"), MachineID: fmt.Sprintf("%014x", i)})
		}
	} else {
		for i := range n {
			in := hostile.Start(t, hostile.Each(func(hc *hostile.Conn, r *hostile.Request) {
				if closeIt, raw := answerOf(seed, i, r, token); closeIt {
					hc.End()
				} else {
					hc.Write(raw)
				}
			}))
			inst, err := purge.ParseInstance(in.Addr, 80)
			require.NoError(t, err)
			targets.Instances = append(targets.Instances, inst)
		}
	}
	for i := range c.n(3) * bit(edge) { // machines a platform lists: edge mode
		targets.Skipped = append(targets.Skipped, purge.Skipped{
			Instance: purge.Instance{Region: "lhr", MachineID: fmt.Sprintf("dead%010x", i)},
			State:    pick(c, "stopped", "suspended", "failed: "+flyToken, "\x1b[31mred")})
	}
	out, err := j.RunOn(t.Context(), targets)
	var je *purge.JobError
	if errors.As(err, &je) {
		t.Skip(err) // settings that cannot work (current without an origin): nothing was sent
	}
	require.NoError(t, err)

	var b bytes.Buffer
	require.NoError(t, report.Write(&b, report.JSON, out, report.Options{}))
	rep := reporttest.Require(t, b.Bytes())
	assert.Equal(t, out.OK(), rep.OK)
	assert.Equal(t, !rep.OK, strings.HasPrefix(rep.Summary, "FAILED: "), rep.Summary)
	assert.Len(t, rep.Instances, n)
	assert.Len(t, rep.Skipped, len(targets.Skipped))
	assert.Len(t, rep.Steps, len(out.Reports()))
	for _, s := range rep.Steps {
		assert.Len(t, s.Results, len(s.URLs)*n, "%s: a result per URL and instance", s.Name)
	}
	secrets := []string{token}
	if edge {
		secrets = append(secrets, flyToken)
	}
	for _, secret := range secrets {
		if len(secret) >= 8 {
			if run, shows := hostile.ShowsRun(b.String(), secret); shows {
				t.Fatalf("the report shows %q of a secret:\n%s", run, b.String())
			}
		}
	}
}
