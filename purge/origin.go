package purge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// OriginError says the origin (Job.Origin) could not be read for a URL:
// nothing was sent to any instance.
type OriginError struct {
	// Origin is the origin's base URL as given.
	Origin string
	// URL is the URL whose current version was asked for.
	URL string
	// Status is the origin's answer, 0 when none came.
	Status int
	Err    error
}

func (e *OriginError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("origin %s: %s answered %d: %v", e.Origin, e.URL, e.Status, e.Err)
	}
	return fmt.Sprintf("origin %s: %s: %v", e.Origin, e.URL, e.Err)
}

func (e *OriginError) Unwrap() error { return e.Err }

// originVersion is what the origin serves for one URL: what a copy is
// compared with.
type originVersion struct {
	status  int
	etag    string // a strong ETag, as sent; "" when none
	lastMod string
	coding  string // Content-Encoding
	length  int64  // the body's length; -1 when it was too long to read
	sum     [sha256.Size]byte
	// varies says why the origin's answers cannot be compared (two GETs
	// answered differently); "" when they can.
	varies string
}

// originReaders bounds the URLs read from the origin at once.
const originReaders = 16

// readOrigin asks the origin, twice, for its current version of every URL
// to verify, with the headers a verify request carries.
func (p *plan) readOrigin(ctx context.Context, headers []string) ([]originVersion, error) {
	cs := &originClients{p: p, m: map[string]*http.Client{}}
	defer cs.close()
	out := make([]originVersion, p.verifyURLs.Len())
	errs := make([]error, p.verifyURLs.Len())
	sem := make(chan struct{}, originReaders)
	var wg sync.WaitGroup
	for i, u := range p.verifyURLs.All() {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			client := cs.get(u.Hostname)
			a, err := p.originGet(ctx, client, u, headers)
			if err != nil {
				errs[i] = err
				return
			}
			b, err := p.originGet(ctx, client, u, headers)
			if err != nil {
				errs[i] = err
				return
			}
			a.varies = a.differs(b)
			out[i] = a
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// originClients are the HTTP clients that read the origin, one per site
// host: over https the origin's certificate names the site, not the
// address dialled.
type originClients struct {
	p  *plan
	mu sync.Mutex
	m  map[string]*http.Client
}

func (c *originClients) get(host string) *http.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.m[host]; ok {
		return cl
	}
	tr := &http.Transport{
		DisableCompression:  true, // the Accept-Encoding sent is the browser's: bodies are compared as sent
		TLSClientConfig:     &tls.Config{RootCAs: c.p.RootCAs, ServerName: host, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: originReaders,
	}
	cl := &http.Client{Transport: tr, Timeout: c.p.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	c.m[host] = cl
	return cl
}

func (c *originClients) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.m {
		cl.Transport.(*http.Transport).CloseIdleConnections()
	}
}

// originGet reads the origin's answer for u: the URL's path, query and
// Host, sent to the origin's address.
func (p *plan) originGet(ctx context.Context, client *http.Client, u URL, headers []string) (originVersion, error) {
	fail := func(status int, err error) (originVersion, error) {
		return originVersion{}, &OriginError{Origin: p.Origin, URL: u.String(), Status: status, Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.origin.Scheme+"://"+p.origin.Host+u.Target, nil)
	if err != nil {
		return fail(0, err)
	}
	req.Host = u.Host
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(k, strings.TrimSpace(v))
	}
	resp, err := client.Do(req)
	if err != nil {
		return fail(0, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 500 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return fail(resp.StatusCode, fmt.Errorf("an error is not a version to compare with: %q", strings.TrimSpace(string(b))))
	}
	v := originVersion{status: resp.StatusCode, lastMod: resp.Header.Get("Last-Modified"), coding: resp.Header.Get("Content-Encoding")}
	if e := resp.Header.Get("Etag"); strongETag(e) {
		v.etag = e
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(resp.Body, maxHashBody+1))
	if err != nil {
		return fail(resp.StatusCode, fmt.Errorf("read the body: %w", err))
	}
	v.length = n
	if n > maxHashBody {
		v.length = -1 // too long to compare by content
	} else {
		h.Sum(v.sum[:0])
	}
	return v, nil
}

// differs says how a second answer of the origin differs from the first,
// in what a copy is compared by; "" when it does not.
func (a originVersion) differs(b originVersion) string {
	switch {
	case a.status != b.status:
		return fmt.Sprintf("it answered %d, then %d", a.status, b.status)
	case a.etag != "" && b.etag != "":
		if a.etag != b.etag {
			return fmt.Sprintf("its ETag changed from %s to %s between two requests", a.etag, b.etag)
		}
		return ""
	case a.lastMod != "" && b.lastMod != "":
		if a.lastMod != b.lastMod {
			return fmt.Sprintf("its Last-Modified changed from %q to %q between two requests", a.lastMod, b.lastMod)
		}
		return ""
	case a.length < 0 || b.length < 0:
		return fmt.Sprintf("it sends no ETag or Last-Modified, and its body is larger than %d MiB", maxHashBody>>20)
	case a.length != b.length || a.sum != b.sum:
		return "it sends no ETag or Last-Modified, and two requests got different bodies"
	}
	return ""
}

// strongETag says whether e is a strong entity tag ("...", not W/"...").
func strongETag(e string) bool {
	return len(e) >= 2 && e[0] == '"' && e[len(e)-1] == '"'
}

// compareOrigin compares an instance's answer with the origin's version:
// known says it could be compared, and why says how it differs, or why it
// could not be compared.
func compareOrigin(o *originVersion, r *response) (known, current bool, why string) {
	if o.varies != "" {
		return false, false, "cannot compare with the origin: " + o.varies
	}
	if r.status != o.status {
		return true, false, fmt.Sprintf("status %d, the origin's %d", r.status, o.status)
	}
	if e := r.header.Get("Etag"); o.etag != "" && strongETag(e) {
		if e == o.etag {
			return true, true, ""
		}
		return true, false, fmt.Sprintf("ETag %s, the origin's %s", e, o.etag)
	}
	if lm := r.header.Get("Last-Modified"); o.lastMod != "" && lm != "" {
		if lm == o.lastMod {
			return true, true, ""
		}
		return true, false, fmt.Sprintf("Last-Modified %q, the origin's %q", lm, o.lastMod)
	}
	switch {
	case r.sum == nil:
		return false, false, "cannot compare with the origin: no ETag or Last-Modified in common, and the answer's body was not read (a HEAD request)"
	case r.cut || o.length < 0:
		return false, false, fmt.Sprintf("cannot compare with the origin: no ETag or Last-Modified in common, and the body is larger than %d MiB", maxHashBody>>20)
	case !strings.EqualFold(r.header.Get("Content-Encoding"), o.coding):
		return false, false, fmt.Sprintf("cannot compare with the origin: no ETag or Last-Modified in common, and the bodies are encoded differently (Content-Encoding %q, the origin's %q)",
			r.header.Get("Content-Encoding"), o.coding)
	}
	var sum [sha256.Size]byte
	r.sum.Sum(sum[:0])
	if r.hashed == o.length && bytes.Equal(sum[:], o.sum[:]) {
		return true, true, ""
	}
	return true, false, "another body (" + strconv.FormatInt(r.hashed, 10) + " bytes, the origin's " + strconv.FormatInt(o.length, 10) + ", and their SHA-256 differ)"
}
