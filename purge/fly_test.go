package purge_test

// Edge mode (Fly.io) through Job.Run and Job.Plan: a fake Machines API
// (httptest) lists the machines, and a local listener stands for the edge
// (Fly.Connect, or the URL's own host). These tests are in package
// purge_test so that they can write reports with package report.

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/report"
	"github.com/cdnpurge/cdnpurge/purge/report/reporttest"
)

const (
	flyTestApp   = "my-cdn"
	flyTestToken = "fly-t0ken-s3cret"
)

// flyMachine is a machine as the fake Machines API lists it.
type flyMachine struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	State     string `json:"state"`
	Region    string `json:"region"`
	PrivateIP string `json:"private_ip"`
}

// flyFleet is the machines most tests list: three started in three
// regions, one stopped, one suspended.
var flyFleet = []flyMachine{
	{ID: "148ed193b95e89", Name: "cdn-iad", State: "started", Region: "iad", PrivateIP: "fdaa:0:1::2"},
	{ID: "9080524f610d87", Name: "cdn-sjc", State: "started", Region: "sjc", PrivateIP: "fdaa:0:1::3"},
	{ID: "3d8d413b29d089", Name: "cdn-ams", State: "started", Region: "ams", PrivateIP: "fdaa:0:1::4"},
	{ID: "e784079b449483", Name: "cdn-lhr", State: "stopped", Region: "lhr", PrivateIP: "fdaa:0:1::5"},
	{ID: "0e286039f42e86", Name: "cdn-nrt", State: "suspended", Region: "nrt", PrivateIP: "fdaa:0:1::6"},
}

// flyAPI is a fake Machines API. answer, when set, replaces the normal
// answer (for error cases).
type flyAPI struct {
	URL      string
	mu       sync.Mutex
	seen     []*http.Request
	machines []flyMachine
	answer   func(w http.ResponseWriter, r *http.Request)
}

func (a *flyAPI) requests() []*http.Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.seen)
}

func startFlyAPI(t *testing.T, machines []flyMachine, answer func(w http.ResponseWriter, r *http.Request)) *flyAPI {
	t.Helper()
	a := &flyAPI{machines: machines, answer: answer}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.seen = append(a.seen, r)
		a.mu.Unlock()
		if a.answer != nil {
			a.answer(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Header.Get("Authorization") != "Bearer "+flyTestToken:
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"unauthorized"}`))
		case r.URL.Path != "/v1/apps/"+flyTestApp+"/machines":
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"app not found"}`))
		default:
			_ = json.NewEncoder(w).Encode(a.machines)
		}
	}))
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	return a
}

// flySeen is one request as the edge received it.
type flySeen struct {
	Method, Host, Target, Machine, Token string
	SNI                                  string
}

// flyEdge is a stand-in for Fly's edge: it records each request and
// answers what answer says (200 when nil).
type flyEdge struct {
	srv  *httptest.Server
	addr string
	mu   sync.Mutex
	seen []flySeen
}

func (e *flyEdge) requests() []flySeen {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.seen)
}

func startFlyEdge(t *testing.T, tlsOn bool, answer func(w http.ResponseWriter, r *http.Request)) *flyEdge {
	t.Helper()
	e := &flyEdge{}
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := flySeen{Method: r.Method, Host: r.Host, Target: r.RequestURI, Machine: r.Header.Get("Fly-Force-Instance-Id"),
			Token: r.Header.Get("Purge-Token")}
		if r.TLS != nil {
			s.SNI = r.TLS.ServerName
		}
		e.mu.Lock()
		e.seen = append(e.seen, s)
		e.mu.Unlock()
		if answer != nil {
			answer(w, r)
		}
	}))
	if tlsOn {
		e.srv.StartTLS()
	} else {
		e.srv.Start()
	}
	t.Cleanup(e.srv.Close)
	e.addr = e.srv.Listener.Addr().String()
	return e
}

// flyJob is an edge-mode job against the fake API, connecting to the edge.
func flyJob(api *flyAPI, edge *flyEdge, urls ...string) purge.Job {
	j := purge.Job{
		Fly:    purge.Fly{App: flyTestApp, Token: flyTestToken, API: api.URL},
		URLs:   urls,
		Scheme: "http",
		Token:  "purge-t0ken", Timeout: 2 * time.Second, Backoff: time.Millisecond,
	}
	if edge != nil {
		j.Fly.Connect = edge.addr
	}
	return j
}

