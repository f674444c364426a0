package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/cdnpurge/cdnpurge/purge"
)

// The JSON field names are stable; fields are only ever added.

// reportHead is a report's JSON without its results: the fields before
// "urls", which is streamed (a million URLs are never held as strings),
// and reportTail, those after it.
type reportHead struct {
	OK         bool    `json:"ok"`
	Summary    string  `json:"summary"`
	Step       string  `json:"step"`
	Expect     string  `json:"expect,omitempty"`
	Method     string  `json:"method"`
	Rounds     int     `json:"rounds,omitempty"`
	DurationMS float64 `json:"duration_ms"`
}

type reportTail struct {
	Instances []string      `json:"instances"`
	Skipped   []skippedJSON `json:"skipped,omitempty"`
	Warnings  []string      `json:"warnings,omitempty"`
	// Verify steps: the headers sent with every request, the origin
	// compared with, and (with a wait) the time until every check matched.
	RequestHeaders    []string `json:"request_headers,omitempty"`
	Origin            string   `json:"origin,omitempty"`
	ConsistentAfterMS float64  `json:"consistent_after_ms,omitempty"`
}

type skippedJSON struct {
	Instance  string `json:"instance"`
	Region    string `json:"region,omitempty"`
	MachineID string `json:"machine_id,omitempty"`
	State     string `json:"state"`
}

// purgeRow is one purge result.
type purgeRow struct {
	URL        string  `json:"url"`
	Instance   string  `json:"instance"`
	Region     string  `json:"region,omitempty"`
	MachineID  string  `json:"machine_id,omitempty"`
	Status     int     `json:"status"`
	OK         bool    `json:"ok"`
	Attempts   int     `json:"attempts"`
	DurationMS float64 `json:"duration_ms"`
	Error      string  `json:"error,omitempty"`
	// Objects is what the answer said it removed (the Purged header);
	// absent when it did not say. PurgedAt is the instance's time of the
	// purge (Cdnpurge-Purge-Time), in seconds since the epoch.
	Objects  *int    `json:"objects,omitempty"`
	PurgedAt float64 `json:"purged_at,omitempty"`
}

// checkRow is one verify result.
type checkRow struct {
	URL         string   `json:"url"`
	Instance    string   `json:"instance"`
	Region      string   `json:"region,omitempty"`
	MachineID   string   `json:"machine_id,omitempty"`
	Status      int      `json:"status"`
	Class       string   `json:"class"`
	CacheStatus string   `json:"cache_status,omitempty"`
	Source      string   `json:"source,omitempty"`
	TTL         *float64 `json:"ttl,omitempty"`
	Age         string   `json:"age,omitempty"`
	Matched     bool     `json:"matched"`
	Refilled    bool     `json:"refilled,omitempty"`
	Note        string   `json:"note,omitempty"`
	Attempts    int      `json:"attempts"`
	BytesRead   int64    `json:"bytes_read"`
	DurationMS  float64  `json:"duration_ms"`
	Error       string   `json:"error,omitempty"`
	// What proves (or cannot prove) the check: see purge.Result.
	Vary           string  `json:"vary,omitempty"`
	Current        *bool   `json:"current,omitempty"`
	StaleUnknown   bool    `json:"stale_unknown,omitempty"`
	FetchedAt      float64 `json:"fetched_at,omitempty"`
	PredatesPurge  bool    `json:"predates_purge,omitempty"`
	Uncertain      bool    `json:"uncertain,omitempty"`
	SelfStored     bool    `json:"self_stored,omitempty"`
	MatchedAfterMS float64 `json:"matched_after_ms,omitempty"`
}

// indentBelow is the size under which JSON is indented for people to read;
// larger reports stay compact, several times faster to write and parse.
const indentBelow = 1000

func writeJSON(w *bufio.Writer, out *purge.Outcome, compact bool) error {
	reps := out.Reports()
	rows := 0
	for _, r := range reps {
		rows += r.Len()
	}
	if rows > indentBelow || compact {
		return writeOutcome(w, out, reps)
	}
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	if err := writeOutcome(bw, out, reps); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	var ind bytes.Buffer
	if err := json.Indent(&ind, buf.Bytes(), "", "  "); err != nil {
		return err
	}
	_, err := w.Write(ind.Bytes())
	return err
}

