package report_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cdnpurge/cdnpurge/internal/hostile"
	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/report"
	"github.com/cdnpurge/cdnpurge/purge/report/reporttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func server(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	if h == nil {
		h = func(http.ResponseWriter, *http.Request) {}
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

// serverB is server for benchmarks.
func serverB(b *testing.B) string {
	s := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	b.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

func run(t *testing.T, j purge.Job) *purge.Outcome {
	t.Helper()
	j.Timeout, j.Backoff = 2*time.Second, time.Millisecond
	out, err := j.Run(context.Background())
	require.NoError(t, err)
	return out
}

func write(t *testing.T, f report.Format, out *purge.Outcome, o report.Options) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, report.Write(&b, f, out, o))
	return b.String()
}

func TestFormats(t *testing.T) {
	a := server(t, nil)
	b := server(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotFound) })
	out := run(t, purge.Job{Instances: []string{a, b}, URLs: []string{"http://example.com/x|y"}, Attempts: 1})

	js := write(t, report.JSON, out, report.Options{})
	decoded := reporttest.Require(t, js)
	assert.False(t, decoded.OK)
	assert.ElementsMatch(t, []string{a, b}, decoded.Instances)
	p := decoded.Only(t)
	assert.Equal(t, "PURGE", p.Method)
	assert.Equal(t, []string{"http://example.com/x|y"}, p.URLs)
	require.Len(t, p.Results, 2)
	byInstance := map[string]int{}
	for i, r := range p.Results {
		byInstance[r.Instance] = i
	}
	ok, bad := p.Results[byInstance[a]], p.Results[byInstance[b]]
	assert.Equal(t, 200, ok.Status)
	assert.True(t, ok.OK)
	assert.Empty(t, ok.Error)
	assert.Positive(t, ok.DurationMS)
	assert.Equal(t, 404, bad.Status)
	assert.Contains(t, bad.Error, "404 Not Found")
	assert.NotContains(t, bad.Error, b, "the instance has its own field")

	md := write(t, report.Markdown, out, report.Options{})
	assert.Contains(t, md, "| Url | Instance | Status | Attempts | Time | Result |")
	assert.Contains(t, md, "`http://example.com/x\\|y`")
	assert.True(t, strings.HasPrefix(md, "### cdnpurge purge\n"))

	txt := write(t, report.Text, out, report.Options{})
	lines := strings.Split(strings.TrimSpace(txt), "\n")
	require.Len(t, lines, 5, txt)
	assert.True(t, strings.HasPrefix(lines[0], "URL"))
	assert.Equal(t, strings.Index(lines[0], "INSTANCE"), strings.Index(lines[1], "127.0.0.1:"), "columns are aligned")
	assert.True(t, strings.HasPrefix(lines[3], "[1] 404 Not Found: "), "the long reason follows the table: %s", txt)
	assert.True(t, strings.HasPrefix(lines[4], "FAILED: purged 1 of 2 (1 URL x 2 instances)"), lines[4])
	assert.Contains(t, md, "`FAILED: 404 Not Found: ", "Markdown keeps the reason in its cell (a browser wraps it)")
}

// One long failure does not pad the RESULT column of every row: its cell
// says FAILED and a reference, and the reason follows the table, once for
// every row that shares it. A short reason stays in its cell.
func TestLongReasonsFollowTheTable(t *testing.T) {
	long := "the upstream said " + strings.Repeat("no ", 100)
	ok := server(t, func(http.ResponseWriter, *http.Request) {})
	bad := server(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/short") {
			c, _, err := w.(http.Hijacker).Hijack() // no answer: a short reason
			if err == nil {
				_ = c.Close()
			}
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(long))
	})
	var urls []string
	for i := range 5 {
		urls = append(urls, fmt.Sprintf("http://example.com/page/%d", i))
	}
	out := run(t, purge.Job{Instances: []string{ok, bad}, URLs: append(urls, "http://example.com/short"), Attempts: 1})
	txt := write(t, report.Text, out, report.Options{})
	var rows, notes []string
	for _, l := range strings.Split(txt, "\n") {
		switch {
		case strings.HasPrefix(l, "http://"):
			rows = append(rows, l)
		case strings.HasPrefix(l, "["):
			notes = append(notes, l)
		}
	}
	require.Len(t, rows, 12, txt)
	width := len(rows[0])
	for _, r := range rows {
		assert.LessOrEqual(t, len(r), 120, "no row is padded to the long reason: %q", r)
		if strings.HasSuffix(r, "ok") {
			width = len(r)
		}
	}
	assert.Less(t, width, 100, "an ok row is as wide as its own cells: %s", txt)
	require.Len(t, notes, 1, "the five rows with the same reason share one note: %s", txt)
	assert.True(t, strings.HasPrefix(notes[0], "[1] 403 Forbidden: "), notes[0])
	assert.Contains(t, notes[0], "no no no", "the reason is there in full")
	assert.Equal(t, 5, strings.Count(txt, "FAILED [1]"), txt)
	assert.Contains(t, txt, "FAILED: no answer (closed after 5 answers)\n", "a short reason stays in its cell: %s", txt)
}