func flyRun(t *testing.T, j purge.Job) *purge.Outcome {
	t.Helper()
	out, err := j.Run(context.Background())
	require.NoError(t, err)
	return out
}

func labels(ins []purge.Instance) []string {
	var out []string
	for _, in := range ins {
		out = append(out, in.String())
	}
	return out
}

func TestFlyPlanListsStartedMachinesAndSkipsTheOthers(t *testing.T) {
	api := startFlyAPI(t, flyFleet, nil)
	plan, err := flyJob(api, nil, "https://cdn.example/feed").Plan(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []string{"ams/3d8d413b29d089", "iad/148ed193b95e89", "sjc/9080524f610d87"}, labels(plan.Instances))
	for _, in := range plan.Instances {
		assert.Empty(t, in.Host, "edge mode: no address, the edge routes")
		assert.Zero(t, in.Port)
		assert.True(t, strings.HasPrefix(in.Name, "cdn-"))
	}
	require.Len(t, plan.Skipped, 2)
	assert.Equal(t, purge.Skipped{Instance: purge.Instance{Region: "lhr", MachineID: "e784079b449483", Name: "cdn-lhr"}, State: "stopped"}, plan.Skipped[0])
	assert.Equal(t, "nrt/0e286039f42e86", plan.Skipped[1].Instance.String())
	assert.Equal(t, "suspended", plan.Skipped[1].State)

	reqs := api.requests()
	require.Len(t, reqs, 1)
	r := reqs[0]
	assert.Equal(t, http.MethodGet, r.Method)
	assert.Equal(t, "/v1/apps/my-cdn/machines", r.URL.Path)
	assert.Equal(t, "Bearer "+flyTestToken, r.Header.Get("Authorization"))
	assert.Equal(t, "application/json", r.Header.Get("Accept"))
	assert.Equal(t, "cdnpurge/"+purge.Version(), r.Header.Get("User-Agent"))

	// Edge mode defaults to https.
	j := flyJob(api, nil, "https://cdn.example/feed")
	j.Scheme = ""
	plan, err = j.Plan(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "https", plan.Scheme)
}

func TestFlyRunSendsEachMachineItsRequestThroughTheEdge(t *testing.T) {
	api := startFlyAPI(t, flyFleet, nil)
	edge := startFlyEdge(t, false, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Status", "cdn; fwd=miss")
	})
	j := flyJob(api, edge, "https://CDN.example/a%20b/feed?x=1", "https://cdn.example/other")
	j.Verify = []purge.Expect{purge.ExpectMiss}
	out := flyRun(t, j)
	require.True(t, out.OK(), "%v", out.Err())

	// Every (URL, started machine) pair, once, PURGE then HEAD, with the
	// machine's id and the URL's own Host.
	started := []string{"148ed193b95e89", "9080524f610d87", "3d8d413b29d089"}
	var purges, checks []string
	for _, s := range edge.requests() {
		assert.Equal(t, "cdn.example", s.Host)
		assert.Contains(t, started, s.Machine, "only started machines are sent anything")
		switch s.Method {
		case "PURGE":
			assert.Equal(t, "purge-t0ken", s.Token)
			purges = append(purges, s.Machine+" "+s.Target)
		case http.MethodHead:
			assert.Empty(t, s.Token, "verify requests never carry the purge token")
			checks = append(checks, s.Machine+" "+s.Target)
		default:
			t.Errorf("unexpected %s", s.Method)
		}
	}
	var want []string
	for _, id := range started {
		want = append(want, id+" /a%20b/feed?x=1", id+" /other")
	}
	assert.ElementsMatch(t, want, purges)
	assert.ElementsMatch(t, want, checks)

	// Results are labelled REGION/MACHINE_ID, and the reports list the
	// skipped machines.
	for _, rep := range out.Reports() {
		assert.Equal(t, []string{"ams/3d8d413b29d089", "iad/148ed193b95e89", "sjc/9080524f610d87"}, labels(rep.Instances))
		require.Len(t, rep.Skipped, 2)
		assert.Contains(t, rep.Summary(), "; 2 skipped (not started)")
	}
	assert.Equal(t, "sjc/9080524f610d87", out.Purge.Result(out.Purge.Index(1, 2)).Instance.String())
	assert.Len(t, out.Skipped, 2)

	var b bytes.Buffer
	require.NoError(t, report.Write(&b, report.JSON, out, report.Options{}))
	doc := reporttest.Require(t, b.Bytes())
	assert.Equal(t, []string{"ams/3d8d413b29d089", "iad/148ed193b95e89", "sjc/9080524f610d87"}, doc.Instances)
	require.Len(t, doc.Purge().Results, 6)
	for _, r := range doc.Purge().Results {
		assert.True(t, r.OK)
		assert.Equal(t, r.Region+"/"+r.MachineID, r.Instance)
		assert.Contains(t, started, r.MachineID)
	}
	assert.Equal(t, []reporttest.Skipped{
		{Instance: "lhr/e784079b449483", Region: "lhr", MachineID: "e784079b449483", State: "stopped"},
		{Instance: "nrt/0e286039f42e86", Region: "nrt", MachineID: "0e286039f42e86", State: "suspended"},
	}, doc.Skipped)

	var text bytes.Buffer
	require.NoError(t, report.Write(&text, report.Text, out, report.Options{Verbose: true}))
	assert.Contains(t, text.String(), "iad/148ed193b95e89")
	assert.Contains(t, text.String(), "skipped nrt/0e286039f42e86 (not started)")
}

