// Package api is the HTTP API of cdnpurge serve, the broadcaster, as both
// sides see it: the request bodies (Request, VerifyRequest), the paths and
// headers, and Client, which sends a job to a serve and returns its report
// in the format asked for. It depends on package purge only for its
// Expect values, and on package report to give JSON reports in the
// current shape whatever the serve's release, so that a front end that
// only talks to a serve (the Dagger module, say) stays small.
//
// The API in short (see the README's serve section):
//
//	POST /v1/purge            a Request; 200 when every instance took it, 502 when some did not,
//	                          with the report as `cdnpurge purge` writes it (?format=json|text|markdown)
//	POST /v1/purge?wait=false 202 {"job": ID} at once, Location: /v1/jobs/ID
//	POST /v1/verify           a VerifyRequest; 200 when every check matched, 502 when not
//	GET  /v1/jobs/ID          the job's state (queued, running, done), report and pending replays
//	GET  /healthz, /metrics   health and Prometheus metrics
//
// Every /v1 request carries "Authorization: Bearer <token>". Errors that
// sent nothing (a bad request, no instances found, 401, 429 with
// Retry-After) answer a JSON Error.
package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cdnpurge/cdnpurge/purge"
)

// Paths of the API.
const (
	PathPurge  = "/v1/purge"
	PathVerify = "/v1/verify"
	PathJobs   = "/v1/jobs/"
	PathHealth = "/healthz"
	PathMetric = "/metrics"
)

// Headers a serve sets on a job's answer.
const (
	// HeaderJob carries the job's ID.
	HeaderJob = "Cdnpurge-Job"
	// HeaderFailure, on a 502, says which step failed and how many
	// results, e.g. "purge: 1 of 3 results failed on 1 of 3 instances".
	HeaderFailure = "Cdnpurge-Failure"
)

// Request is a purge job: URLs (or tags, or a ban) to send to every
// instance the serve finds. Fields mean what the purge.Job fields of the
// same names mean.
type Request struct {
	URLs []string `json:"urls"`
	// Tags purges every object tagged with one of them (vmod xkey) instead
	// of one URL; URLs then only carry the Host.
	Tags []string `json:"tags,omitempty"`
	Soft bool     `json:"soft,omitempty"`
	Ban  *Ban     `json:"ban,omitempty"`
	// Method is PURGE by default; the serve accepts only its purge methods.
	Method  string   `json:"method,omitempty"`
	Headers []string `json:"headers,omitempty"`
	RawURLs bool     `json:"raw_urls,omitempty"`
	// Verify lists the checks after the purge: "purged", or strict steps
	// such as ["miss", "hit"]. A string "miss,hit" is accepted too.
	Verify     Steps    `json:"verify,omitempty"`
	VerifyURLs []string `json:"verify_urls,omitempty"`
}

// Ban is a ban: a regular expression over paths, and optionally one over
// content types.
type Ban struct {
	Regex       string `json:"regex"`
	ContentType string `json:"content_type,omitempty"`
}

// VerifyRequest asks every instance for URLs and checks what each cache
// says against Expect (hit by default), sending no purge.
type VerifyRequest struct {
	URLs    []string     `json:"urls"`
	Expect  purge.Expect `json:"expect,omitempty"`
	Method  string       `json:"method,omitempty"` // HEAD (default) or GET
	Headers []string     `json:"headers,omitempty"`
	RawURLs bool         `json:"raw_urls,omitempty"`
	// Wait and Interval are durations such as "2m" and "5s".
	Wait     string `json:"wait,omitempty"`
	Interval string `json:"interval,omitempty"`
}

// Steps are verify steps. In JSON they are a list of names, one name, or
// names separated by commas; true means ["purged"].
type Steps []purge.Expect

// UnmarshalJSON reads "purged", "miss,hit", ["miss", "hit"] or true.
func (s *Steps) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	var names []string
	switch {
	case string(b) == "null" || string(b) == "false":
		*s = nil
		return nil
	case string(b) == "true":
		*s = Steps{purge.ExpectPurged}
		return nil
	case len(b) > 0 && b[0] == '"':
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		names = strings.Split(one, ",")
	default:
		if err := json.Unmarshal(b, &names); err != nil {
			return fmt.Errorf("verify: give a step such as \"purged\" or a list such as [\"miss\", \"hit\"]")
		}
	}
	out := Steps{}
	for _, n := range names {
		e, err := purge.ParseExpect(strings.TrimSpace(n))
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		out = append(out, e)
	}
	*s = out
	return nil
}

// Accepted is the answer to a job sent with ?wait=false.
type Accepted struct {
	Job string `json:"job"`
}

// Error is the answer when nothing was sent: what was wrong, and for a job
// that was accepted but not run (the serve is stopping), its ID.
type Error struct {
	Error string `json:"error"`
	Job   string `json:"job,omitempty"`
}
