package report_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/cachestatus"
	"github.com/cdnpurge/cdnpurge/purge/report"
	"github.com/cdnpurge/cdnpurge/purge/report/reporttest"
)

// topKeys are the report's keys, in order, whatever the command.
var topKeys = []string{"format_version", "ok", "summary", "dry_run", "instances", "skipped", "warnings", "steps"}

// keysOf returns the keys of the JSON object b, in order.
func keysOf(t *testing.T, b []byte) []string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	tok, err := d.Token()
	require.NoError(t, err)
	require.Equal(t, json.Delim('{'), tok)
	var keys []string
	for d.More() {
		k, err := d.Token()
		require.NoError(t, err)
		keys = append(keys, k.(string))
		var skip json.RawMessage
		require.NoError(t, d.Decode(&skip))
	}
	return keys
}

// Every command and option writes the same top-level keys, its steps in
// one list, and a report the schema accepts: purge, ban, a tag purge,
// verify, purge with verify steps, and the dry run of each.
func TestOneShapeForEveryCommand(t *testing.T) {
	in := server(t, func(w http.ResponseWriter, r *http.Request) { w.Header().Set("Cache-Status", "c; fwd=miss") })
	origin := "http://" + server(t, func(w http.ResponseWriter, r *http.Request) { w.Header().Set("ETag", `"v1"`) })
	base := purge.Job{Instances: []string{in}, URLs: []string{"https://example.com/a"}}
	with := func(f func(j *purge.Job)) purge.Job {
		j := base
		f(&j)
		return j
	}
	for _, tc := range []struct {
		name  string
		job   purge.Job
		steps []string
	}{
		{"purge", base, []string{"purge PURGE"}},
		{"ban", with(func(j *purge.Job) { j.Ban = "^/a" }), []string{"purge BAN"}},
		{"tags", with(func(j *purge.Job) { j.Tags = []string{"t1"} }), []string{"purge PURGEKEYS"}},
		{"verify", with(func(j *purge.Job) { j.VerifyOnly, j.Verify = true, []purge.Expect{purge.ExpectMiss} }), []string{"verify HEAD"}},
		{"purge --verify", with(func(j *purge.Job) { j.Verify = []purge.Expect{purge.ExpectPurged} }), []string{"purge PURGE", "verify HEAD"}},
		{"purge --verify=miss,hit", with(func(j *purge.Job) { j.Verify = []purge.Expect{purge.ExpectMiss, purge.ExpectHit} }), []string{"purge PURGE", "verify HEAD", "verify HEAD"}},
		{"ban --verify --verify-url", with(func(j *purge.Job) {
			j.Ban, j.Verify, j.VerifyURLs = "^/a", []purge.Expect{purge.ExpectPurged}, []string{"https://example.com/a1", "https://example.com/a2"}
		}), []string{"purge BAN", "verify HEAD"}},
		{"purge --verify --origin", with(func(j *purge.Job) { j.Verify, j.Origin = []purge.Expect{purge.ExpectPurged}, origin }), []string{"purge PURGE", "verify GET"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := run(t, tc.job)
			var b bytes.Buffer
			require.NoError(t, report.Write(&b, report.JSON, out, report.Options{}))
			assert.Equal(t, topKeys, keysOf(t, b.Bytes()))
			rep := reporttest.Require(t, b.String())
			assert.Equal(t, report.FormatVersion, rep.FormatVersion)
			assert.False(t, rep.DryRun)
			var steps []string
			for _, s := range rep.Steps {
				steps = append(steps, s.Name+" "+s.Method)
				assert.Len(t, s.Results, len(s.URLs)*len(rep.Instances), "a result per URL and instance")
				assert.NotEmpty(t, s.RequestHeaders, "what every request carried")
			}
			assert.Equal(t, tc.steps, steps)

			p, err := tc.job.Plan(t.Context())
			require.NoError(t, err)
			b.Reset()
			require.NoError(t, report.WritePlan(&b, report.JSON, p))
			assert.Equal(t, topKeys, keysOf(t, b.Bytes()), "a dry run has the same keys")
			plan := reporttest.Require(t, b.String())
			assert.True(t, plan.DryRun)
			require.Len(t, plan.Steps, len(rep.Steps), "the same steps")
			for i, s := range plan.Steps {
				r := rep.Steps[i]
				assert.Equal(t, []string{r.Name, r.Method, r.Expect}, []string{s.Name, s.Method, s.Expect})
				assert.Equal(t, r.URLs, s.URLs, "the URLs it would send")
				assert.Equal(t, r.RequestHeaders, s.RequestHeaders, "the headers it would send")
				assert.Equal(t, r.Origin, s.Origin, "the origin it would compare with")
				assert.Empty(t, s.Results)
			}
		})
	}
}