func TestFlyRunGoesToTheURLsHostWithoutConnect(t *testing.T) {
	api := startFlyAPI(t, flyFleet[:2], nil)
	edge := startFlyEdge(t, false, nil)
	j := flyJob(api, nil, "http://"+edge.addr+"/feed")
	out := flyRun(t, j)
	require.True(t, out.OK(), "%v", out.Err())
	seen := edge.requests()
	require.Len(t, seen, 2)
	for _, s := range seen {
		assert.Equal(t, edge.addr, s.Host)
		assert.Equal(t, "/feed", s.Target)
	}
	assert.ElementsMatch(t, []string{flyFleet[0].ID, flyFleet[1].ID}, []string{seen[0].Machine, seen[1].Machine})
}

func TestFlyRegionFilter(t *testing.T) {
	api := startFlyAPI(t, flyFleet, nil)
	edge := startFlyEdge(t, false, nil)
	j := flyJob(api, edge, "https://cdn.example/feed")
	j.Fly.Regions = []string{"sjc", "lhr", "iad"}
	out := flyRun(t, j)
	require.True(t, out.OK(), "%v", out.Err())
	assert.Equal(t, []string{"iad/148ed193b95e89", "sjc/9080524f610d87"}, labels(out.Instances))
	require.Len(t, out.Skipped, 1, "machines of other regions are neither sent anything nor listed")
	assert.Equal(t, "lhr/e784079b449483", out.Skipped[0].Instance.String())
	var ids []string
	for _, s := range edge.requests() {
		ids = append(ids, s.Machine)
	}
	assert.ElementsMatch(t, []string{"148ed193b95e89", "9080524f610d87"}, ids)
}

// A region asked for that has no machine (a typo beside right ones, or a
// region the app left) is said in a warning: the run purges the others,
// and does not look as if it had covered that region.
func TestFlyRegionWithoutMachinesBesideOthersIsWarned(t *testing.T) {
	api := startFlyAPI(t, flyFleet, nil)
	edge := startFlyEdge(t, false, nil)
	j := flyJob(api, edge, "https://cdn.example/feed")
	j.Fly.Regions = []string{"iad", "syd", "lhr"}
	out := flyRun(t, j)
	require.True(t, out.OK(), "%v", out.Err())
	assert.Equal(t, []string{"iad/148ed193b95e89"}, labels(out.Instances))
	assert.Equal(t, []string{"the app has no machine in syd, a region asked for: check its name (the machines found are in iad and lhr)"}, out.Warnings)
	assert.Equal(t, out.Warnings, out.Purge.Warnings)

	j.Fly.Regions = []string{"iad", "lhr"}
	assert.Empty(t, flyRun(t, j).Warnings, "a region whose machines are all stopped has machines: they are listed as skipped")
}

