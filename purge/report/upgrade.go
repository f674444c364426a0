package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Upgrade returns a JSON report in the current shape (FormatVersion): a
// report of an earlier release (a serve's journal keeps them; an older
// serve answers them) is rewritten as this release writes it, field for
// field, and one that has a format_version is returned as it is. Nothing
// is lost: each field of the old shape has its place in the new one (see
// docs/json.md). A dry run's old JSON, which no serve keeps, is refused.
func Upgrade(b []byte) ([]byte, error) {
	if bytes.HasPrefix(b, []byte(currentPrefix)) {
		return b, nil // as this release writes it: nothing to read
	}
	var probe struct {
		FormatVersion *json.RawMessage `json:"format_version"`
		DryRun        bool             `json:"dry_run"`
		Step          string           `json:"step"`
		Purge         json.RawMessage  `json:"purge"`
		Verify        json.RawMessage  `json:"verify"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("upgrade a report: %w", err)
	}
	if probe.FormatVersion != nil {
		return b, nil
	}
	var h head
	var reps []v1Step
	switch {
	case probe.DryRun:
		return nil, errors.New("upgrade a report: an old dry run's JSON cannot be upgraded (it has no URLs); run the dry run again")
	case probe.Step != "":
		var r v1Step
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("upgrade a report: %w", err)
		}
		reps = []v1Step{r}
		h.ok, h.summary = r.OK, r.Summary
	case probe.Purge != nil || probe.Verify != nil:
		var o struct {
			OK      bool     `json:"ok"`
			Summary string   `json:"summary"`
			Purge   *v1Step  `json:"purge"`
			Verify  []v1Step `json:"verify"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return nil, fmt.Errorf("upgrade a report: %w", err)
		}
		if o.Purge != nil {
			reps = append(reps, *o.Purge)
		}
		reps = append(reps, o.Verify...)
		h.ok, h.summary = o.OK, o.Summary
		if o.OK {
			// "ok" then; now what every step did.
			s := make([]string, len(reps))
			for i, r := range reps {
				s[i] = r.Summary
			}
			h.summary = strings.Join(s, "; then ")
		}
	default:
		return nil, errors.New("upgrade a report: not a cdnpurge JSON report (no step, purge or verify)")
	}
	if len(reps) == 0 {
		return nil, errors.New("upgrade a report: it has no step")
	}
	// Instances and skipped machines were the same in every step; warnings
	// were each step's, the run's own in the first.
	h.instances, h.skipped = nonNil(reps[0].Instances), nonNil(reps[0].Skipped)
	h.warnings = []string{}
	steps := make([]step, len(reps))
	for i, r := range reps {
		for _, w := range r.Warnings {
			if !slices.Contains(h.warnings, w) {
				h.warnings = append(h.warnings, w)
			}
		}
		var err error
		if steps[i], err = r.step(); err != nil {
			return nil, fmt.Errorf("upgrade a report: %w", err)
		}
	}
	var out bytes.Buffer
	out.Grow(len(b) + len(b)/4)
	w := bufio.NewWriter(&out)
	if err := writeDoc(w, h, steps); err != nil {
		return nil, fmt.Errorf("upgrade a report: %w", err)
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// currentPrefix is how every report of this release begins.
var currentPrefix = "{\n  \"format_version\": " + strconv.Itoa(FormatVersion) + ","

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// v1Step is a step as reports without a format_version wrote it: a purge
// step's rows in "results", a verify step's in "checks".
type v1Step struct {
	OK                bool              `json:"ok"`
	Summary           string            `json:"summary"`
	Step              string            `json:"step"`
	Expect            string            `json:"expect"`
	Method            string            `json:"method"`
	Rounds            int               `json:"rounds"`
	DurationMS        float64           `json:"duration_ms"`
	URLs              []string          `json:"urls"`
	Instances         []string          `json:"instances"`
	Skipped           []skippedJSON     `json:"skipped"`
	Warnings          []string          `json:"warnings"`
	RequestHeaders    []string          `json:"request_headers"`
	Origin            string            `json:"origin"`
	ConsistentAfterMS float64           `json:"consistent_after_ms"`
	Results           []json.RawMessage `json:"results"`
	Checks            []json.RawMessage `json:"checks"`
}

// v1Check is a verify row as reports without a format_version wrote it:
// "matched" where every row now says "ok", and "age" a string.
type v1Check struct {
	checkRow
	OK      *bool  `json:"ok"` // never written; shadows rowHead's
	Matched bool   `json:"matched"`
	Age     string `json:"age"`
}

// step is the step in the current shape, its rows converted.
func (r v1Step) step() (step, error) {
	s := step{name: r.Step, method: r.Method, expect: r.Expect, rounds: r.Rounds, ok: r.OK, summary: r.Summary,
		durationMS: r.DurationMS, requestHeaders: nonNil(r.RequestHeaders), origin: r.Origin, consistentAfterMS: r.ConsistentAfterMS}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i, raw := range r.Results {
		var p purgeRow
		if err := json.Unmarshal(raw, &p); err != nil {
			return s, fmt.Errorf("%s step, result %d: %w", r.Step, i+1, err)
		}
		if err := enc.Encode(p); err != nil {
			return s, err
		}
	}
	for i, raw := range r.Checks {
		var c v1Check
		if err := json.Unmarshal(raw, &c); err != nil {
			return s, fmt.Errorf("%s step, check %d: %w", r.Step, i+1, err)
		}
		c.checkRow.OK = c.Matched
		if c.Age != "" {
			n, err := strconv.Atoi(c.Age)
			if err != nil || n < 0 {
				return s, fmt.Errorf("%s step, check %d: age %q is not a number of seconds", r.Step, i+1, c.Age)
			}
			c.checkRow.Age = &n
		}
		if err := enc.Encode(c.checkRow); err != nil {
			return s, err
		}
	}
	rows := buf.Bytes() // a row a line, as Encode ends each
	s.results = func(yield func([]byte) bool) {
		for rest := rows; len(rest) > 0; {
			var row []byte
			row, rest, _ = bytes.Cut(rest, []byte("\n"))
			if !yield(row) {
				return
			}
		}
	}
	s.urls = func(yield func([]byte) bool) {
		var b []byte
		for _, u := range r.URLs {
			if b = appendString(b[:0], u); !yield(b) {
				return
			}
		}
	}
	return s, nil
}
