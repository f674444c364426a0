// Package report writes what a purge job did, for people and for programs:
// aligned text for a terminal, Markdown for a CI job summary, and JSON in
// one shape for every command, described by a JSON Schema (Schema,
// report.schema.json; docs/json.md shows it).
//
// Large runs stay readable: above a few dozen results, text and Markdown
// show one line per instance (purged/total, failed, not sent, median and
// 99th percentile time) and the failures, instead of thousands of
// identical "ok" lines; Options.Verbose shows every result. JSON always
// has every result, a line each, written one at a time, so a report of a
// million results is never built in memory.
//
// Everything an instance sent (reasons, bodies, headers) is shown inert:
// control characters (terminal escape sequences) are escaped in text, and
// Markdown's markup characters and HTML are escaped in Markdown, so a
// hostile instance cannot draw on a terminal or put links and images in a
// job summary.
package report

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cdnpurge/cdnpurge/purge"
)

// Format is how a report is written.
type Format string

// The formats.
const (
	Text     Format = "text"     // aligned columns for a terminal
	JSON     Format = "json"     // one JSON object (see Schema); field names are stable
	Markdown Format = "markdown" // tables for a GitHub job summary
)

// DefaultFormat is what front ends write unless told otherwise.
const DefaultFormat = Text

// ParseFormat accepts text, json, markdown (or md), in any case.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "text":
		return Text, nil
	case "json":
		return JSON, nil
	case "markdown", "md":
		return Markdown, nil
	}
	return "", fmt.Errorf("format %q: use text, json or markdown", s)
}

// Options tune a report.
type Options struct {
	// Verbose shows every result in text and Markdown, however many.
	Verbose bool
	// Rows is how many results text and Markdown show one by one before
	// they show a summary per instance instead; zero means DefaultRows.
	Rows int
	// MaxFailures bounds the failed results listed in a summary; zero
	// means DefaultMaxFailures. JSON has them all.
	MaxFailures int
}

// Defaults for Options.
const (
	DefaultRows        = 50
	DefaultMaxFailures = 200
)

// Write writes what the job did: the purge report and the verify reports.
// JSON is one object whatever the job: the run's ok, summary, instances,
// skipped machines and warnings, then its steps in order, each with its
// URLs and results (see Schema).
func Write(w io.Writer, f Format, out *purge.Outcome, o Options) error {
	if o.Rows == 0 {
		o.Rows = DefaultRows
	}
	if o.MaxFailures == 0 {
		o.MaxFailures = DefaultMaxFailures
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	var err error
	switch f {
	case JSON:
		err = writeJSON(bw, out)
	case Markdown:
		err = writeTables(bw, out, o, markdown{guard{out.Reveals}})
	case Text, "":
		err = writeTables(bw, out, o, text{guard{out.Reveals}})
	default:
		err = fmt.Errorf("format %q: use text, json or markdown", f)
	}
	return errors.Join(err, bw.Flush())
}

// count is "1 URL", "2 URLs".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// WritePlan writes what a job would send (a dry run). Its JSON has the
// shape of a report (dry_run true, each step with what it would send and
// no results).
func WritePlan(w io.Writer, f Format, p *purge.Plan) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	if f == JSON {
		return errors.Join(writePlanJSON(bw, p), bw.Flush())
	}
	g := guard{p.Reveals}
	st := style(text{g})
	if f == Markdown {
		st = markdown{g}
	}
	what := fmt.Sprintf("%s to %s x %s", p.Method, count(len(p.Instances), "instance"), count(p.URLs.Len(), "URL"))
	if p.Method == "" {
		what = fmt.Sprintf("verify %s on %s", count(p.URLs.Len(), "URL"), count(len(p.Instances), "instance"))
	}
	st.title(bw, "cdnpurge dry run")
	st.line(bw, fmt.Sprintf("would send %s over %s; nothing was sent", what, p.Scheme))
	st.line(bw, "instances:")
	for _, in := range p.Instances {
		st.item(bw, in.String())
	}
	for _, s := range p.Skipped {
		st.item(bw, fmt.Sprintf("%s: skipped (%s)", s.Instance, s.State))
	}
	for _, warn := range p.Warnings {
		st.line(bw, "warning: "+warn)
	}
	if p.Method != "" {
		st.line(bw, "requests per instance:")
		for _, u := range p.URLs.All() {
			st.item(bw, fmt.Sprintf("%s %s  Host: %s", p.Method, u.Target, u.Host))
		}
		st.line(bw, "headers:")
		for _, h := range p.Header {
			st.item(bw, h)
		}
	}
	for _, e := range p.Verify {
		st.line(bw, "then verify: expect "+string(e))
	}
	return bw.Flush()
}