// One layout whatever the size: the outer objects indented, each result
// compact on a line of its own (no indentation that depends on how many
// there are), so a small and a large report differ only in their rows.
func TestOneLayoutForEverySize(t *testing.T) {
	in := server(t, nil)
	lines := func(n int) []string {
		var urls []string
		for i := range n {
			urls = append(urls, fmt.Sprintf("https://example.com/%d", i))
		}
		js := write(t, report.JSON, run(t, purge.Job{Instances: []string{in}, URLs: urls}), report.Options{})
		rep := reporttest.Require(t, js)
		require.Len(t, rep.Only(t).Results, n)
		return strings.Split(js, "\n")
	}
	small, large := lines(1), lines(2000)
	// 28 lines of layout (and the end of the last), a line per URL and a
	// line per result.
	assert.Equal(t, 28+1+1, len(small), strings.Join(small, "\n"))
	assert.Equal(t, 28+2000+2000, len(large))
	row := 0
	for _, l := range large {
		if strings.HasPrefix(l, `        {"url":`) {
			row++
			assert.True(t, strings.HasSuffix(l, "},") || strings.HasSuffix(l, "}"), l)
		}
	}
	assert.Equal(t, 2000, row)
	shape := func(ls []string) []string {
		var out []string
		for _, l := range ls {
			if strings.HasPrefix(l, "        ") || strings.Contains(l, `"summary"`) || strings.Contains(l, `"duration_ms"`) {
				continue // rows, URLs, and what says how many and how long
			}
			out = append(out, l)
		}
		return out
	}
	assert.Equal(t, shape(small), shape(large))
	assert.Equal(t, "{", small[0])
	assert.Equal(t, `  "format_version": 2,`, small[1])
}

// The hand-written rows are the structs' JSON byte for byte (field names,
// order, escaping, numbers), and every row is one the schema accepts.
func TestRowsAreTheStructs(t *testing.T) {
	origin := server(t, func(w http.ResponseWriter, r *http.Request) { w.Header().Set("ETag", `"v2"`) })
	in := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PURGE" {
			w.Header().Set(purge.ObjectsHeader, "3")
			w.Header().Set(purge.PurgeTimeHeader, "1900000000.000001")
		} else {
			w.Header().Set("Cache-Status", "c; hit; ttl=7.5; detail=\"<a&b>\"")
			w.Header().Set("Age", "3")
			w.Header().Set("Vary", "Accept-Encoding, X-\"Odd\"")
			w.Header().Set(purge.FetchTimeHeader, "1899999999.25")
			w.Header().Set("ETag", `"v1"`)
		}
		if strings.Contains(r.URL.Path, "bad") {
			http.Error(w, "nope \"quoted\" \\ \u2028 \b\f\x01 <&>", http.StatusBadRequest)
		}
	})
	urls := []string{"https://example.com/a", "https://example.com/bad?x=\"y\"&<z>"}
	for _, j := range []purge.Job{
		{Instances: []string{in}, URLs: urls, Attempts: 1},
		{Instances: []string{in}, URLs: urls, VerifyOnly: true, Verify: []purge.Expect{purge.ExpectHit}, Origin: "http://" + origin},
	} {
		out := run(t, j)
		reporttest.Require(t, write(t, report.JSON, out, report.Options{}))
		r := out.Reports()[0]
		for k := range r.Len() {
			hand, structs, err := report.Row(r, r.Result(k))
			require.NoError(t, err)
			assert.Equal(t, string(structs), string(hand))
			require.NoError(t, reporttest.Validate(oneRow(r.Step, hand)), string(hand))
		}
	}
}

// oneRow is a report of one step with one result, row.
func oneRow(step purge.Step, row []byte) []byte {
	s := `{"step":"purge","method":"PURGE",`
	if step == purge.StepVerify {
		s = `{"step":"verify","method":"HEAD","expect":"hit","rounds":1,`
	}
	return []byte(`{"format_version":2,"ok":true,"summary":"","dry_run":false,"instances":["i"],"skipped":[],"warnings":[],"steps":[` +
		s + `"ok":true,"summary":"","duration_ms":1,"request_headers":[],"urls":["u"],"results":[` + string(row) + `]}]}`)
}

