package report

import (
	"bufio"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/cdnpurge/cdnpurge/purge"
)

// style is how text and Markdown differ: escaping and table markup.
type style interface {
	title(w *bufio.Writer, s string)
	line(w *bufio.Writer, s string)
	// note writes our words followed by an instance's (or an API's).
	note(w *bufio.Writer, ours, theirs string)
	item(w *bufio.Writer, s string)
	table(w *bufio.Writer, header []string) tableWriter
}

type tableWriter interface {
	row(cells []string)
	end() error
}

func writeTables(w *bufio.Writer, out *purge.Outcome, o Options, st style) error {
	for i, r := range out.Reports() {
		if i > 0 {
			st.line(w, "")
		}
		if err := writeReport(w, r, o, st); err != nil {
			return err
		}
	}
	for _, s := range out.Skipped {
		st.note(w, fmt.Sprintf("skipped %s (not started): machine state ", s.Instance), s.State)
	}
	for _, warn := range out.Warnings {
		st.line(w, "warning: "+warn)
	}
	return nil
}

func writeReport(w *bufio.Writer, r *purge.Report, o Options, st style) error {
	verify := r.Step == purge.StepVerify
	title := "cdnpurge " + strings.ToLower(r.Method)
	if verify {
		title = "cdnpurge verify: expect " + string(r.Expect)
	}
	st.title(w, title)
	if verify && len(r.RequestHeaders) > 0 {
		st.note(w, "each request sent: ", strings.Join(r.RequestHeaders, "; "))
	}
	if verify && r.Origin != "" {
		st.note(w, "compared with the origin: ", r.Origin)
	}
	if r.Len() <= o.Rows || o.Verbose {
		c := columnsOf(r)
		t := st.table(w, c.header())
		for k := range r.Len() {
			t.row(c.cells(r.Result(k)))
		}
		if err := t.end(); err != nil {
			return err
		}
		st.line(w, r.Summary())
		writeProof(w, r, st)
		return nil
	}
	// Many results: one line per instance, then the failures.
	st.line(w, r.Summary())
	head := []string{"INSTANCE", okHeader(verify), "FAILED", "NOT SENT", "P50", "P99"}
	waited := verify && r.Rounds > 1
	if waited {
		head = append(head, "MATCHED AFTER")
	}
	t := st.table(w, head)
	for _, s := range r.Stats() {
		row := []string{s.Instance.String(), fmt.Sprintf("%d/%d", s.OK, s.Total), strconv.Itoa(s.Total - s.OK),
			strconv.Itoa(s.NotSent), purge.FormatDuration(s.P50), purge.FormatDuration(s.P99)}
		if waited {
			row = append(row, matchedAfter(s))
		}
		t.row(row)
	}
	if err := t.end(); err != nil {
		return err
	}
	writeProof(w, r, st)
	if r.Failed() == 0 {
		return nil
	}
	// URLs never sent to an instance share one reason: say it once.
	fc := columns{verify: verify}
	notSent := map[int]string{}
	listed, more := 0, 0
	var failed tableWriter
	for k := range r.Len() {
		res := r.Result(k)
		if res.OK {
			continue
		}
		if res.Attempts == 0 {
			if _, ok := notSent[k%len(r.Instances)]; !ok {
				notSent[k%len(r.Instances)] = reason(res)
			}
			continue
		}
		if listed >= o.MaxFailures {
			more++
			continue
		}
		if failed == nil {
			st.line(w, "failed:")
			failed = st.table(w, fc.header())
		}
		failed.row(fc.cells(res))
		listed++
	}
	var err error
	if failed != nil {
		err = failed.end()
	}
	if more > 0 {
		st.line(w, fmt.Sprintf("... and %d more failed results (all are in --format json)", more))
	}
	for i, s := range r.Stats() {
		if why, ok := notSent[i]; ok {
			st.note(w, fmt.Sprintf("%s: %d URLs not sent: ", s.Instance, s.NotSent), strings.TrimPrefix(why, "not sent: "))
		}
	}
	return err
}

func okHeader(verify bool) string {
	if verify {
		return "MATCHED"
	}
	return "PURGED"
}

// columns says which columns a table of results has: OBJECTS when a
// purge answer said how many objects it removed, VARY when an answer
// varied, CURRENT when copies were compared with the origin.
type columns struct {
	verify, objects, vary, current bool
}

func columnsOf(r *purge.Report) columns {
	c := columns{verify: r.Step == purge.StepVerify, current: r.Origin != ""}
	for k := range r.Len() {
		res := r.Result(k)
		c.objects = c.objects || !c.verify && res.Objects >= 0
		c.vary = c.vary || res.Vary != ""
	}
	return c
}

// header is the table's header: OBJECTS and CURRENT go before RESULT
// (whose long cells follow the table: it stays last in a purge table), and
// VARY last.
func (c columns) header() []string {
	var extra []string
	if c.objects {
		extra = append(extra, "OBJECTS")
	}
	if c.current {
		extra = append(extra, "CURRENT")
	}
	h := beforeResult(header(c.verify), extra, c.verify)
	if c.vary {
		h = append(h, "VARY")
	}
	return h
}