// flyDiscoveryErr runs j and returns its *DiscoveryError; nothing may
// have reached the edge.
func flyDiscoveryErr(t *testing.T, j purge.Job, edge *flyEdge) *purge.DiscoveryError {
	t.Helper()
	out, err := j.Run(context.Background())
	require.Error(t, err)
	assert.Nil(t, out)
	var de *purge.DiscoveryError
	require.True(t, errors.As(err, &de), "want *DiscoveryError, got %T: %v", err, err)
	assert.NotContains(t, err.Error(), flyTestToken, "the Fly token never appears in an error")
	assert.Equal(t, "Fly.io app "+flyTestApp, de.Name)
	if edge != nil {
		assert.Empty(t, edge.requests(), "nothing is sent when discovery fails")
	}
	return de
}

func TestFlyTokenRefused(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			api := startFlyAPI(t, flyFleet, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(status)
				// An API that echoes the token must not get it printed.
				_, _ = w.Write([]byte(`{"error":"token ` + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") + ` is not valid"}`))
			})
			edge := startFlyEdge(t, false, nil)
			de := flyDiscoveryErr(t, flyJob(api, edge, "https://cdn.example/feed"), edge)
			assert.Equal(t, purge.KindAPI, de.Kind)
			assert.Contains(t, de.Error(), "the Machines API refused the Fly.io token")
			assert.Contains(t, de.Error(), http.StatusText(status))
		})
	}
	t.Run("message kept when it does not show the token", func(t *testing.T) {
		api := startFlyAPI(t, flyFleet, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"token has expired"}`))
		})
		de := flyDiscoveryErr(t, flyJob(api, nil, "https://cdn.example/feed"), nil)
		assert.Contains(t, de.Error(), "401 Unauthorized: token has expired")
	})
}

func TestFlyUnknownApp(t *testing.T) {
	api := startFlyAPI(t, flyFleet, nil)
	j := flyJob(api, nil, "https://cdn.example/feed")
	j.Fly.App = "nope"
	out, err := j.Run(context.Background())
	require.Error(t, err)
	assert.Nil(t, out)
	var de *purge.DiscoveryError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, purge.KindNXDomain, de.Kind)
	assert.Contains(t, err.Error(), `the Machines API knows no app "nope" (404: app not found)`)
	assert.Equal(t, "/v1/apps/nope/machines", api.requests()[0].URL.Path)
}

func TestFlyBadAnswers(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"html", "<html>oops</html>", "is not a list of machines"},
		{"object", `{"machines":[]}`, "is not a list of machines"},
		{"no id", `[{"id":"","state":"started","region":"iad"}]`, "a machine without an id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := startFlyAPI(t, nil, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(tc.body)) })
			edge := startFlyEdge(t, false, nil)
			de := flyDiscoveryErr(t, flyJob(api, edge, "https://cdn.example/feed"), edge)
			assert.Equal(t, purge.KindBadAnswer, de.Kind)
			assert.Contains(t, de.Error(), tc.want)
		})
	}
}