// A verify step's rows are results like a purge's: "ok" says the check
// matched, and "age" is a number.
func TestVerifyJSON(t *testing.T) {
	in := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Status", "c; hit; ttl=7")
		w.Header().Set("Age", "3")
	})
	out := run(t, purge.Job{Instances: []string{in}, URLs: []string{"https://example.com/"}, VerifyOnly: true, Verify: []purge.Expect{purge.ExpectMiss}})
	js := write(t, report.JSON, out, report.Options{})
	got := reporttest.Require(t, js)
	assert.False(t, got.OK)
	assert.Nil(t, got.Purge())
	v := got.Only(t)
	assert.Equal(t, "verify", v.Name)
	assert.Equal(t, "miss", v.Expect)
	assert.Equal(t, 1, v.Rounds)
	require.Len(t, v.Results, 1)
	c := v.Results[0]
	assert.Equal(t, "hit", c.Class)
	assert.Equal(t, "c; hit; ttl=7", c.CacheStatus)
	assert.Equal(t, "cache-status", c.Source)
	assert.Equal(t, 7.0, *c.TTL)
	require.NotNil(t, c.Age)
	assert.Equal(t, 3, *c.Age)
	assert.Contains(t, js, `"age":3,`, "a number")
	assert.False(t, c.OK)
	assert.Positive(t, c.BytesRead)
	assert.Contains(t, c.Error, "hit, expected miss")

	txt := write(t, report.Text, out, report.Options{})
	assert.Contains(t, txt, "FAILED: hit, expected miss")
	assert.Contains(t, txt, "c; hit; ttl=7")
	md := write(t, report.Markdown, out, report.Options{})
	assert.True(t, strings.HasPrefix(md, "### cdnpurge verify: expect miss"))
}

func TestPurgeAndVerifyJSON(t *testing.T) {
	in := server(t, func(w http.ResponseWriter, r *http.Request) { w.Header().Set("Cache-Status", "c; fwd=miss") })
	out := run(t, purge.Job{Instances: []string{in}, URLs: []string{"https://example.com/"}, Verify: []purge.Expect{purge.ExpectMiss, purge.ExpectHit}})
	got := reporttest.Require(t, write(t, report.JSON, out, report.Options{}))
	assert.False(t, got.OK)
	assert.Equal(t, "FAILED: verify hit: 1 of 1 checks did not match on 1 of 1 instances", got.Summary)
	require.Len(t, got.Steps, 3)
	assert.Equal(t, []string{"purge", "verify", "verify"}, []string{got.Steps[0].Name, got.Steps[1].Name, got.Steps[2].Name})
	assert.True(t, got.Purge().OK)
	require.Len(t, got.Purge().Results, 1)
	assert.Equal(t, 200, got.Purge().Results[0].Status)
	v := got.Verify()
	require.Len(t, v, 2)
	assert.Equal(t, []string{"miss", "hit"}, []string{v[0].Expect, v[1].Expect})
	assert.True(t, v[0].OK)
	assert.False(t, v[1].OK)

	// Every step passed: the summary is each step's.
	ok := server(t, func(w http.ResponseWriter, r *http.Request) { w.Header().Set("Cache-Status", "c; fwd=miss") })
	out = run(t, purge.Job{Instances: []string{ok}, URLs: []string{"https://example.com/"}, Verify: []purge.Expect{purge.ExpectMiss}})
	got = reporttest.Require(t, write(t, report.JSON, out, report.Options{}))
	assert.True(t, got.OK)
	assert.Equal(t, got.Steps[0].Summary+"; then "+got.Steps[1].Summary, got.Summary)
}

