package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cdnpurge/cdnpurge/purge/report"
)

// Client sends jobs to a serve. Its zero value is not usable: set URL.
type Client struct {
	// URL is the serve's base URL, e.g. https://purge.example.com.
	URL string
	// Token is the API token, sent as "Authorization: Bearer <token>".
	Token string
	// HTTP sends the requests; nil means a client with no overall timeout
	// (a job takes as long as it takes: bound it with the context).
	HTTP *http.Client
	// UserAgent defaults to "cdnpurge".
	UserAgent string
	// Busy is how long a job refused with 429 (the serve is full) is
	// offered again, honouring Retry-After; zero means DefaultBusy.
	Busy time.Duration
}

// DefaultBusy is how long Client offers a job to a busy serve.
const DefaultBusy = 30 * time.Second

// Result is a serve's answer to a job.
type Result struct {
	// Status is the HTTP status: 200 every instance took the job (or every
	// check matched), 502 some did not.
	Status int
	// Job is the job's ID at the serve.
	Job string
	// Report is the report in the format asked for; a JSON report in the
	// current shape (report.FormatVersion), whatever the serve's release.
	Report []byte
	// Failure says, on a 502, which step failed and how many results.
	Failure string
}

// OK says whether every instance took the job.
func (r *Result) OK() bool { return r.Status == http.StatusOK }

// StatusError is an answer that sent nothing: a bad request, a refused
// token, a busy or stopping serve, no instances found.
type StatusError struct {
	URL    string
	Status int
	// Message is the serve's reason.
	Message string
	// Job is set when the serve accepted the job but did not run it yet
	// (it was stopping): it runs when the serve starts again.
	Job string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("serve %s answered %d %s", e.URL, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Job != "" {
		s += " (job " + e.Job + ")"
	}
	return s
}

// Purge sends a purge job and waits for its report in format (json, text
// or markdown), every row shown when verbose.
func (c *Client) Purge(ctx context.Context, req Request, format string, verbose bool) (*Result, error) {
	return c.send(ctx, PathPurge, req, format, verbose)
}

// Verify sends a verify job and waits for its report.
func (c *Client) Verify(ctx context.Context, req VerifyRequest, format string, verbose bool) (*Result, error) {
	return c.send(ctx, PathVerify, req, format, verbose)
}

// maxReport bounds a report read from a serve.
const maxReport = 1 << 30

func (c *Client) send(ctx context.Context, path string, body any, format string, verbose bool) (*Result, error) {
	base, err := url.Parse(strings.TrimSpace(c.URL))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("serve URL %q: give the serve's base URL, e.g. https://purge.example.com", c.URL)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if format != "" {
		q.Set("format", format)
	}
	if verbose {
		q.Set("verbose", "1")
	}
	target := strings.TrimSuffix(base.String(), "/") + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	hc := c.HTTP
	if hc == nil {
		// A transport of its own, closed after the job: nothing lingers
		// in a program that sends one job.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		defer tr.CloseIdleConnections()
		hc = &http.Client{Transport: tr}
	}
	busy := c.Busy
	if busy == 0 {
		busy = DefaultBusy
	}
	giveUp := time.Now().Add(busy)
	for {
		res, retryAfter, err := c.post(ctx, hc, target, b)
		if err != nil {
			return nil, err
		}
		if res != nil {
			return res, nil
		}
		if time.Now().Add(retryAfter).After(giveUp) {
			return nil, &StatusError{URL: c.URL, Status: http.StatusTooManyRequests, Message: fmt.Sprintf("busy for more than %s", busy)}
		}
		t := time.NewTimer(retryAfter)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// post sends once: a result, or (nil, wait) when the serve is busy.
func (c *Client) post(ctx context.Context, hc *http.Client, target string, body []byte) (*Result, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	ua := c.UserAgent
	if ua == "" {
		ua = "cdnpurge"
	}
	req.Header.Set("User-Agent", ua)
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		// *url.Error names the URL, never the token (it is in a header).
		return nil, 0, fmt.Errorf("send the job to serve: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReport))
	if err != nil {
		return nil, 0, fmt.Errorf("read the answer of serve %s: %w", c.URL, err)
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusBadGateway:
		if resp.Header.Get(HeaderJob) == "" {
			return nil, 0, &StatusError{URL: c.URL, Status: resp.StatusCode, Message: "not a cdnpurge serve (no " + HeaderJob + " header): " + snippet(data)}
		}
		if isJSON(resp.Header.Get("Content-Type")) {
			// A serve of an earlier release answers the earlier shape.
			if up, err := report.Upgrade(data); err == nil {
				data = up
			}
		}
		return &Result{Status: resp.StatusCode, Job: resp.Header.Get(HeaderJob), Report: data, Failure: resp.Header.Get(HeaderFailure)}, 0, nil
	case http.StatusTooManyRequests:
		wait := time.Second
		if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n > 0 {
			wait = min(time.Duration(n)*time.Second, 10*time.Second)
		}
		return nil, wait, nil
	}
	se := &StatusError{URL: c.URL, Status: resp.StatusCode}
	var e Error
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		se.Message, se.Job = e.Error, e.Job
	} else {
		se.Message = snippet(data)
	}
	return nil, 0, se
}

// isJSON says whether a Content-Type is JSON's.
func isJSON(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}

// snippet is the start of a body that is not ours, printable.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// IsUnauthorized says whether err is a 401 from a serve.
func IsUnauthorized(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == http.StatusUnauthorized
}