// Each status of the Machines API says what it means: the token refused
// (401, 403), rate limited (429), a failure on Fly.io's side (5xx); the
// hint, in no flag's name, says what to do about it, and only a refusal
// speaks of the token.
func TestFlyAPIStatusesSayWhatTheyMean(t *testing.T) {
	for _, tc := range []struct {
		status     int
		header     string
		body       string
		err, hint  string
		retryAfter time.Duration
	}{
		{http.StatusTooManyRequests, "30", `{"error":"rate limit exceeded"}`,
			"the Machines API answered 429 Too Many Requests (rate limited): rate limit exceeded",
			"try again in 30s, as the API asks", 30 * time.Second},
		{http.StatusTooManyRequests, "", "",
			"the Machines API answered 429 Too Many Requests (rate limited)", "try again in a minute", 0},
		{http.StatusInternalServerError, "", `{"error":"internal"}`,
			"the Machines API answered 500 Internal Server Error (a failure on Fly.io's side): internal",
			"try again later; https://status.flyio.net shows Fly.io's incidents", 0},
		{http.StatusBadGateway, "", "bad gateway",
			"the Machines API answered 502 Bad Gateway (unavailable for now, on Fly.io's side): bad gateway",
			"try again later; https://status.flyio.net shows Fly.io's incidents", 0},
		{http.StatusServiceUnavailable, "120", `{"error":"service unavailable"}`,
			"the Machines API answered 503 Service Unavailable (unavailable for now, on Fly.io's side): service unavailable",
			"try again in 2m0s, as the API asks; https://status.flyio.net shows Fly.io's incidents", 2 * time.Minute},
		{http.StatusBadRequest, "", `{"error":"bad request"}`,
			"the Machines API answered 400 Bad Request: bad request", "", 0},
	} {
		api := startFlyAPI(t, nil, func(w http.ResponseWriter, r *http.Request) {
			if tc.header != "" {
				w.Header().Set("Retry-After", tc.header)
			}
			w.WriteHeader(tc.status)
			_, _ = w.Write([]byte(tc.body))
		})
		de := flyDiscoveryErr(t, flyJob(api, nil, "https://cdn.example/feed"), nil)
		assert.Equal(t, purge.KindAPI, de.Kind)
		assert.Equal(t, tc.status, de.Status)
		assert.Equal(t, tc.retryAfter, de.RetryAfter)
		assert.Equal(t, "discover Fly.io app "+flyTestApp+": "+tc.err, de.Error())
		assert.Equal(t, tc.hint, de.Hint())
		assert.NotContains(t, de.Error()+de.Hint(), "token", "only a refusal speaks of the token")
	}
}

// The list is read up to 16 MiB: a larger answer is said to be larger,
// not cut and then misread.
func TestFlyAPIAnswerLargerThanTheLimit(t *testing.T) {
	one := `{"id":"148ed193b95e89","name":"cdn-iad","state":"started","region":"iad","private_ip":"fdaa:0:1::2"},`
	api := startFlyAPI(t, nil, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("["))
		chunk := []byte(strings.Repeat(one, 1000))
		for n := 0; n <= 16<<20; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		_, _ = w.Write([]byte(`{"id":"3d8d413b29d089","state":"started","region":"ams"}]`))
	})
	de := flyDiscoveryErr(t, flyJob(api, nil, "https://cdn.example/feed"), nil)
	assert.Equal(t, purge.KindBadAnswer, de.Kind)
	assert.Contains(t, de.Error(), "the Machines API's answer is larger than 16 MiB, the most read of it: its list of machines cannot be read whole")
	assert.NotContains(t, de.Error(), "JSON")

	// Exactly at the limit is read (and here is not JSON, said as such).
	api = startFlyAPI(t, nil, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(bytes.Repeat([]byte(" "), 16<<20))
	})
	de = flyDiscoveryErr(t, flyJob(api, nil, "https://cdn.example/feed"), nil)
	assert.Contains(t, de.Error(), "is not a list of machines")
}

func TestFlyNoStartedMachine(t *testing.T) {
	api := startFlyAPI(t, flyFleet[3:], nil)
	edge := startFlyEdge(t, false, nil)
	de := flyDiscoveryErr(t, flyJob(api, edge, "https://cdn.example/feed"), edge)
	assert.Equal(t, purge.KindNoRecords, de.Kind)
	assert.Contains(t, de.Error(), "the app has no started machine (2 listed: 1 stopped, 1 suspended)")

	api = startFlyAPI(t, flyFleet, nil)
	j := flyJob(api, edge, "https://cdn.example/feed")
	j.Fly.Regions = []string{"lhr", "cdg"}
	de = flyDiscoveryErr(t, j, edge)
	assert.Equal(t, purge.KindNoRecords, de.Kind)
	assert.Contains(t, de.Error(), "the app has no started machine in lhr or cdg (1 listed there: 1 stopped)")

	de = flyDiscoveryErr(t, flyJob(startFlyAPI(t, nil, nil), edge, "https://cdn.example/feed"), edge)
	assert.Contains(t, de.Error(), "the app has no machines (the Machines API listed none)")
}