// Every field a row can have is in the schema: a result with every field
// set is written, and accepted; the structs' fields are those the schema
// lists, no more.
func TestEveryFieldIsInTheSchema(t *testing.T) {
	ttl, cur := -1.5, true
	full := purge.Result{
		URL: purge.URL{Scheme: "https", Host: "example.com", Target: "/a"}, Instance: purge.Instance{Host: "10.0.0.1", Port: 80, Region: "iad", MachineID: "148e"},
		Status: 503, Attempts: 2, Duration: 1234 * time.Microsecond, Err: fmt.Errorf("503 Service Unavailable"),
		Class: cachestatus.Stale, CacheStatus: "c; hit; ttl=-1.5", Source: "cache-status", TTL: &ttl, Age: 12, BytesRead: 321,
		Refilled: true, Note: "a note", StaleUnknown: true, Vary: "Accept-Encoding", Current: &cur, FetchedAt: time.UnixMicro(1_800_000_000_000_001),
		PredatesPurge: true, Uncertain: true, SelfStored: true, MatchedAfter: 42 * time.Millisecond,
		Objects: 7, PurgedAt: time.UnixMicro(1_800_000_000_500_000),
	}
	sch := schemaDoc(t)
	defs := sch["$defs"].(map[string]any)
	for _, step := range []purge.Step{purge.StepPurge, purge.StepVerify} {
		hand, structs, err := report.RowOf(full, step == purge.StepVerify)
		require.NoError(t, err)
		require.Equal(t, string(structs), string(hand))
		require.NoError(t, reporttest.Validate(oneRow(step, hand)), string(hand))
		def := "purge_result"
		if step == purge.StepVerify {
			def = "check_result"
		}
		props := defs[def].(map[string]any)["properties"].(map[string]any)
		assert.ElementsMatch(t, keys(props), keysOf(t, hand), "%s: every field written, the schema's", def)
	}
	// The test helper decodes every field the schema lists.
	assert.ElementsMatch(t, keys(sch["properties"].(map[string]any)), jsonNames(reflect.TypeFor[reporttest.Report]()))
	var stepProps []string
	for _, d := range []string{"purge_step", "verify_step"} {
		for k := range defs[d].(map[string]any)["properties"].(map[string]any) {
			if !contains(stepProps, k) {
				stepProps = append(stepProps, k)
			}
		}
	}
	assert.ElementsMatch(t, stepProps, jsonNames(reflect.TypeFor[reporttest.Step]()))
	var rowProps []string
	for _, d := range []string{"purge_result", "check_result"} {
		for k := range defs[d].(map[string]any)["properties"].(map[string]any) {
			if !contains(rowProps, k) {
				rowProps = append(rowProps, k)
			}
		}
	}
	assert.ElementsMatch(t, rowProps, jsonNames(reflect.TypeFor[reporttest.Result]()))
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func jsonNames(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		out = append(out, name)
	}
	return out
}

func schemaDoc(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(report.Schema(), &m))
	return m
}

// The schema is documentation: every field has a description, and every
// object of ours refuses fields it does not list, so drift fails tests.
func TestSchemaDescribesEveryField(t *testing.T) {
	sch := schemaDoc(t)
	assert.Equal(t, "https://json-schema.org/draft/2020-12/schema", sch["$schema"])
	assert.Equal(t, report.SchemaID, sch["$id"])
	assert.Equal(t, float64(report.FormatVersion), sch["properties"].(map[string]any)["format_version"].(map[string]any)["const"])
	described := map[string]bool{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		if props, ok := m["properties"].(map[string]any); ok {
			for name, p := range props {
				if pm, ok := p.(map[string]any); ok {
					if _, ok := pm["description"]; ok {
						described[name] = true
					} else if _, ref := pm["$ref"]; !ref && !strings.HasPrefix(path, ".if") && !strings.HasPrefix(path, ".then") && !strings.HasPrefix(path, ".else") {
						t.Errorf("%s.%s has no description", path, name)
					}
				}
			}
		}
		if _, ok := m["properties"]; ok && m["type"] == "object" {
			assert.Equal(t, false, m["additionalProperties"], "%s refuses fields it does not list", path)
		}
		for k, c := range m {
			walk(path+"."+k, c)
		}
	}
	walk("", sch)
	for _, name := range slicesOf(topKeys, jsonNames(reflect.TypeFor[reporttest.Step]()), jsonNames(reflect.TypeFor[reporttest.Result]())) {
		assert.True(t, described[name], "%s is described", name)
	}
}

func slicesOf(s ...[]string) []string {
	var out []string
	for _, x := range s {
		out = append(out, x...)
	}
	return out
}

