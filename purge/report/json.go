package report

import (
	"bufio"
	_ "embed"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/cdnpurge/cdnpurge/purge"
)

// The JSON report has one shape for every command and option (purge, ban,
// verify, with or without --verify, a dry run, a serve's answer): the same
// top-level keys, the steps in one list, every result in the same form
// whatever its step. report.schema.json describes every field, and
// docs/json.md shows it with an example.
//
// One layout for every size: the outer objects are indented as
// json.MarshalIndent indents them, and each result is compact on a line of
// its own, so a report of 3 results and one of 3 million read alike (and
// line-oriented tools see a row a line). Rows are written as they are
// rendered: a million results are never held as JSON.

// FormatVersion is the report's "format_version". It is raised only when a
// field is removed or changes its meaning; fields are added without it.
// Reports of the releases before it (no format_version) are version 1:
// Upgrade converts them.
const FormatVersion = 2

//go:embed report.schema.json
var schema string

// Schema returns the JSON Schema (draft 2020-12) of the JSON report.
func Schema() []byte { return []byte(schema) }

// SchemaID is the schema's $id.
const SchemaID = "https://raw.githubusercontent.com/cdnpurge/cdnpurge/main/purge/report/report.schema.json"

// head is a report's fields before its steps, as written (checked against
// the job's secrets).
type head struct {
	ok        bool
	summary   string
	dryRun    bool
	instances []string
	skipped   []skippedJSON
	warnings  []string
}

type skippedJSON struct {
	Instance  string `json:"instance"`
	Region    string `json:"region,omitempty"`
	MachineID string `json:"machine_id,omitempty"`
	State     string `json:"state"`
}

// step is one step as written: its fields, then its URLs and results,
// each yielded as JSON (a string, an object) and written as it comes.
type step struct {
	name, method, expect string
	rounds               int // verify steps
	ok                   bool
	summary              string
	durationMS           float64
	requestHeaders       []string
	origin               string
	consistentAfterMS    float64
	scheme               string // dry runs
	urls                 func(yield func([]byte) bool)
	results              func(yield func([]byte) bool)
}

// The rows. The hand-written rows (appendRow) are these structs' JSON
// byte for byte (TestRowsAreTheStructs holds them to it, and to the
// schema); Upgrade writes old rows through them.

// rowHead is what every result says, whatever its step.
type rowHead struct {
	URL        string  `json:"url"`
	Instance   string  `json:"instance"`
	Region     string  `json:"region,omitempty"`
	MachineID  string  `json:"machine_id,omitempty"`
	Status     int     `json:"status"`
	OK         bool    `json:"ok"`
	Attempts   int     `json:"attempts"`
	DurationMS float64 `json:"duration_ms"`
}

// purgeRow is one result of a purge step.
type purgeRow struct {
	rowHead
	// Objects is what the answer said it removed (the Purged header);
	// absent when it did not say. PurgedAt is the instance's time of the
	// purge (Cdnpurge-Purge-Time), in seconds since the epoch.
	Objects  *int    `json:"objects,omitempty"`
	PurgedAt float64 `json:"purged_at,omitempty"`
	Error    string  `json:"error,omitempty"`
}

// checkRow is one result of a verify step.
type checkRow struct {
	rowHead
	Class       string   `json:"class"`
	CacheStatus string   `json:"cache_status,omitempty"`
	Source      string   `json:"source,omitempty"`
	TTL         *float64 `json:"ttl,omitempty"`
	Age         *int     `json:"age,omitempty"`
	BytesRead   int64    `json:"bytes_read"`
	Refilled    bool     `json:"refilled,omitempty"`
	Note        string   `json:"note,omitempty"`
	// What proves (or cannot prove) the check: see purge.Result.
	Vary           string  `json:"vary,omitempty"`
	Current        *bool   `json:"current,omitempty"`
	StaleUnknown   bool    `json:"stale_unknown,omitempty"`
	FetchedAt      float64 `json:"fetched_at,omitempty"`
	PredatesPurge  bool    `json:"predates_purge,omitempty"`
	Uncertain      bool    `json:"uncertain,omitempty"`
	SelfStored     bool    `json:"self_stored,omitempty"`
	MatchedAfterMS float64 `json:"matched_after_ms,omitempty"`
	Error          string  `json:"error,omitempty"`
}