// A region no machine is in names the regions there are (the front end
// words the did-you-mean).
func TestFlyRegionWithoutMachinesNamesTheRegions(t *testing.T) {
	api := startFlyAPI(t, flyFleet, nil)
	j := flyJob(api, nil, "https://cdn.example/feed")
	j.Fly.Regions = []string{"iadd"}
	de := flyDiscoveryErr(t, j, nil)
	assert.Equal(t, purge.KindNoRecords, de.Kind)
	assert.Contains(t, de.Error(), "the app has no machine in iadd: its 5 machines are in ams, iad, lhr, nrt and sjc")
	assert.Equal(t, []string{"ams", "iad", "lhr", "nrt", "sjc"}, de.Regions)
}

func TestFlyAPIUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	j := flyJob(&flyAPI{URL: "http://" + addr}, nil, "https://cdn.example/feed")
	de := flyDiscoveryErr(t, j, nil)
	assert.Equal(t, purge.KindUnreachable, de.Kind)
	assert.Contains(t, de.Error(), "the Machines API at http://"+addr+" is unreachable")
}

func TestFlyAPITimeout(t *testing.T) {
	release := make(chan struct{})
	api := startFlyAPI(t, nil, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	j := flyJob(api, nil, "https://cdn.example/feed")
	j.Timeout = 100 * time.Millisecond
	de := flyDiscoveryErr(t, j, nil)
	assert.Equal(t, purge.KindTimeout, de.Kind)
	assert.Contains(t, de.Error(), "did not answer within 100ms")
}

// A run stopped while the Machines API is asked (the job's deadline, or
// its caller, with a cause) says what stopped it, not that the API was
// slow: the limit that cut it is the one to change.
func TestFlyAPIStoppedSaysWhy(t *testing.T) {
	asked := make(chan struct{}, 4)
	release := make(chan struct{})
	defer close(release)
	api := startFlyAPI(t, nil, func(w http.ResponseWriter, r *http.Request) {
		asked <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	j := flyJob(api, nil, "https://cdn.example/feed")
	j.Deadline = 100 * time.Millisecond // Timeout stays 5s
	de := flyDiscoveryErr(t, j, nil)
	assert.Equal(t, purge.KindStopped, de.Kind)
	assert.Contains(t, de.Error(), "stopped before the Machines API at "+api.URL+" answered: the job's deadline passed")
	assert.ErrorIs(t, de, purge.ErrDeadline)
	assert.NotContains(t, de.Error(), "5s")
	<-asked

	ctx, cancel := context.WithCancelCause(context.Background())
	go func() {
		<-asked
		cancel(errors.New("interrupted by SIGINT (Ctrl-C)"))
	}()
	_, err := flyJob(api, nil, "https://cdn.example/feed").Run(ctx)
	require.ErrorAs(t, err, &de)
	assert.Equal(t, purge.KindStopped, de.Kind)
	assert.Contains(t, de.Error(), "stopped before the Machines API at "+api.URL+" answered: interrupted by SIGINT (Ctrl-C)")
	assert.NotErrorIs(t, de, purge.ErrDeadline)
}

// The edge answering for a machine that is not running (Fly's proxy has
// no fallback with fly-force-instance-id) is that machine's failure, with
// the edge's reason; the others succeed.
func TestFlyEdgeErrorIsThatMachinesFailure(t *testing.T) {
	const dead = "9080524f610d87"
	api := startFlyAPI(t, flyFleet, nil)
	edge := startFlyEdge(t, false, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Fly-Force-Instance-Id") == dead {
			http.Error(w, "no known healthy instances found for route: machine "+dead+" is stopped", http.StatusServiceUnavailable)
		}
	})
	out := flyRun(t, flyJob(api, edge, "https://cdn.example/feed"))
	require.False(t, out.OK())
	assert.Equal(t, 2, out.Purge.InstancesOK())
	for k := range out.Purge.Len() {
		res := out.Purge.Result(k)
		if res.Instance.MachineID != dead {
			assert.True(t, res.OK, res.Instance.String())
			continue
		}
		assert.False(t, res.OK)
		assert.Equal(t, http.StatusServiceUnavailable, res.Status)
		assert.Equal(t, purge.DefaultAttempts, res.Attempts, "a 503 is tried again")
		var ie *purge.InstanceError
		require.ErrorAs(t, res.Err, &ie)
		assert.Equal(t, "sjc/"+dead+`: 503 Service Unavailable: "no known healthy instances found for route: machine `+dead+` is stopped"`, ie.Error())
	}
}

func TestFlyHTTPSNamesTheURLsHostThroughConnect(t *testing.T) {
	api := startFlyAPI(t, flyFleet, nil)
	edge := startFlyEdge(t, true, nil) // httptest's certificate is for example.com and 127.0.0.1
	roots := x509.NewCertPool()
	roots.AddCert(edge.srv.Certificate())

	j := flyJob(api, edge, "https://example.com/feed")
	j.Scheme, j.RootCAs = "", roots // https: edge mode's default
	out := flyRun(t, j)
	require.True(t, out.OK(), "%v", out.Err())
	seen := edge.requests()
	require.Len(t, seen, 3)
	for _, s := range seen {
		assert.Equal(t, "example.com", s.SNI, "TLS names the URL's host, not the connect address")
		assert.Equal(t, "example.com", s.Host)
	}

	// A URL whose host the certificate does not name fails on every machine.
	j = flyJob(api, edge, "https://cdn.other/feed")
	j.Scheme, j.RootCAs, j.Attempts = "https", roots, 1
	out = flyRun(t, j)
	require.False(t, out.OK())
	assert.Equal(t, 0, out.Purge.InstancesOK())
	var ce x509.HostnameError
	require.ErrorAs(t, out.Purge.Result(0).Err, &ce)
	assert.Len(t, edge.requests(), 3, "nothing sent over a connection whose certificate failed")

	// Insecure skips the check.
	j.Insecure, j.RootCAs = true, nil
	out = flyRun(t, j)
	require.True(t, out.OK(), "%v", out.Err())
	for _, s := range edge.requests()[3:] {
		assert.Equal(t, "cdn.other", s.SNI)
	}
}

// A machine id is written into a request header: one from the API that is
// not a plain token must be refused, or an API answer could add headers
// to every purge.
func TestFlyMachineIDCannotInjectHeaders(t *testing.T) {
	api := startFlyAPI(t, []flyMachine{{ID: "148ed193b95e89\r\nX-Injected: 1", State: "started", Region: "iad"}}, nil)
	edge := startFlyEdge(t, false, nil)
	de := flyDiscoveryErr(t, flyJob(api, edge, "https://cdn.example/feed"), edge)
	assert.Equal(t, purge.KindBadAnswer, de.Kind)
}

// flyctl prints tokens as "FlyV1 fm2_..." (macaroons), and that whole
// string is what people put in FLY_API_TOKEN: it is an Authorization value
// of its own, not a bearer token.
func TestFlyMacaroonTokenIsSentWithItsOwnScheme(t *testing.T) {
	const macaroon = "FlyV1 fm2_lJPECAAAAAAAAMnd,fm2_lJPEEGUXkx"
	api := startFlyAPI(t, flyFleet, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("[]")) })
	j := flyJob(api, nil, "https://cdn.example/feed")
	j.Fly.Token = macaroon
	_, _ = j.Plan(context.Background())
	require.NotEmpty(t, api.requests())
	assert.Equal(t, macaroon, api.requests()[0].Header.Get("Authorization"))
}

// Discovery errors from the Machines API must not carry the DNS advice
// that DNS discovery's errors end with.
func TestFlyDiscoveryErrorsGiveNoDNSAdvice(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	slow := startFlyAPI(t, nil, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	unknown := flyJob(startFlyAPI(t, flyFleet, nil), nil, "https://cdn.example/feed")
	unknown.Fly.App = "nope"
	timeout := flyJob(slow, nil, "https://cdn.example/feed")
	timeout.Timeout = 50 * time.Millisecond
	for _, j := range []purge.Job{
		unknown,
		flyJob(&flyAPI{URL: "http://127.0.0.1:1"}, nil, "https://cdn.example/feed"),
		timeout,
		flyJob(startFlyAPI(t, flyFleet[3:], nil), nil, "https://cdn.example/feed"),
	} {
		_, err := j.Run(context.Background())
		require.Error(t, err)
		for _, dns := range []string{"resolver", ".internal", "AAAA", "DNS"} {
			assert.NotContains(t, err.Error(), dns)
		}
	}
}