// The schema refuses what a consumer could not rely on: a field it does
// not list, a missing one, age as a string (as before format 2), a
// verify row's old "matched", results in a dry run.
func TestSchemaRefusesDrift(t *testing.T) {
	in := server(t, func(w http.ResponseWriter, r *http.Request) { w.Header().Set("Age", "3") })
	out := run(t, purge.Job{Instances: []string{in}, URLs: []string{"https://example.com/"}, VerifyOnly: true, Verify: []purge.Expect{purge.ExpectAny}})
	js := write(t, report.JSON, out, report.Options{})
	require.NoError(t, reporttest.Validate([]byte(js)))
	for _, tc := range []struct{ name, old, new string }{
		{"an unknown top-level field", `"dry_run": false,`, `"dry_run": false, "extra": 1,`},
		{"a missing top-level field", `"skipped": [],`, ``},
		{"age as a string", `"age":3`, `"age":"3"`},
		{"matched instead of ok", `"ok":true,"attempts"`, `"matched":true,"attempts"`},
		{"an unknown row field", `"age":3`, `"age":3,"hits":1`},
		{"format 1", `"format_version": 2`, `"format_version": 1`},
		{"results in a dry run", `"dry_run": false`, `"dry_run": true`},
		{"a step without results", `"results": [`, `"checks": [`},
		{"an unknown class", `"class":"`, `"class":"x`},
	} {
		require.Contains(t, js, tc.old, tc.name)
		assert.Error(t, reporttest.Validate([]byte(strings.Replace(js, tc.old, tc.new, 1))), tc.name)
	}
	assert.Error(t, reporttest.Validate([]byte(js+js)), "one value")
	assert.Error(t, reporttest.Validate([]byte(`{"ok":true`)), "not JSON")
}

// JSON has no NaN or infinity: a TTL an instance states as ttl=inf or
// ttl=nan (strconv reads both) is left out of the row rather than written
// as invalid JSON.
func TestNonFiniteTTLIsLeftOut(t *testing.T) {
	for _, ttl := range []string{"inf", "-Inf", "NaN", "1e39"} {
		in := server(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Status", "region=iad; origin=app; ttl="+ttl+"; grace=1; storage=memory; hit; hits=3")
		})
		out := run(t, purge.Job{Instances: []string{in}, URLs: []string{"https://example.com/"}, VerifyOnly: true, Verify: []purge.Expect{purge.ExpectHit}})
		rep := reporttest.Require(t, write(t, report.JSON, out, report.Options{}))
		c := rep.Only(t).Results[0]
		assert.Contains(t, []string{"hit", "stale"}, c.Class, ttl)
		if c.TTL != nil {
			assert.False(t, math.IsInf(*c.TTL, 0) || math.IsNaN(*c.TTL), ttl)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b\\c", "\x00\x1f\x7f\b\f\n\r\t", "\u2028\u2029", "\xff\xfe", "é€😀", "<&>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := report.AppendString(nil, s)
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		require.NoError(t, enc.Encode(s))
		if string(got) != strings.TrimSuffix(want.String(), "\n") {
			t.Fatalf("%q: %s, encoding/json writes %s", s, got, want.String())
		}
	})
}

func FuzzAppendFloat(f *testing.F) {
	for _, v := range []float64{0, 1, -1, 7.5, 3599, 1e-6, 9.99e-7, 1e21, 1e20, -1e-9, 1900000000.000001, math.MaxFloat64, math.SmallestNonzeroFloat64} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return
		}
		want, err := json.Marshal(v)
		require.NoError(t, err)
		if got := report.AppendFloat(nil, v); string(got) != string(want) {
			t.Fatalf("%v: %s, encoding/json writes %s", v, got, want)
		}
	})
}

func FuzzAppendMS(f *testing.F) {
	for _, us := range []int64{0, 1, 999, 1000, 1001, 1200, 1234, 123456789, -1500} {
		f.Add(us)
	}
	f.Fuzz(func(t *testing.T, us int64) {
		if us == math.MinInt64 {
			return
		}
		var got float64
		if err := json.Unmarshal(report.AppendMS(nil, us), &got); err != nil {
			t.Fatalf("%d: %q: %v", us, report.AppendMS(nil, us), err)
		}
		if want := report.MS(time.Duration(us) * time.Microsecond); got != want && us < math.MaxInt64/1000 {
			t.Fatalf("%d: %q reads as %v, want %v", us, report.AppendMS(nil, us), got, want)
		}
	})
}