func writeJSON(w *bufio.Writer, out *purge.Outcome) error {
	g := guard{out.Reveals}
	reps := out.Reports()
	h := head{ok: out.OK(), summary: outcomeSummary(out, reps), instances: make([]string, len(out.Instances)),
		skipped: skippedOf(g, out.Skipped), warnings: guarded(g, out.Warnings)}
	for i, in := range out.Instances {
		h.instances[i] = g.json(in.String())
	}
	steps := make([]step, len(reps))
	for i, r := range reps {
		steps[i] = reportStep(r)
	}
	return writeDoc(w, h, steps)
}

// outcomeSummary is the run's summary: its step's, or with several steps
// what failed or every step's. It starts with "FAILED: " exactly when the
// run failed.
func outcomeSummary(out *purge.Outcome, reps []*purge.Report) string {
	if len(reps) == 1 {
		return reps[0].Summary()
	}
	if err := out.Err(); err != nil {
		return "FAILED: " + err.Error()
	}
	s := make([]string, len(reps))
	for i, r := range reps {
		s[i] = r.Summary()
	}
	return strings.Join(s, "; then ")
}

func skippedOf(g guard, skipped []purge.Skipped) []skippedJSON {
	out := make([]skippedJSON, len(skipped))
	for i, s := range skipped {
		out[i] = skippedJSON{g.json(s.Instance.String()), g.json(s.Instance.Region), g.json(s.Instance.MachineID), g.json(s.State)}
	}
	return out
}

func guarded(g guard, ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = g.json(s)
	}
	return out
}

// reportStep is one step of a run: its URLs and results rendered one at a
// time as they are written. Every string is checked as written (and as
// read back) against the job's secrets, and withheld whole when it shows
// one.
func reportStep(r *purge.Report) step {
	g := guard{r.Reveals}
	verify := r.Step == purge.StepVerify
	s := step{name: string(r.Step), method: r.Method, ok: r.OK(), summary: r.Summary(), durationMS: ms(r.Duration),
		requestHeaders: guarded(g, r.RequestHeaders), urls: urlsOf(g, r.URLs)}
	if verify {
		s.expect, s.rounds = string(r.Expect), r.Rounds
		s.origin, s.consistentAfterMS = g.json(r.Origin), ms(r.ConsistentAfter)
	}
	s.results = func(yield func([]byte) bool) {
		if r.Len() == 0 {
			return
		}
		// Rows are appended by hand: encoding/json's reflection was most
		// of the time of a large report (1.1 µs a row; see
		// BenchmarkWrite30k). Each instance's fields, and each URL's, are
		// escaped once.
		insts := make([][]byte, len(r.Instances))
		for i, in := range r.Instances {
			insts[i] = appendInstance(nil, g, g.json(in.String()), in)
		}
		var url, buf, scratch []byte
		urlOf := -1
		var lastErr error
		var lastText string
		for k := range r.Len() {
			res := r.Result(k)
			if u := k / len(insts); u != urlOf {
				url, urlOf = g.appendURL(url[:0], res.URL, &scratch), u
			}
			e := ""
			if !res.OK && res.Err != nil {
				if res.Err != lastErr {
					lastErr, lastText = res.Err, g.json(reason(res))
				}
				e = lastText
			}
			buf = appendRow(buf[:0], g, res, url, insts[k%len(insts)], e, verify)
			if !yield(buf) {
				return
			}
		}
	}
	return s
}

// urlsOf yields each URL of l as a JSON string.
func urlsOf(g guard, l *purge.URLList) func(yield func([]byte) bool) {
	return func(yield func([]byte) bool) {
		if l == nil {
			return
		}
		var buf, scratch []byte
		for _, u := range l.All() {
			buf = g.appendURL(buf[:0], u, &scratch)
			if !yield(buf) {
				return
			}
		}
	}
}

