package purge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Result is what happened to one URL on one instance.
type Result struct {
	URL      string        `json:"url"`
	Instance string        `json:"instance"`
	Status   int           `json:"status"` // 0 when no response came
	OK       bool          `json:"ok"`     // a 2xx response
	Attempts int           `json:"attempts"`
	Duration time.Duration `json:"-"`
	// DurationMS is Duration in milliseconds, for JSON.
	DurationMS float64 `json:"duration_ms"`
	Error      string  `json:"error,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Report is the outcome of a Run: one Result per (URL, instance), URL-major,
// instances in the order they were given.
type Report struct {
	Method    string        `json:"method"`
	URLs      []string      `json:"urls"`
	Instances []string      `json:"instances"`
	Results   []Result      `json:"results"`
	Duration  time.Duration `json:"-"`
}

// reportJSON is the JSON form of a Report: its fields plus ok, summary and
// duration_ms.
type reportJSON struct {
	OK         bool     `json:"ok"`
	Summary    string   `json:"summary"`
	Method     string   `json:"method"`
	DurationMS float64  `json:"duration_ms"`
	URLs       []string `json:"urls"`
	Instances  []string `json:"instances"`
	Results    []Result `json:"results"`
}

func (r *Report) jsonView() reportJSON {
	return reportJSON{r.OK(), r.Summary(), r.Method, ms(r.Duration), r.URLs, r.Instances, r.Results}
}

// MarshalJSON adds ok, summary and duration_ms to the fields above.
func (r *Report) MarshalJSON() ([]byte, error) { return json.Marshal(r.jsonView()) }

// OK says whether every instance answered 2xx for every URL.
func (r *Report) OK() bool {
	return len(r.Failed()) == 0 && len(r.Results) > 0
}

// Failed returns the results that were not a 2xx answer.
func (r *Report) Failed() []Result {
	var f []Result
	for _, res := range r.Results {
		if !res.OK {
			f = append(f, res)
		}
	}
	return f
}

// InstancesOK counts the instances on which every URL succeeded.
func (r *Report) InstancesOK() int {
	bad := map[string]bool{}
	for _, res := range r.Results {
		if !res.OK {
			bad[res.Instance] = true
		}
	}
	return len(r.Instances) - len(bad)
}

// Summary is one line, e.g. "purged 3 URLs on 12/12 instances".
func (r *Report) Summary() string {
	verb := "purged"
	if r.Method != DefaultMethod {
		verb = "sent " + r.Method + " for"
	}
	s := fmt.Sprintf("%s %s on %d/%d instances in %s", verb, plural(len(r.URLs), "URL"), r.InstancesOK(), len(r.Instances), fmtDur(r.Duration))
	if f := r.Failed(); len(f) > 0 {
		s = fmt.Sprintf("FAILED: %s; %d of %d requests failed", s, len(f), len(r.Results))
	}
	return s
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// Run sends Options.Method for every URL to every instance, all at once
// within the concurrency bounds, and reports each (URL, instance) pair. The
// error is non-nil only for bad arguments, when nothing was sent; failures of
// instances are in the Report (see Report.OK). The context bounds the whole
// run: when it ends, requests still pending are reported as failed.
func Run(ctx context.Context, o Options, instances []Instance, urls []*url.URL) (*Report, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(instances) == 0 {
		return nil, errors.New("no instances to purge")
	}
	if len(urls) == 0 {
		return nil, errors.New("no URLs to purge")
	}
	e := &engine{o: o, instances: instances, urls: urls, tlsConfig: newTLSConfig(o)}
	e.do = func(ctx context.Context, rt *instanceConn, u *url.URL, in Instance, a *attempt) bool {
		req := e.newRequest(o.Method, u)
		if o.Token != "" {
			req.Header.Set(o.TokenHeader, o.Token)
		}
		resp, err := rt.RoundTrip(ctx, req)
		if err != nil {
			a.err = err
			return true
		}
		a.status, a.header = resp.StatusCode, resp.Header
		ok := resp.StatusCode >= 200 && resp.StatusCode < 300
		a.detail = readBody(resp.Body, !ok)
		return retryable(resp.StatusCode)
	}
	start := time.Now()
	grid := e.run(ctx)
	rep := &Report{Method: o.Method, Duration: time.Since(start)}
	for _, in := range instances {
		rep.Instances = append(rep.Instances, in.String())
	}
	names := rep.Instances
	rep.Results = make([]Result, 0, len(urls)*len(instances))
	for ui, u := range urls {
		shown := DisplayURL(u)
		rep.URLs = append(rep.URLs, shown)
		for ii, in := range instances {
			oc := grid[ui][ii]
			res := Result{URL: shown, Instance: names[ii], Status: oc.last.status, Attempts: oc.attempts, Duration: oc.dur, DurationMS: ms(oc.dur)}
			res.OK = res.Status >= 200 && res.Status < 300 && oc.last.err == nil
			res.Error = redact(purgeError(oc, in, o), o.Token)
			rep.Results = append(rep.Results, res)
		}
	}
	return rep, nil
}

func purgeError(oc outcome, in Instance, o Options) string {
	a := oc.last
	switch {
	case oc.attempts == 0:
		return "not sent: the run was stopped first"
	case a.err != nil:
		return a.err.Error()
	case a.status >= 200 && a.status < 300:
		return ""
	case a.status == http.StatusUnauthorized || a.status == http.StatusForbidden:
		if o.Token == "" {
			return fmt.Sprintf("%s: %d %s: no token was sent and the instance wants one; set PURGE_TOKEN or --token-file", in, a.status, http.StatusText(a.status))
		}
		return fmt.Sprintf("token rejected by %s: %d %s", in, a.status, http.StatusText(a.status))
	case a.status == http.StatusMethodNotAllowed || a.status == http.StatusNotImplemented:
		return fmt.Sprintf("%s: %d %s: the instance does not accept %s; check its VCL", in, a.status, http.StatusText(a.status), o.Method)
	case a.status >= 300 && a.status < 400:
		return fmt.Sprintf("%s: %d %s (redirects are not followed: a purge must reach the cache itself)", in, a.status, http.StatusText(a.status))
	}
	msg := fmt.Sprintf("%s: %d %s", in, a.status, http.StatusText(a.status))
	if a.detail != "" {
		msg += ": " + a.detail
	}
	return msg
}

// redact removes the token from text that may echo it (an error body, say).
func redact(s, token string) string {
	if token == "" || s == "" {
		return s
	}
	return strings.ReplaceAll(s, token, "[token]")
}
