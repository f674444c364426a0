package purge

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Format is how a report is written.
type Format string

// The report formats.
const (
	FormatText     Format = "text"     // aligned columns for a terminal
	FormatJSON     Format = "json"     // one JSON object; field names are stable
	FormatMarkdown Format = "markdown" // a table for a GitHub step summary
)

// ParseFormat accepts text, json, markdown (or md).
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "text":
		return FormatText, nil
	case "json":
		return FormatJSON, nil
	case "markdown", "md":
		return FormatMarkdown, nil
	}
	return "", fmt.Errorf("format %q: use text, json or markdown", s)
}

// table is the shape shared by every report: a title, rows and a summary.
type table struct {
	title   string
	header  []string
	rows    [][]string
	summary string
}

func (t table) write(w io.Writer, f Format) error {
	switch f {
	case FormatMarkdown:
		var b strings.Builder
		fmt.Fprintf(&b, "### %s\n\n%s\n\n", t.title, mdEscape(t.summary))
		b.WriteString("| " + strings.Join(t.header, " | ") + " |\n")
		b.WriteString("|" + strings.Repeat(" --- |", len(t.header)) + "\n")
		for _, r := range t.rows {
			cells := make([]string, len(r))
			for i, c := range r {
				cells[i] = mdEscape(c)
			}
			b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
		}
		_, err := io.WriteString(w, b.String()+"\n")
		return err
	default:
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(t.header, "\t"))
		for _, r := range t.rows {
			fmt.Fprintln(tw, strings.Join(r, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		_, err := fmt.Fprintln(w, t.summary)
		return err
	}
}

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
	case d >= time.Millisecond:
		return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + "ms"
	}
	return d.Round(time.Microsecond).String()
}

// writeJSON writes v as JSON, indented when it is small enough for a person
// to read; large reports (thousands of results) stay compact, which is
// several times faster to write and to parse.
func writeJSON(w io.Writer, v any, rows int) error {
	enc := json.NewEncoder(w)
	if rows <= 1000 {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}

// Write writes the report in format f.
func (r *Report) Write(w io.Writer, f Format) error {
	if f == FormatJSON {
		return writeJSON(w, r.jsonView(), len(r.Results))
	}
	t := table{title: "cdnpurge " + strings.ToLower(r.Method), summary: r.Summary(),
		header: []string{"URL", "INSTANCE", "STATUS", "ATTEMPTS", "TIME", "RESULT"}}
	if f == FormatMarkdown {
		t.header = []string{"URL", "Instance", "Status", "Attempts", "Time", "Result"}
	}
	for _, res := range r.Results {
		status, result := "-", "ok"
		if res.Status != 0 {
			status = strconv.Itoa(res.Status)
		}
		if !res.OK {
			result = "FAILED: " + res.Error
		}
		t.rows = append(t.rows, []string{res.URL, res.Instance, status, strconv.Itoa(res.Attempts), fmtDur(res.Duration), result})
	}
	return t.write(w, f)
}

// WriteReports writes a purge report and the verify reports that followed
// it. In JSON it writes one object, {"purge": ..., "verify": [...]}, when
// there are verify reports, and the purge report alone otherwise.
func WriteReports(w io.Writer, f Format, rep *Report, checks []*VerifyReport) error {
	if f == FormatJSON && len(checks) > 0 {
		views := make([]verifyJSON, len(checks))
		rows := len(rep.Results)
		for i, c := range checks {
			views[i] = c.jsonView()
			rows += len(c.Checks)
		}
		return writeJSON(w, struct {
			Purge  reportJSON   `json:"purge"`
			Verify []verifyJSON `json:"verify"`
		}{rep.jsonView(), views}, rows)
	}
	if err := rep.Write(w, f); err != nil {
		return err
	}
	for _, c := range checks {
		if _, err := fmt.Fprintln(w); err != nil {
			return err
		}
		if err := c.Write(w, f); err != nil {
			return err
		}
	}
	return nil
}