// writeDoc writes a report: its head, then each step, streaming the
// steps' URLs and results.
func writeDoc(w *bufio.Writer, h head, steps []step) error {
	b := make([]byte, 0, 1024)
	b = append(b, "{\n  \"format_version\": "...)
	b = strconv.AppendInt(b, FormatVersion, 10)
	b = append(b, ",\n  \"ok\": "...)
	b = strconv.AppendBool(b, h.ok)
	b = append(b, ",\n  \"summary\": "...)
	b = appendString(b, h.summary)
	b = append(b, ",\n  \"dry_run\": "...)
	b = strconv.AppendBool(b, h.dryRun)
	b = append(b, ",\n  \"instances\": "...)
	b = appendStrings(b, 1, h.instances)
	b = append(b, ",\n  \"skipped\": "...)
	b = appendList(b, 1, len(h.skipped), func(b []byte, i int) []byte {
		s := h.skipped[i]
		b = append(b, `{"instance":`...)
		b = appendString(b, s.Instance)
		if s.Region != "" {
			b = append(b, `,"region":`...)
			b = appendString(b, s.Region)
		}
		if s.MachineID != "" {
			b = append(b, `,"machine_id":`...)
			b = appendString(b, s.MachineID)
		}
		b = append(b, `,"state":`...)
		b = appendString(b, s.State)
		return append(b, '}')
	})
	b = append(b, ",\n  \"warnings\": "...)
	b = appendStrings(b, 1, h.warnings)
	b = append(b, ",\n  \"steps\": ["...)
	for i, s := range steps {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendStepHead(append(b, "\n    {"...), s)
		b = append(b, ",\n      \"urls\": "...)
		if _, err := w.Write(b); err != nil {
			return err
		}
		if err := writeList(w, 3, s.urls); err != nil {
			return err
		}
		if _, err := w.WriteString(",\n      \"results\": "); err != nil {
			return err
		}
		if err := writeList(w, 3, s.results); err != nil {
			return err
		}
		b = append(b[:0], "\n    }"...)
	}
	if len(steps) > 0 {
		b = append(b, "\n  "...)
	}
	b = append(b, "]\n}\n"...)
	_, err := w.Write(b)
	return err
}

// appendStepHead appends a step's fields before its URLs, at depth 3.
func appendStepHead(b []byte, s step) []byte {
	const nl = ",\n      "
	b = append(b, "\n      \"step\": "...)
	b = appendString(b, s.name)
	b = append(b, nl+`"method": `...)
	b = appendString(b, s.method)
	if s.name == string(purge.StepVerify) {
		b = append(b, nl+`"expect": `...)
		b = appendString(b, s.expect)
	}
	b = append(b, nl+`"ok": `...)
	b = strconv.AppendBool(b, s.ok)
	b = append(b, nl+`"summary": `...)
	b = appendString(b, s.summary)
	b = append(b, nl+`"duration_ms": `...)
	b = appendFloat(b, s.durationMS)
	if s.name == string(purge.StepVerify) {
		b = append(b, nl+`"rounds": `...)
		b = strconv.AppendInt(b, int64(s.rounds), 10)
	}
	if s.scheme != "" {
		b = append(b, nl+`"scheme": `...)
		b = appendString(b, s.scheme)
	}
	b = append(b, nl+`"request_headers": `...)
	b = appendStrings(b, 3, s.requestHeaders)
	if s.origin != "" {
		b = append(b, nl+`"origin": `...)
		b = appendString(b, s.origin)
	}
	if s.consistentAfterMS > 0 {
		b = append(b, nl+`"consistent_after_ms": `...)
		b = appendFloat(b, s.consistentAfterMS)
	}
	return b
}

// indent is the indentation of each depth, two spaces a level.
const indent = "                "