func (c columns) cells(res purge.Result) []string {
	var extra []string
	if c.objects {
		n := "-"
		if res.Objects >= 0 {
			n = strconv.Itoa(res.Objects)
		}
		extra = append(extra, n)
	}
	if c.current {
		cur := "?"
		if res.Current != nil {
			cur = map[bool]string{true: "yes", false: "NO"}[*res.Current]
		}
		extra = append(extra, cur)
	}
	row := beforeResult(cells(res, c.verify), extra, c.verify)
	if c.vary {
		row = append(row, res.Vary)
	}
	return row
}

// beforeResult inserts extra before the RESULT column (the one before last
// in a verify table, the last in a purge table).
func beforeResult(row, extra []string, verify bool) []string {
	if len(extra) == 0 {
		return row
	}
	at := len(row) - 1
	if verify {
		at = len(row) - 2 // HEADER follows RESULT
	}
	return append(append(append([]string{}, row[:at]...), extra...), row[at:]...)
}

func matchedAfter(s purge.InstanceStats) string {
	if s.OK < s.Total {
		return "-"
	}
	return purge.FormatDuration(s.MatchedAfter)
}

// writeProof names, after a verify step's table, the instances that serve
// another version than the origin, and (after a wait) each instance's
// time until it matched.
func writeProof(w *bufio.Writer, r *purge.Report, st style) {
	if r.Step != purge.StepVerify {
		return
	}
	if r.Origin != "" {
		var other []string
		seen := map[int]bool{}
		for k := range r.Len() {
			if res := r.Result(k); res.Current != nil && !*res.Current && !seen[k%len(r.Instances)] {
				seen[k%len(r.Instances)] = true
				other = append(other, res.Instance.String())
			}
		}
		if len(other) > 0 {
			st.line(w, fmt.Sprintf("serving another version than the origin: %s", strings.Join(other, ", ")))
		}
	}
	if r.Rounds > 1 && r.Len() <= DefaultRows*4 {
		var parts []string
		for _, s := range r.Stats() {
			parts = append(parts, s.Instance.String()+" "+matchedAfter(s))
		}
		st.line(w, "time until every check of an instance matched: "+strings.Join(parts, ", "))
	}
}

func header(verify bool) []string {
	if verify {
		return []string{"URL", "INSTANCE", "STATUS", "CACHE", "AGE", "TIME", "RESULT", "HEADER"}
	}
	return []string{"URL", "INSTANCE", "STATUS", "ATTEMPTS", "TIME", "RESULT"}
}

func cells(res purge.Result, verify bool) []string {
	status := "-"
	if res.Status != 0 {
		status = strconv.Itoa(res.Status)
	}
	result := "ok"
	switch {
	case res.Refilled && res.Uncertain:
		result = "ok (refilled, as accepted: Age cannot tell)"
	case res.Refilled:
		result = "ok (refilled after the purge)"
	case res.Current != nil && *res.Current:
		result = "ok (current)"
	}
	if !res.OK {
		result = "FAILED: " + reason(res)
	}
	if !verify {
		return []string{res.URL.String(), res.Instance.String(), status, strconv.Itoa(res.Attempts), purge.FormatDuration(res.Duration), result}
	}
	age := "-"
	if res.Age >= 0 {
		age = strconv.Itoa(res.Age)
	}
	class := string(res.Class)
	if res.StaleUnknown {
		class += " (fresh or stale)"
	}
	hdr := res.CacheStatus
	if hdr == "" {
		hdr = "(none)"
	} else if res.Source != "" && res.Source != "cache-status" {
		hdr = res.Source + ": " + hdr
	}
	return []string{res.URL.String(), res.Instance.String(), status, class, age, purge.FormatDuration(res.Duration), result, hdr}
}

// reason is why a result failed, without the instance (its own column).
func reason(res purge.Result) string {
	var ie *purge.InstanceError
	if errors.As(res.Err, &ie) && ie.Reason != "" {
		return ie.Reason
	}
	if res.Err != nil {
		return res.Err.Error()
	}
	return "failed"
}

// text is aligned columns for a terminal, with control characters escaped.
// Each line and cell is checked, as escaped, against the job's secrets.
type text struct{ g guard }

func (text) title(*bufio.Writer, string) {}

// line writes this program's own words (a summary, a warning): they show
// no secret.
func (t text) line(w *bufio.Writer, s string) {
	_, _ = w.WriteString(inert(s))
	_ = w.WriteByte('\n')
}
func (t text) item(w *bufio.Writer, s string) {
	_, _ = w.WriteString("  " + t.g.shown(inert(s)) + "\n")
}
func (t text) note(w *bufio.Writer, ours, theirs string) {
	_, _ = w.WriteString(inert(ours) + t.g.shown(inert(theirs)) + "\n")
}
func (t text) table(w *bufio.Writer, header []string) tableWriter {
	tt := &textTable{w: w, tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0), result: -1, g: t.g}
	for i, h := range header {
		if h == "RESULT" {
			tt.result = i
		}
	}
	tt.row(header)
	return tt
}