// Large runs: text and markdown show a line per instance and the failures;
// JSON has every row, in the same layout as a small run's.
func TestLargeRunsAreSummarised(t *testing.T) {
	ok := server(t, nil)
	flaky := server(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/7") {
			http.Error(w, "nope", http.StatusBadRequest)
		}
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := l.Addr().String()
	require.NoError(t, l.Close())
	var urls []string
	for i := range 600 {
		urls = append(urls, fmt.Sprintf("https://example.com/p/%d", i))
	}
	out := run(t, purge.Job{Instances: []string{ok, flaky, dead}, URLs: urls})
	txt := write(t, report.Text, out, report.Options{})
	assert.Less(t, strings.Count(txt, "\n"), 20, txt)
	assert.Contains(t, txt, "INSTANCE")
	assert.Contains(t, txt, "600/600")
	assert.Contains(t, txt, "599/600")
	assert.Contains(t, txt, "/p/7", "every failed row is listed")
	assert.Regexp(t, regexp.QuoteMeta(dead)+`: \d+ URLs not sent: instance unreachable`, txt)
	assert.Contains(t, txt, "connection refused")

	verbose := write(t, report.Text, out, report.Options{Verbose: true})
	assert.Greater(t, strings.Count(verbose, "\n"), 1800)

	md := write(t, report.Markdown, out, report.Options{})
	assert.Less(t, len(md), 8000)

	js := write(t, report.JSON, out, report.Options{})
	got := reporttest.Require(t, js)
	assert.Len(t, got.Only(t).Results, 1800)
	assert.Equal(t, 1800, strings.Count(js, "\n        {\"url\":"), "a row a line")
}

// A result's ttl is the number its header stated, to every digit an RFC
// 8941 decimal can have (12 before the point, 3 after): not 59.900001525878906
// for ttl=59.9.
func TestTTLIsTheOneTheHeaderStated(t *testing.T) {
	ttls := []string{"59.9", "0.1", "-0.3", "86399.125", "123456.789", "999999999999.999", "-999999999999.999", "3599"}
	in := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Status", "c; hit; ttl="+strings.TrimPrefix(r.URL.Path, "/"))
	})
	var urls []string
	for _, ttl := range ttls {
		urls = append(urls, "https://example.com/"+ttl)
	}
	out := run(t, purge.Job{Instances: []string{in}, URLs: urls, VerifyOnly: true, Verify: []purge.Expect{purge.ExpectAny}})
	js := write(t, report.JSON, out, report.Options{})
	v := reporttest.Require(t, js).Only(t)
	require.Len(t, v.Results, len(ttls))
	for i, ttl := range ttls {
		want, err := strconv.ParseFloat(ttl, 64)
		require.NoError(t, err)
		require.NotNil(t, v.Results[i].TTL, ttl)
		assert.Equal(t, want, *v.Results[i].TTL, "ttl=%s", ttl)
		assert.Contains(t, js, `"ttl":`+ttl+`,`, "written as stated")
	}
}

// What an instance sends never acts on a terminal or a job summary.
func TestInstanceTextIsInert(t *testing.T) {
	in := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Status", "c; hit; detail=\"<img src=x onerror=alert(1)> [click](https://evil.example) \x1b[31m\"")
		w.Header().Set("X-Cache", "\u202eevil")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, "<script>alert(1)</script> ![img](https://evil.example/a.png) https://evil.example \x1b]0;title\x07")
	})
	out := run(t, purge.Job{Instances: []string{in}, URLs: []string{"https://example.com/"}, Attempts: 1, Verify: []purge.Expect{purge.ExpectHit}})
	txt := write(t, report.Text, out, report.Options{})
	assert.NotContains(t, txt, "\x1b")
	assert.NotContains(t, txt, "\x07")
	md := write(t, report.Markdown, out, report.Options{})
	assert.NotContains(t, md, "\x1b")
	outside := withoutCodeSpans(md)
	for _, markup := range []string{"<script", "<img", "](", "https://evil"} {
		assert.NotContains(t, outside, markup, "outside code spans")
	}
	for _, cell := range mdCells(md) {
		if strings.Contains(cell, "evil") {
			assert.True(t, strings.HasPrefix(cell, "`") && strings.HasSuffix(cell, "`"), "instance text is a code span: %q", cell)
		}
	}
	reporttest.Require(t, write(t, report.JSON, out, report.Options{}))
}