// appendStrings appends ss as a list, a string a line, at depth.
func appendStrings(b []byte, depth int, ss []string) []byte {
	return appendList(b, depth, len(ss), func(b []byte, i int) []byte { return appendString(b, ss[i]) })
}

// appendList appends a list of n values, a line each, at depth: [] when
// empty.
func appendList(b []byte, depth, n int, value func(b []byte, i int) []byte) []byte {
	if n == 0 {
		return append(b, "[]"...)
	}
	b = append(b, '[')
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '\n')
		b = append(b, indent[:2*depth+2]...)
		b = value(b, i)
	}
	b = append(b, '\n')
	b = append(b, indent[:2*depth]...)
	return append(b, ']')
}

// writeList writes the values seq yields as a list, a line each, at depth.
func writeList(w *bufio.Writer, depth int, seq func(yield func([]byte) bool)) error {
	first := true
	var err error
	if seq != nil {
		sep := "[\n" + indent[:2*depth+2]
		seq(func(v []byte) bool {
			if _, err = w.WriteString(sep); err != nil {
				return false
			}
			if first {
				first, sep = false, ",\n"+indent[:2*depth+2]
			}
			_, err = w.Write(v)
			return err == nil
		})
	}
	if err != nil {
		return err
	}
	if first {
		_, err = w.WriteString("[]")
		return err
	}
	_, err = w.WriteString("\n" + indent[:2*depth] + "]")
	return err
}

// appendInstance appends an instance's fields of a row: its label
// (checked), then its region and machine id when it has them.
func appendInstance(b []byte, g guard, label string, in purge.Instance) []byte {
	b = appendString(b, label)
	if in.Region != "" {
		b = append(b, `,"region":`...)
		b = appendString(b, g.json(in.Region))
	}
	if in.MachineID != "" {
		b = append(b, `,"machine_id":`...)
		b = appendString(b, g.json(in.MachineID))
	}
	return b
}

// appendRow appends one result as JSON: a purgeRow, or a checkRow in a
// verify step, field for field. url is the URL as a JSON string and inst
// the instance's fields (appendInstance), both checked, and errMsg is
// checked; the rest of what an instance sent is checked here.
func appendRow(b []byte, g guard, res purge.Result, url, inst []byte, errMsg string, verify bool) []byte {
	b = append(b, `{"url":`...)
	b = append(b, url...)
	b = append(b, `,"instance":`...)
	b = append(b, inst...)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(res.Status), 10)
	b = append(b, `,"ok":`...)
	b = strconv.AppendBool(b, res.OK)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(res.Attempts), 10)
	b = append(b, `,"duration_ms":`...)
	b = appendMS(b, res.Duration.Microseconds())
	if !verify {
		if res.Objects >= 0 {
			b = append(b, `,"objects":`...)
			b = strconv.AppendInt(b, int64(res.Objects), 10)
		}
		if !res.PurgedAt.IsZero() {
			b = append(b, `,"purged_at":`...)
			b = appendFloat(b, stamp(res.PurgedAt))
		}
		return appendError(b, errMsg)
	}
	b = append(b, `,"class":`...)
	b = appendString(b, string(res.Class))
	if res.CacheStatus != "" {
		b = append(b, `,"cache_status":`...)
		b = appendString(b, g.json(res.CacheStatus))
	}
	if res.Source != "" {
		b = append(b, `,"source":`...)
		b = appendString(b, g.json(res.Source))
	}
	if ttl, ok := finiteTTL(res.TTL); ok {
		b = append(b, `,"ttl":`...)
		b = appendFloat(b, ttl)
	}
	if res.Age >= 0 {
		b = append(b, `,"age":`...)
		b = strconv.AppendInt(b, int64(res.Age), 10)
	}
	b = append(b, `,"bytes_read":`...)
	b = strconv.AppendInt(b, res.BytesRead, 10)
	if res.Refilled {
		b = append(b, `,"refilled":true`...)
	}
	if res.Note != "" {
		b = append(b, `,"note":`...)
		b = appendString(b, g.json(res.Note))
	}
	if res.Vary != "" {
		b = append(b, `,"vary":`...)
		b = appendString(b, g.json(res.Vary))
	}
	if res.Current != nil {
		b = append(b, `,"current":`...)
		b = strconv.AppendBool(b, *res.Current)
	}
	if res.StaleUnknown {
		b = append(b, `,"stale_unknown":true`...)
	}
	if !res.FetchedAt.IsZero() {
		b = append(b, `,"fetched_at":`...)
		b = appendFloat(b, stamp(res.FetchedAt))
	}
	if res.PredatesPurge {
		b = append(b, `,"predates_purge":true`...)
	}
	if res.Uncertain {
		b = append(b, `,"uncertain":true`...)
	}
	if res.SelfStored {
		b = append(b, `,"self_stored":true`...)
	}
	if res.MatchedAfter > 0 {
		b = append(b, `,"matched_after_ms":`...)
		b = appendFloat(b, ms(res.MatchedAfter))
	}
	return appendError(b, errMsg)
}

