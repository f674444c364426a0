package purge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cdnpurge/cdnpurge/purge/cachestatus"
)

// Expect is what verification wants every instance to say about a URL.
type Expect string

// The expectations.
const (
	ExpectHit   Expect = "hit"   // served from cache: fresh or stale
	ExpectFresh Expect = "fresh" // served from cache and not stale
	ExpectStale Expect = "stale" // served from cache past its TTL
	ExpectMiss  Expect = "miss"  // fetched from the origin (what a purge must cause)
	ExpectAny   Expect = "any"   // any answer at all
)

// ParseExpect accepts hit, fresh, stale, miss or any.
func ParseExpect(s string) (Expect, error) {
	switch e := Expect(strings.ToLower(strings.TrimSpace(s))); e {
	case ExpectHit, ExpectFresh, ExpectStale, ExpectMiss, ExpectAny:
		return e, nil
	}
	return "", fmt.Errorf("expect %q: use hit, fresh, stale, miss or any", s)
}

// Match says whether a class satisfies the expectation.
func (e Expect) Match(c cachestatus.Class) bool {
	switch e {
	case ExpectHit:
		return c.IsHit()
	case ExpectFresh:
		return c == cachestatus.Hit
	case ExpectStale:
		return c == cachestatus.Stale
	case ExpectMiss:
		return c == cachestatus.Miss
	case ExpectAny:
		return true
	}
	return false
}

// DefaultVerifyMethod is the method Verify uses when Options.Method is
// empty: HEAD never pulls a body.
const DefaultVerifyMethod = http.MethodHead

// Check is what one instance said about one URL.
type Check struct {
	URL      string `json:"url"`
	Instance string `json:"instance"`
	Status   int    `json:"status"` // 0 when no response came
	// Class is the cache's verdict (hit, stale, miss, bypass, synthetic, unknown).
	Class cachestatus.Class `json:"class"`
	// CacheStatus is the raw Cache-Status (or X-Cache) value; Source says which.
	CacheStatus string   `json:"cache_status,omitempty"`
	Source      string   `json:"source,omitempty"`
	TTL         *float64 `json:"ttl,omitempty"`
	Age         string   `json:"age,omitempty"`
	Matched     bool     `json:"matched"`
	Attempts    int      `json:"attempts"`
	// BytesRead counts the bytes read from the instance for this check
	// (headers, and no more body than the read buffer took in).
	BytesRead int64         `json:"bytes_read"`
	Duration  time.Duration `json:"-"`
	// DurationMS is Duration in milliseconds, for JSON.
	DurationMS float64 `json:"duration_ms"`
	Error      string  `json:"error,omitempty"`
}

// VerifyReport is the outcome of Verify: one Check per (URL, instance),
// URL-major.
type VerifyReport struct {
	Expect    Expect        `json:"expect"`
	Method    string        `json:"method"`
	URLs      []string      `json:"urls"`
	Instances []string      `json:"instances"`
	Checks    []Check       `json:"checks"`
	Rounds    int           `json:"rounds"` // more than 1 when polling
	Duration  time.Duration `json:"-"`
}

// verifyJSON is the JSON form of a VerifyReport: its fields plus ok,
// summary and duration_ms.
type verifyJSON struct {
	OK         bool     `json:"ok"`
	Summary    string   `json:"summary"`
	Expect     Expect   `json:"expect"`
	Method     string   `json:"method"`
	Rounds     int      `json:"rounds"`
	DurationMS float64  `json:"duration_ms"`
	URLs       []string `json:"urls"`
	Instances  []string `json:"instances"`
	Checks     []Check  `json:"checks"`
}

func (r *VerifyReport) jsonView() verifyJSON {
	return verifyJSON{r.OK(), r.Summary(), r.Expect, r.Method, r.Rounds, ms(r.Duration), r.URLs, r.Instances, r.Checks}
}

// MarshalJSON adds ok, summary and duration_ms.
func (r *VerifyReport) MarshalJSON() ([]byte, error) { return json.Marshal(r.jsonView()) }

// OK says whether every check matched.
func (r *VerifyReport) OK() bool {
	return len(r.Checks) > 0 && len(r.Unmatched()) == 0
}

// Unmatched returns the checks that did not match.
func (r *VerifyReport) Unmatched() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.Matched {
			out = append(out, c)
		}
	}
	return out
}

// Summary is one line, e.g. "verified 1 URL on 3/3 instances: miss as expected".
func (r *VerifyReport) Summary() string {
	bad := map[string]bool{}
	for _, c := range r.Unmatched() {
		bad[c.Instance] = true
	}
	polled := ""
	if r.Rounds > 1 {
		polled = fmt.Sprintf(", %d rounds", r.Rounds)
	}
	s := fmt.Sprintf("verified %s on %d/%d instances: expected %s (%s%s)", plural(len(r.URLs), "URL"),
		len(r.Instances)-len(bad), len(r.Instances), r.Expect, fmtDur(r.Duration), polled)
	if n := len(r.Unmatched()); n > 0 {
		s = fmt.Sprintf("FAILED: %s; %d of %d checks did not match", s, n, len(r.Checks))
	}
	return s
}