// resultWidth is the widest RESULT cell a text table shows in full. A
// longer one (a 300-character reason, say) would pad the column, and so
// every row, to its width: the cell then shows a short result and a
// reference, and the reason follows the table, once for all the rows that
// share it.
const resultWidth = 48

type textTable struct {
	w      *bufio.Writer
	tw     *tabwriter.Writer
	result int      // the RESULT column; -1 when there is none
	notes  []string // the long results, by reference - 1
	g      guard
}

func (t *textTable) row(cells []string) {
	for i, c := range cells {
		if i > 0 {
			_, _ = t.tw.Write([]byte{'\t'})
		}
		c = t.g.shown(strings.ReplaceAll(inert(c), "\t", " "))
		if i == t.result && utf8.RuneCountInString(c) > resultWidth {
			c = t.note(c)
		}
		_, _ = t.tw.Write([]byte(c))
	}
	_, _ = t.tw.Write([]byte{'\n'})
}

// note keeps a long result for below the table and returns its cell: the
// result's first words ("FAILED") and the reference, e.g. "FAILED [1]".
func (t *textTable) note(c string) string {
	short, rest, ok := strings.Cut(c, ": ")
	if !ok || utf8.RuneCountInString(short) > resultWidth-5 {
		short, rest = "see", c
	}
	n := slices.Index(t.notes, rest) + 1
	if n == 0 {
		t.notes = append(t.notes, rest)
		n = len(t.notes)
	}
	return fmt.Sprintf("%s [%d]", short, n)
}

func (t *textTable) end() error {
	if err := t.tw.Flush(); err != nil {
		return err
	}
	for i, n := range t.notes {
		fmt.Fprintf(t.w, "%s\n", t.g.shown(fmt.Sprintf("[%d] %s", i+1, n)))
	}
	return nil
}

// inert escapes what a terminal would act on: control characters (ESC
// among them) and the Unicode format characters that reorder text.
func inert(s string) string {
	if !strings.ContainsFunc(s, unsafeRune) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unsafeRune(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return r < ' ' && r != '\t' || r == 0x7f || r >= 0x80 && r < 0xa0 || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 || r == 0xfeff
}

// markdown is GitHub-flavoured Markdown: every table cell is a code span,
// where nothing is markup (no link, image, HTML or autolink), and other
// text is escaped. Each piece is checked, as escaped, against the job's
// secrets.
type markdown struct{ g guard }

func (m markdown) title(w *bufio.Writer, s string) {
	_, _ = w.WriteString("### " + mdText(s) + "\n\n")
}
func (m markdown) line(w *bufio.Writer, s string) {
	if s == "" {
		_ = w.WriteByte('\n')
		return
	}
	_, _ = w.WriteString(mdText(s) + "\n\n")
}
func (m markdown) item(w *bufio.Writer, s string) { _, _ = w.WriteString("- " + m.g.code(s) + "\n") }
func (m markdown) note(w *bufio.Writer, ours, theirs string) {
	_, _ = w.WriteString(mdText(ours) + m.g.code(theirs) + "\n\n")
}
func (m markdown) table(w *bufio.Writer, header []string) tableWriter {
	t := &mdTable{w: w, g: m.g}
	_, _ = w.WriteString("|")
	for _, h := range header {
		_, _ = w.WriteString(" " + strings.ToUpper(h[:1]) + strings.ToLower(h[1:]) + " |")
	}
	_, _ = w.WriteString("\n|" + strings.Repeat(" --- |", len(header)) + "\n")
	return t
}

type mdTable struct {
	w *bufio.Writer
	g guard
}

func (t *mdTable) row(cells []string) {
	_, _ = t.w.WriteString("|")
	for _, c := range cells {
		_, _ = t.w.WriteString(" " + t.g.code(c) + " |")
	}
	_, _ = t.w.WriteString("\n")
}
func (t *mdTable) end() error {
	_, err := t.w.WriteString("\n")
	return err
}

// code is s as a Markdown code span, or the withheld mark when the span
// shows a secret.
func (g guard) code(s string) string {
	if c := mdCode(s); g.reveals == nil || !g.reveals(c) {
		return c
	}
	return mdCode(withheld)
}

// mdCode makes s a code span: its fence is longer than any run of
// backticks in s, and '|' is escaped, as table cells need even in code.
func mdCode(s string) string {
	s = strings.NewReplacer("\n", " ", "\r", " ", "\t", " ", "|", `\|`).Replace(inert(s))
	if s == "" {
		return ""
	}
	run, longest := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return fence + s + fence
}

// mdText escapes what Markdown would read as markup, HTML or a link. It is
// for our own words; what instances send goes in code spans (mdCode).
func mdText(s string) string {
	var b strings.Builder
	for _, r := range inert(s) {
		switch {
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '&':
			b.WriteString("&amp;")
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case strings.ContainsRune("\\`*_[]|!~#", r):
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