// appendError ends a row: why it failed, when it did.
func appendError(b []byte, errMsg string) []byte {
	if errMsg != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, errMsg)
	}
	return append(b, '}')
}

// finiteTTL is a TTL a row can show: JSON has no NaN or infinity (a
// header can say ttl=inf), so those are left out.
func finiteTTL(ttl *float64) (float64, bool) {
	if ttl == nil || math.IsNaN(*ttl) || math.IsInf(*ttl, 0) {
		return 0, false
	}
	return *ttl, true
}

// stamp is t in seconds since the epoch, to the microsecond.
func stamp(t time.Time) float64 { return float64(t.UnixMicro()) / 1e6 }

// appendFloat appends f as encoding/json writes a float64 (as ES6 prints a
// number: no exponent from 1e-6 to 1e21). f is finite.
func appendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 -> e-9, as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendString appends s as a JSON string, byte for byte as encoding/json
// writes it without HTML escaping: invalid UTF-8 becomes U+FFFD, and
// U+2028 and U+2029 are escaped.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			switch r {
			case utf8.RuneError:
				b = append(b, `\ufffd`...)
			case '\u2028':
				b = append(b, `\u2028`...)
			default:
				b = append(b, `\u2029`...)
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func errText(res purge.Result) string {
	if !res.OK && res.Err != nil {
		return reason(res)
	}
	return ""
}

func rowHeadOf(res purge.Result) rowHead {
	return rowHead{res.URL.String(), res.Instance.String(), res.Instance.Region, res.Instance.MachineID,
		res.Status, res.OK, res.Attempts, ms(res.Duration)}
}

func purgeRowOf(res purge.Result) purgeRow {
	r := purgeRow{rowHead: rowHeadOf(res), Error: errText(res)}
	if res.Objects >= 0 {
		n := res.Objects
		r.Objects = &n
	}
	if !res.PurgedAt.IsZero() {
		r.PurgedAt = stamp(res.PurgedAt)
	}
	return r
}

func checkRowOf(res purge.Result) checkRow {
	r := checkRow{rowHead: rowHeadOf(res), Class: string(res.Class), CacheStatus: res.CacheStatus, Source: res.Source,
		BytesRead: res.BytesRead, Refilled: res.Refilled, Note: res.Note,
		Vary: res.Vary, Current: res.Current, StaleUnknown: res.StaleUnknown, PredatesPurge: res.PredatesPurge,
		Uncertain: res.Uncertain, SelfStored: res.SelfStored, MatchedAfterMS: ms(res.MatchedAfter), Error: errText(res)}
	if ttl, ok := finiteTTL(res.TTL); ok {
		r.TTL = &ttl
	}
	if res.Age >= 0 {
		age := res.Age
		r.Age = &age
	}
	if !res.FetchedAt.IsZero() {
		r.FetchedAt = stamp(res.FetchedAt)
	}
	return r
}

func ms(d interface{ Microseconds() int64 }) float64 { return float64(d.Microseconds()) / 1000 }

