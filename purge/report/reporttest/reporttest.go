// Package reporttest checks JSON reports against the report's JSON Schema
// (report.Schema): a test that reads cdnpurge's JSON output validates it
// first, so that a field the schema does not describe, a missing one or a
// value of another type fails the test where it appears.
//
//	rep := reporttest.Require(t, stdout) // validated, then decoded
//	reporttest.Validate(b)               // the error, for fuzzers
package reporttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/cdnpurge/cdnpurge/purge/report"
)

// compiled is the schema, compiled once for the process.
var compiled = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(report.Schema()))
	if err != nil {
		return nil, fmt.Errorf("report.schema.json: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(report.SchemaID, doc); err != nil {
		return nil, fmt.Errorf("report.schema.json: %w", err)
	}
	return c.Compile(report.SchemaID)
})

// Validate returns nil when b is one JSON report that the schema accepts,
// else what is wrong and where.
func Validate(b []byte) error {
	sch, err := compiled()
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if _, err := dec.Token(); err == nil {
		return fmt.Errorf("more than one JSON value")
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Errorf("the report does not match report.schema.json: %w", err)
	}
	return nil
}

// Require fails the test unless b (a []byte or string) is a report the
// schema accepts, and returns it decoded.
func Require[T ~[]byte | ~string](t testing.TB, b T) *Report {
	t.Helper()
	if err := Validate([]byte(b)); err != nil {
		t.Fatalf("%v\n%.4000s", err, b)
	}
	var r Report
	dec := json.NewDecoder(bytes.NewReader([]byte(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("decode the report: %v\n%.4000s", err, b)
	}
	return &r
}

// Report is a JSON report decoded: every field the schema describes.
type Report struct {
	FormatVersion int       `json:"format_version"`
	OK            bool      `json:"ok"`
	Summary       string    `json:"summary"`
	DryRun        bool      `json:"dry_run"`
	Instances     []string  `json:"instances"`
	Skipped       []Skipped `json:"skipped"`
	Warnings      []string  `json:"warnings"`
	Steps         []Step    `json:"steps"`
}

// Skipped is a machine that was sent nothing.
type Skipped struct {
	Instance  string `json:"instance"`
	Region    string `json:"region"`
	MachineID string `json:"machine_id"`
	State     string `json:"state"`
}

// Step is one step: a purge or a verify.
type Step struct {
	Name              string   `json:"step"` // purge or verify
	Method            string   `json:"method"`
	Expect            string   `json:"expect"`
	OK                bool     `json:"ok"`
	Summary           string   `json:"summary"`
	DurationMS        float64  `json:"duration_ms"`
	Rounds            int      `json:"rounds"`
	Scheme            string   `json:"scheme"`
	RequestHeaders    []string `json:"request_headers"`
	Origin            string   `json:"origin"`
	ConsistentAfterMS float64  `json:"consistent_after_ms"`
	URLs              []string `json:"urls"`
	Results           []Result `json:"results"`
}

// Result is one URL on one instance, of either step.
type Result struct {
	URL        string  `json:"url"`
	Instance   string  `json:"instance"`
	Region     string  `json:"region"`
	MachineID  string  `json:"machine_id"`
	Status     int     `json:"status"`
	OK         bool    `json:"ok"`
	Attempts   int     `json:"attempts"`
	DurationMS float64 `json:"duration_ms"`
	Error      string  `json:"error"`
	// Purge steps.
	Objects  *int    `json:"objects"`
	PurgedAt float64 `json:"purged_at"`
	// Verify steps.
	Class          string   `json:"class"`
	CacheStatus    string   `json:"cache_status"`
	Source         string   `json:"source"`
	TTL            *float64 `json:"ttl"`
	Age            *int     `json:"age"`
	BytesRead      int64    `json:"bytes_read"`
	Refilled       bool     `json:"refilled"`
	Note           string   `json:"note"`
	Vary           string   `json:"vary"`
	Current        *bool    `json:"current"`
	StaleUnknown   bool     `json:"stale_unknown"`
	FetchedAt      float64  `json:"fetched_at"`
	PredatesPurge  bool     `json:"predates_purge"`
	Uncertain      bool     `json:"uncertain"`
	SelfStored     bool     `json:"self_stored"`
	MatchedAfterMS float64  `json:"matched_after_ms"`
}

// Purge is the purge step, nil when the run had none (verify).
func (r *Report) Purge() *Step {
	for i := range r.Steps {
		if r.Steps[i].Name == "purge" {
			return &r.Steps[i]
		}
	}
	return nil
}

// Verify is the verify steps, in order.
func (r *Report) Verify() []Step {
	var out []Step
	for _, s := range r.Steps {
		if s.Name == "verify" {
			out = append(out, s)
		}
	}
	return out
}

// Only is the run's one step; it fails the test when there are more or
// none.
func (r *Report) Only(t testing.TB) *Step {
	t.Helper()
	if len(r.Steps) != 1 {
		t.Fatalf("the report has %d steps, want 1", len(r.Steps))
	}
	return &r.Steps[0]
}