func writeOutcome(w *bufio.Writer, out *purge.Outcome, reps []*purge.Report) error {
	if len(reps) == 1 {
		if err := writeReportJSON(w, reps[0]); err != nil {
			return err
		}
		return w.WriteByte('\n')
	}
	summary := "ok"
	if err := out.Err(); err != nil {
		summary = "FAILED: " + err.Error()
	}
	head, err := json.Marshal(struct {
		OK      bool   `json:"ok"`
		Summary string `json:"summary"`
	}{out.OK(), summary})
	if err != nil {
		return err
	}
	_, _ = w.Write(head[:len(head)-1])
	if out.Purge != nil {
		_, _ = w.WriteString(`,"purge":`)
		if err := writeReportJSON(w, out.Purge); err != nil {
			return err
		}
	}
	_, _ = w.WriteString(`,"verify":[`)
	for i, r := range out.Verify {
		if i > 0 {
			_ = w.WriteByte(',')
		}
		if err := writeReportJSON(w, r); err != nil {
			return err
		}
	}
	_, err = w.WriteString("]}\n")
	return err
}

// writeReportJSON writes one report, its URLs and results one at a time.
// Every string is checked as written (and as read back) against the job's
// secrets, and withheld whole when it shows one.
func writeReportJSON(w *bufio.Writer, r *purge.Report) error {
	g := guard{r.Reveals}
	h := reportHead{OK: r.OK(), Summary: r.Summary(), Step: string(r.Step), Method: r.Method, DurationMS: ms(r.Duration)}
	tail := reportTail{Instances: make([]string, len(r.Instances)), Warnings: r.Warnings}
	if r.Step == purge.StepVerify {
		h.Expect, h.Rounds = string(r.Expect), r.Rounds
		for _, l := range r.RequestHeaders {
			tail.RequestHeaders = append(tail.RequestHeaders, g.json(l))
		}
		tail.Origin, tail.ConsistentAfterMS = g.json(r.Origin), ms(r.ConsistentAfter)
	}
	for i, in := range r.Instances {
		tail.Instances[i] = g.json(in.String())
	}
	for _, s := range r.Skipped {
		tail.Skipped = append(tail.Skipped, skippedJSON{g.json(s.Instance.String()), g.json(s.Instance.Region), g.json(s.Instance.MachineID), g.json(s.State)})
	}
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	_, _ = w.Write(b[:len(b)-1])
	_, _ = w.WriteString(`,"urls":[`)
	buf := make([]byte, 0, 512)
	var scratch []byte
	for i, u := range r.URLs.All() {
		buf = buf[:0]
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = g.appendURL(buf, u, &scratch)
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	if b, err = json.Marshal(tail); err != nil {
		return err
	}
	_, _ = w.WriteString("],")
	_, _ = w.Write(b[1 : len(b)-1])
	key := `,"results":[`
	if r.Step == purge.StepVerify {
		key = `,"checks":[`
	}
	_, _ = w.WriteString(key)
	// Rows are appended by hand: encoding/json's reflection was most of the
	// time of a large report (1.1 µs a row; see BenchmarkWrite30k). The
	// field names and order are those of purgeRow and checkRow, which
	// TestRowsAreTheStructs holds to it.
	// Each instance's fields, and each URL's, are escaped once.
	insts := make([][]byte, len(r.Instances))
	for i, in := range r.Instances {
		insts[i] = appendInstance(nil, g, tail.Instances[i], in)
	}
	var url []byte
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
		buf = buf[:0]
		if k > 0 {
			buf = append(buf, ',')
		}
		buf = appendRow(buf, g, res, url, insts[k%len(insts)], e, r.Step == purge.StepVerify)
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	_, err = w.WriteString("]}")
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
	if !verify {
		b = append(b, `,"ok":`...)
		b = strconv.AppendBool(b, res.OK)
	} else {
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
		if res.TTL != nil {
			b = append(b, `,"ttl":`...)
			b = strconv.AppendFloat(b, *res.TTL, 'g', -1, 64)
		}
		if res.Age >= 0 {
			b = append(b, `,"age":"`...)
			b = strconv.AppendInt(b, int64(res.Age), 10)
			b = append(b, '"')
		}
		b = append(b, `,"matched":`...)
		b = strconv.AppendBool(b, res.OK)
		if res.Refilled {
			b = append(b, `,"refilled":true`...)
		}
		if res.Note != "" {
			b = append(b, `,"note":`...)
			b = appendString(b, g.json(res.Note))
		}
	}
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(res.Attempts), 10)
	if verify {
		b = append(b, `,"bytes_read":`...)
		b = strconv.AppendInt(b, res.BytesRead, 10)
	}
	b = append(b, `,"duration_ms":`...)
	b = appendMS(b, res.Duration.Microseconds())
	if errMsg != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, errMsg)
	}
	if !verify {
		if res.Objects >= 0 {
			b = append(b, `,"objects":`...)
			b = strconv.AppendInt(b, int64(res.Objects), 10)
		}
		if !res.PurgedAt.IsZero() {
			b = append(b, `,"purged_at":`...)
			b = strconv.AppendFloat(b, stamp(res.PurgedAt), 'f', -1, 64)
		}
		return append(b, "}\n"...)
	}
	if res.Vary != "" {
		b = append(b, `,"vary":`...)
		b = appendString(b, res.Vary)
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
		b = strconv.AppendFloat(b, stamp(res.FetchedAt), 'f', -1, 64)
	}
	for _, f := range []struct {
		on   bool
		name string
	}{{res.PredatesPurge, `,"predates_purge":true`}, {res.Uncertain, `,"uncertain":true`}, {res.SelfStored, `,"self_stored":true`}} {
		if f.on {
			b = append(b, f.name...)
		}
	}
	if res.MatchedAfter > 0 {
		b = append(b, `,"matched_after_ms":`...)
		b = strconv.AppendFloat(b, ms(res.MatchedAfter), 'g', -1, 64)
	}
	return append(b, "}\n"...)
}