// appendMS appends us microseconds as milliseconds, the number ms gives
// and encoding/json writes (1234 -> 1.234, 1200 -> 1.2, 2000 -> 2), without
// its float formatting's cost.
func appendMS(b []byte, us int64) []byte {
	if us < 0 {
		b = append(b, '-')
		us = -us
	}
	b = strconv.AppendInt(b, us/1000, 10)
	frac := us % 1000
	if frac == 0 {
		return b
	}
	digits := [3]byte{byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
	n := 3
	for digits[n-1] == '0' {
		n--
	}
	b = append(b, '.')
	return append(b, digits[:n]...)
}

// writePlanJSON writes a dry run in the report's shape: dry_run true, each
// step with what it would send (method, URLs, headers) and no results.
func writePlanJSON(w *bufio.Writer, p *purge.Plan) error {
	g := guard{p.Reveals}
	h := head{ok: true, dryRun: true, instances: make([]string, len(p.Instances)), skipped: skippedOf(g, p.Skipped), warnings: guarded(g, p.Warnings)}
	for i, in := range p.Instances {
		h.instances[i] = g.json(in.String())
	}
	var steps []step
	var what []string
	if p.Method != "" {
		s := fmt.Sprintf("%s to %s x %s over %s", p.Method, count(len(p.Instances), "instance"), count(p.URLs.Len(), "URL"), p.Scheme)
		steps = append(steps, step{name: string(purge.StepPurge), method: p.Method, ok: true, summary: "would send " + s,
			scheme: p.Scheme, requestHeaders: guarded(g, p.Header), urls: urlsOf(g, p.URLs)})
		what = append(what, s)
	}
	for _, e := range p.Verify {
		urls := p.VerifyURLs
		if urls == nil {
			urls = p.URLs
		}
		s := fmt.Sprintf("%s to %s x %s over %s", p.VerifyMethod, count(len(p.Instances), "instance"), count(urls.Len(), "URL"), p.Scheme)
		steps = append(steps, step{name: string(purge.StepVerify), method: p.VerifyMethod, expect: string(e), ok: true,
			summary: "would send " + s + ", expecting " + string(e), scheme: p.Scheme, requestHeaders: guarded(g, p.VerifyHeaders),
			origin: g.json(p.Origin), urls: urlsOf(g, urls)})
		what = append(what, fmt.Sprintf("verify (expect %s)", e))
	}
	h.summary = "dry run: would send " + strings.Join(what, ", then ") + "; nothing was sent"
	return writeDoc(w, h, steps)
}

// withheld replaces a text that shows a secret of the job.
const withheld = "(withheld: it shows part of a secret)"

// guard withholds what shows a secret, deciding on the text exactly as it
// is written.
type guard struct{ reveals func(string) bool }

// json is s as JSON shows it: withheld when s, or s as escaped in JSON,
// shows a secret.
func (g guard) json(s string) string {
	if g.reveals == nil || s == "" {
		return s
	}
	if g.reveals(s) {
		return withheld
	}
	if needsEscape(s) && g.reveals(string(appendString(nil, s))) {
		return withheld
	}
	return s
}

// appendURL appends u as a JSON string, withheld when it shows a secret,
// building it in scratch rather than as a string of its own (a report may
// hold a million).
func (g guard) appendURL(b []byte, u purge.URL, scratch *[]byte) []byte {
	s := append((*scratch)[:0], u.Scheme...)
	s = append(s, "://"...)
	s = append(s, u.Host...)
	s = append(s, u.Target...)
	*scratch = s
	// A view of scratch, read only while it is not written.
	return appendString(b, g.json(unsafe.String(unsafe.SliceData(s), len(s))))
}

// needsEscape says whether appendString changes s beyond quoting it.
func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

// shown is s as a writer shows it, after its own escaping: withheld when
// it shows a secret.
func (g guard) shown(s string) string {
	if g.reveals != nil && g.reveals(s) {
		return withheld
	}
	return s
}