// withoutCodeSpans drops every code span (a run of backticks, text, the
// same run) from md.
func withoutCodeSpans(md string) string {
	var b strings.Builder
	for len(md) > 0 {
		i := strings.IndexByte(md, '`')
		if i < 0 {
			b.WriteString(md)
			break
		}
		b.WriteString(md[:i])
		n := len(md[i:]) - len(strings.TrimLeft(md[i:], "`"))
		fence := md[i : i+n]
		end := strings.Index(md[i+n:], fence)
		if end < 0 {
			b.WriteString(md[i:])
			break
		}
		md = md[i+n+end+n:]
	}
	return b.String()
}

// mdCells returns the cells of every table row.
func mdCells(md string) []string {
	var out []string
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "| ") {
			continue
		}
		for _, c := range strings.Split(strings.ReplaceAll(line, `\|`, "\x00"), " | ") {
			out = append(out, strings.Trim(strings.ReplaceAll(c, "\x00", `\|`), "| "))
		}
	}
	return out
}

func TestPlan(t *testing.T) {
	in := server(t, nil)
	p, err := purge.Job{Instances: []string{in}, URLs: []string{"https://example.com/a?b=1"}, Token: "secret-xyz", Tags: []string{"t1"}}.Plan(context.Background())
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, report.WritePlan(&b, report.Text, p))
	assert.Contains(t, b.String(), "would send PURGEKEYS to 1 instance x 1 URL over http; nothing was sent")
	assert.Contains(t, b.String(), "xkey-purge: t1")
	assert.Contains(t, b.String(), "Purge-Token: (hidden)")
	assert.NotContains(t, b.String(), "secret-xyz")
	b.Reset()
	require.NoError(t, report.WritePlan(&b, report.JSON, p))
	assert.NotContains(t, b.String(), "secret-xyz")
	v := reporttest.Require(t, b.String())
	assert.True(t, v.DryRun)
	assert.True(t, v.OK, "a dry run exits 0")
	assert.Equal(t, "dry run: would send PURGEKEYS to 1 instance x 1 URL over http; nothing was sent", v.Summary)
	assert.Equal(t, []string{in}, v.Instances)
	s := v.Only(t)
	assert.Equal(t, "PURGEKEYS", s.Method)
	assert.Equal(t, "http", s.Scheme)
	assert.Equal(t, []string{"https://example.com/a?b=1"}, s.URLs)
	assert.Contains(t, s.RequestHeaders, "xkey-purge: t1")
	assert.Contains(t, s.RequestHeaders, "Purge-Token: (hidden)")
	assert.Empty(t, s.Results, "nothing was sent")
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]report.Format{"": report.Text, "TEXT": report.Text, "json": report.JSON, "md": report.Markdown, "Markdown": report.Markdown} {
		f, err := report.ParseFormat(in)
		require.NoError(t, err)
		assert.Equal(t, want, f)
	}
	_, err := report.ParseFormat("xml")
	assert.ErrorContains(t, err, `format "xml": use text, json or markdown`)
}