// stamp is t in seconds since the epoch, to the microsecond.
func stamp(t time.Time) float64 { return float64(t.UnixMicro()) / 1e6 }

// appendString appends s as a JSON string, as encoding/json writes it
// without HTML escaping: invalid UTF-8 becomes U+FFFD, and U+2028 and
// U+2029 are escaped.
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

func purgeRowOf(res purge.Result) purgeRow {
	r := purgeRow{res.URL.String(), res.Instance.String(), res.Instance.Region, res.Instance.MachineID,
		res.Status, res.OK, res.Attempts, ms(res.Duration), errText(res), nil, 0}
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
	age := ""
	if res.Age >= 0 {
		age = strconv.Itoa(res.Age)
	}
	r := checkRow{res.URL.String(), res.Instance.String(), res.Instance.Region, res.Instance.MachineID,
		res.Status, string(res.Class), res.CacheStatus, res.Source, res.TTL, age, res.OK, res.Refilled, res.Note,
		res.Attempts, res.BytesRead, ms(res.Duration), errText(res),
		res.Vary, res.Current, res.StaleUnknown, 0, res.PredatesPurge, res.Uncertain, res.SelfStored, ms(res.MatchedAfter)}
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

func writePlanJSON(w *bufio.Writer, p *purge.Plan) error {
	type request struct {
		Method string `json:"method"`
		Target string `json:"target"`
		Host   string `json:"host"`
	}
	v := struct {
		DryRun    bool          `json:"dry_run"`
		Scheme    string        `json:"scheme"`
		Instances []string      `json:"instances"`
		Skipped   []skippedJSON `json:"skipped,omitempty"`
		Requests  []request     `json:"requests"`
		Headers   []string      `json:"headers"`
		Verify    []string      `json:"verify,omitempty"`
	}{DryRun: true, Scheme: p.Scheme, Headers: slices.Clone(p.Header)}
	g := guard{p.Reveals}
	for _, in := range p.Instances {
		v.Instances = append(v.Instances, g.json(in.String()))
	}
	for _, s := range p.Skipped {
		v.Skipped = append(v.Skipped, skippedJSON{g.json(s.Instance.String()), g.json(s.Instance.Region), g.json(s.Instance.MachineID), g.json(s.State)})
	}
	if p.Method != "" {
		for _, u := range p.URLs.All() {
			v.Requests = append(v.Requests, request{p.Method, g.json(u.Target), g.json(u.Host)})
		}
	}
	for i, h := range v.Headers {
		v.Headers[i] = g.json(h)
	}
	for _, e := range p.Verify {
		v.Verify = append(v.Verify, string(e))
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
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