// Write writes the report in format f.
func (r *VerifyReport) Write(w io.Writer, f Format) error {
	if f == FormatJSON {
		return writeJSON(w, r.jsonView(), len(r.Checks))
	}
	t := table{title: "cdnpurge verify: expect " + string(r.Expect), summary: r.Summary(),
		header: []string{"URL", "INSTANCE", "STATUS", "CACHE", "AGE", "TIME", "RESULT", "HEADER"}}
	if f == FormatMarkdown {
		t.header = []string{"URL", "Instance", "Status", "Cache", "Age", "Time", "Result", "Header"}
	}
	for _, c := range r.Checks {
		status, result, age := "-", "ok", c.Age
		if c.Status != 0 {
			status = strconv.Itoa(c.Status)
		}
		if age == "" {
			age = "-"
		}
		switch {
		case c.Error != "":
			result = "FAILED: " + c.Error
		case !c.Matched:
			result = fmt.Sprintf("FAILED: %s, expected %s", c.Class, r.Expect)
		}
		hdr := c.CacheStatus
		if hdr == "" {
			hdr = "(none)"
		}
		t.rows = append(t.rows, []string{c.URL, c.Instance, status, string(c.Class), age, fmtDur(c.Duration), result, hdr})
	}
	return t.write(w, f)
}

// Verify asks every instance for every URL (HEAD unless o.Method says GET)
// with the URL's Host and o.Header, reads what the cache says it did, and
// checks it against expect. The token is not sent. Connection errors and
// timeouts are retried as in Run; any response is an answer. Bodies are not
// read: a GET's connection is closed after the headers.
func Verify(ctx context.Context, o Options, expect Expect, instances []Instance, urls []*url.URL) (*VerifyReport, error) {
	if o.Method == "" {
		o.Method = DefaultVerifyMethod
	}
	o.Token = ""
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if _, err := ParseExpect(string(expect)); err != nil {
		return nil, err
	}
	if len(instances) == 0 {
		return nil, errors.New("no instances to verify")
	}
	if len(urls) == 0 {
		return nil, errors.New("no URLs to verify")
	}
	e := &engine{o: o, instances: instances, urls: urls, tlsConfig: newTLSConfig(o)}
	e.do = func(ctx context.Context, c *instanceConn, u *url.URL, in Instance, a *attempt) bool {
		resp, err := c.RoundTrip(ctx, e.newRequest(o.Method, u))
		if err != nil {
			a.err = err
			return true
		}
		a.status, a.header = resp.StatusCode, resp.Header
		_ = resp.Body.Close() // headers are all we need
		return false
	}
	start := time.Now()
	grid := e.run(ctx)
	rep := &VerifyReport{Expect: expect, Method: o.Method, Rounds: 1, Duration: time.Since(start)}
	for _, in := range instances {
		rep.Instances = append(rep.Instances, in.String())
	}
	for ui, u := range urls {
		rep.URLs = append(rep.URLs, DisplayURL(u))
		for ii, in := range instances {
			rep.Checks = append(rep.Checks, newCheck(grid[ui][ii], DisplayURL(u), in, expect))
		}
	}
	return rep, nil
}

func newCheck(oc outcome, u string, in Instance, expect Expect) Check {
	c := Check{URL: u, Instance: in.String(), Status: oc.last.status, Attempts: oc.attempts, Duration: oc.dur, DurationMS: ms(oc.dur),
		BytesRead: oc.bytesRead, Class: cachestatus.Unknown}
	if oc.last.err != nil {
		c.Error = oc.last.err.Error()
		return c
	}
	st := cachestatus.FromHeader(oc.last.header)
	c.Class, c.CacheStatus, c.Source, c.TTL = st.Class, st.Raw, st.Source, st.TTL
	c.Age = oc.last.header.Get("Age")
	c.Matched = expect.Match(st.Class)
	if !c.Matched && st.Source == "" {
		c.Error = fmt.Sprintf("%s: no Cache-Status or X-Cache header in the answer; cannot tell hit from miss", in)
	}
	return c
}

// VerifyUntil runs Verify, then asks again every interval the instances
// whose checks did not match, until all match or wait is over. It returns
// the last state of each check.
func VerifyUntil(ctx context.Context, o Options, expect Expect, instances []Instance, urls []*url.URL, wait, interval time.Duration) (*VerifyReport, error) {
	start := time.Now()
	rep, err := Verify(ctx, o, expect, instances, urls)
	if err != nil || wait <= 0 {
		return rep, err
	}
	if interval <= 0 {
		interval = time.Second
	}
	deadline := start.Add(wait)
	for !rep.OK() && time.Now().Add(interval).Before(deadline) {
		if sleepCtx(ctx, interval) != nil {
			break
		}
		// Ask again only the instances that did not match, URL by URL.
		for ui, u := range urls {
			var idx []int
			var subset []Instance
			for ii := range instances {
				if !rep.Checks[ui*len(instances)+ii].Matched {
					idx = append(idx, ii)
					subset = append(subset, instances[ii])
				}
			}
			if len(subset) == 0 {
				continue
			}
			again, err := Verify(ctx, o, expect, subset, []*url.URL{u})
			if err != nil {
				return nil, err
			}
			for k, ii := range idx {
				rep.Checks[ui*len(instances)+ii] = again.Checks[k]
			}
		}
		rep.Rounds++
	}
	rep.Duration = time.Since(start)
	return rep, nil
}