// What proves a check is in every format: objects per purge row (absent
// when the answer did not say), the "0 objects" warning, Vary and the
// headers sent, and current with the origin.
func TestProofInEveryFormat(t *testing.T) {
	origin := server(t, func(w http.ResponseWriter, r *http.Request) { w.Header().Set("ETag", `"v2"`) })
	counting := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PURGE" {
			w.Header().Set(purge.ObjectsHeader, "0")
			w.Header().Set(purge.PurgeTimeHeader, "1900000000.5")
			return
		}
		w.Header().Set("Cache-Status", "c; fwd=miss")
		w.Header().Set("Vary", "Accept-Encoding, User-Agent")
		w.Header().Set("ETag", `"v1"`)
	})
	silent := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Status", "c; fwd=miss")
		w.Header().Set("ETag", `"v2"`)
	})
	out := run(t, purge.Job{Instances: []string{counting, silent}, URLs: []string{"http://example.com/a"}, Attempts: 1,
		Verify: []purge.Expect{purge.ExpectPurged}, Origin: "http://" + origin, VerifyMethod: "HEAD"})
	warning := "0 objects purged on any instance for http://example.com/a: was anything cached under this host and path?"

	js := write(t, report.JSON, out, report.Options{})
	decoded := reporttest.Require(t, js)
	require.Len(t, decoded.Warnings, 2, "the run's warnings, each step's, in one place")
	assert.Equal(t, warning, decoded.Warnings[0])
	assert.Contains(t, decoded.Warnings[1], "Vary: User-Agent on 1 answer")
	p := decoded.Purge()
	assert.Equal(t, []string{"User-Agent: cdnpurge/" + purge.Version()}, p.RequestHeaders)
	for _, r := range p.Results {
		if r.Instance == counting {
			require.NotNil(t, r.Objects)
			assert.Equal(t, 0, *r.Objects)
			assert.Equal(t, 1900000000.5, r.PurgedAt)
		} else {
			assert.Nil(t, r.Objects, "absent when not said")
		}
	}
	v := decoded.Verify()[0]
	assert.Equal(t, "http://"+origin, v.Origin)
	require.Len(t, v.RequestHeaders, 2)
	assert.Equal(t, "Accept-Encoding: gzip, deflate, br", v.RequestHeaders[0])
	for _, c := range v.Results {
		require.NotNil(t, c.Current)
		if c.Instance == counting {
			assert.False(t, *c.Current)
			assert.Equal(t, "Accept-Encoding, User-Agent", c.Vary)
		} else {
			assert.True(t, *c.Current)
			assert.Empty(t, c.Vary)
		}
	}

	for _, f := range []report.Format{report.Text, report.Markdown} {
		s := write(t, f, out, report.Options{})
		plain := strings.NewReplacer("\\", "", "`", "").Replace(s)
		assert.Contains(t, plain, "warning: "+warning, f)
		assert.Contains(t, plain, "Vary: User-Agent on 1 answer", f)
		assert.Contains(t, plain, "serving another version than the origin: "+counting, f)
		assert.Contains(t, plain, "each request sent: Accept-Encoding: gzip, deflate, br; User-Agent: Mozilla/5.0", f)
		assert.Regexp(t, `(?i)objects`, s, f)
		assert.Regexp(t, `(?i)current`, s, f)
	}
}

// An instance echoes the request's headers in its reason phrase and body:
// no 8 consecutive characters of the token reach any format, whatever the
// cut (a long JWT-like token; a short one after a padding header that
// puts the 120-byte cut inside it).
func TestTokenPiecesNeverShownInAnyFormat(t *testing.T) {
	jwt := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + strings.Repeat("eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6", 3) + ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV"
	for _, tc := range []struct {
		token  string
		header []string
	}{
		{jwt, nil},
		{"0123456789abcdefghijklmnopqrstuv", []string{"X-Pad: " + strings.Repeat("p", 90)}},
		{"0123456789abcdefghijklmnopqrstuv", []string{"X-Pad: " + strings.Repeat("p", 70)}},
	} {
		echo := hostile.Start(t, hostile.Each(func(c *hostile.Conn, r *hostile.Request) {
			var line []string
			for k, v := range r.Header {
				line = append(line, k+": "+strings.Join(v, ","))
			}
			sort.Strings(line)
			reason := strings.Join(line, " ")
			body := "<pre>" + strings.Join(line, "\n") + "\n" + strings.ToUpper(tc.token[3:20]) + "</pre>"
			c.Write(fmt.Sprintf("HTTP/1.1 500 %s\r\nContent-Length: %d\r\nX-Varnish: 1\r\n\r\n%s", reason, len(body), body))
		}))
		var urls []string
		for i := range 60 { // more than DefaultRows: the summary form too
			urls = append(urls, fmt.Sprintf("http://example.com/%d", i))
		}
		for _, u := range [][]string{urls[:1], urls} {
			out := run(t, purge.Job{Instances: []string{echo.Addr}, URLs: u, Token: tc.token, Headers: tc.header, Attempts: 1})
			require.False(t, out.OK())
			for _, f := range []report.Format{report.Text, report.JSON, report.Markdown} {
				for _, verbose := range []bool{false, true} {
					got := write(t, f, out, report.Options{Verbose: verbose})
					if f == report.JSON {
						reporttest.Require(t, got)
					}
					assert.Contains(t, got, "500")
					if run, shows := hostile.ShowsRun(got, tc.token); shows {
						t.Errorf("%s (verbose %v, %d URLs): shows %q of the token:\n%s", f, verbose, len(u), run, got)
					}
				}
			}
		}
	}
}
