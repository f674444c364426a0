package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TagPath tags a page: a POST with ?host=HOST&path=PATH&xkey=a,b makes the
// answers for that Host and request target (path and query) carry
// "xkey: a b", as a CMS tags its pages, so that a tag purge can drop a page
// whose URL names no tag. It is never cached and never counted.
const TagPath = "/__cdnpurge/tag"

// HitsPath is where an origin reports how often it was asked for each URL.
// It is never cached and never counted.
const HitsPath = "/__cdnpurge/hits"

// DeployPath deploys a new version of a host's content: a POST with
// ?host=HOST makes every URL of that host answer with the next version. It
// is never cached and never counted.
const DeployPath = "/__cdnpurge/deploy"

// OriginHandler serves deterministic, versioned content: every path answers
// 200 with a body naming the Host, the path and query, the encoding its
// Accept-Encoding chooses (br, gzip or identity: the variant) and the host's
// version (1 until a deploy, see DeployPath), a
// strong ETag and a Last-Modified of that version,
// "Cache-Control: public, max-age=MaxAge" and "Vary: Accept-Encoding". It
// counts each request by Host + request target (GET and HEAD alike).
//
// Some requests ask for more, as real origins behave:
//
//   - a path under /private/ answers "Cache-Control: private" (not cacheable);
//   - ?max-age=N sets the freshness to N seconds (a short TTL, to see stale);
//   - ?xkey=a,b tags the response with "xkey: a b" (vmod xkey's tags), as
//     does a POST to TagPath for a page whose URL names no tag;
//   - a path under /cdn-headers/ answers with the cache headers another CDN
//     in front of the origin would add ("Cache-Status: OriginCDN; fwd=miss",
//     "X-Cache: Miss from cloudfront"), which Varnish stores with the object;
//   - ?validators=none sends neither ETag nor Last-Modified (content is then
//     compared by its body), ?validators=lm only Last-Modified;
//   - ?age=N sends "Age: N", as an origin that is itself a cache does;
//   - ?slow=D answers after D (a duration such as 2s): a fetch in flight;
//   - ?vary=H1,H2 sends "Vary: Accept-Encoding, H1, H2" and names their
//     values in the body;
//   - ?status=N answers with status N (a 404, or a 301/302 to /), cacheable;
//   - ?hdr=Name:value (repeatable) adds that header, e.g. the tags a VCL
//     bans on (X-Magento-Tags, Cache-Tags);
//   - a path under /api/ is an API's: methods other than GET and HEAD
//     answer 405 (other paths answer any method, as a CMS does).
type OriginHandler struct {
	MaxAge time.Duration

	mu       sync.Mutex
	hits     map[string]int
	versions map[string]int    // host -> version; 1 when absent
	tags     map[string]string // HitKey -> xkey tags (see TagPath)
}

// NewOriginHandler returns a handler whose responses may be cached for maxAge.
func NewOriginHandler(maxAge time.Duration) *OriginHandler {
	return &OriginHandler{MaxAge: maxAge, hits: map[string]int{}, versions: map[string]int{}, tags: map[string]string{}}
}

// HitKey is the key of a request in the hit counts: Host + request target.
func HitKey(host, target string) string { return host + target }

// versionEpoch is the Last-Modified of version 0; each version is a day
// later.
var versionEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (o *OriginHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case HitsPath:
		o.mu.Lock()
		b, _ := json.Marshal(o.hits)
		o.mu.Unlock()
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
		return
	case DeployPath:
		host := r.URL.Query().Get("host")
		if r.Method != http.MethodPost || host == "" {
			http.Error(w, "POST "+DeployPath+"?host=HOST", http.StatusBadRequest)
			return
		}
		o.mu.Lock()
		v := o.version(host) + 1
		o.versions[host] = v
		o.mu.Unlock()
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintln(w, v)
		return
	case TagPath:
		q := r.URL.Query()
		host, path, tags := q.Get("host"), q.Get("path"), q.Get("xkey")
		if r.Method != http.MethodPost || host == "" || !strings.HasPrefix(path, "/") || tags == "" {
			http.Error(w, "POST "+TagPath+"?host=HOST&path=/PATH&xkey=TAG,TAG", http.StatusBadRequest)
			return
		}
		o.mu.Lock()
		o.tags[HitKey(host, path)] = strings.ReplaceAll(tags, ",", " ")
		o.mu.Unlock()
		w.Header().Set("Cache-Control", "no-store")
		return
	}
	if strings.HasPrefix(r.URL.Path, "/api/") && r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	o.mu.Lock()
	o.hits[HitKey(r.Host, r.RequestURI)]++
	version := o.version(r.Host)
	tagged := o.tags[HitKey(r.Host, r.RequestURI)]
	o.mu.Unlock()
	if d, err := time.ParseDuration(q.Get("slow")); err == nil && d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	// The representation it would send, as an origin negotiates it (the
	// body is not really compressed: it names the encoding).
	variant := "identity"
	switch ae := strings.ToLower(r.Header.Get("Accept-Encoding")); {
	case strings.Contains(ae, "br"):
		variant = "br"
	case strings.Contains(ae, "gzip"):
		variant = "gzip"
	}
	maxAge := int(o.MaxAge.Seconds())
	if n, err := strconv.Atoi(q.Get("max-age")); err == nil && n >= 0 {
		maxAge = n
	}
	h := w.Header()
	if strings.HasPrefix(r.URL.Path, "/private/") {
		h.Set("Cache-Control", "private, no-store")
	} else {
		h.Set("Cache-Control", fmt.Sprintf("public, max-age=%d", maxAge))
	}
	if tags := q.Get("xkey"); tags != "" {
		tagged = strings.TrimSpace(tagged + " " + strings.ReplaceAll(tags, ",", " "))
	}
	if tagged != "" {
		h.Set("Xkey", tagged)
	}
	if strings.HasPrefix(r.URL.Path, "/cdn-headers/") {
		h.Set("Cache-Status", "OriginCDN; fwd=miss")
		h.Set("X-Cache", "Miss from cloudfront")
	}
	for _, kv := range q["hdr"] {
		if k, v, ok := strings.Cut(kv, ":"); ok {
			h.Add(k, v)
		}
	}
	vary := "Accept-Encoding"
	varied := ""
	if names := q.Get("vary"); names != "" {
		for _, n := range strings.Split(names, ",") {
			vary += ", " + n
			varied += fmt.Sprintf(", %s %q", n, r.Header.Get(n))
		}
	}
	h.Set("Vary", vary)
	switch q.Get("validators") {
	case "none":
	case "lm":
		h.Set("Last-Modified", versionEpoch.AddDate(0, 0, version).Format(http.TimeFormat))
	default:
		h.Set("Etag", fmt.Sprintf(`"v%d-%s"`, version, variant))
		h.Set("Last-Modified", versionEpoch.AddDate(0, 0, version).Format(http.TimeFormat))
	}
	if age := q.Get("age"); age != "" {
		h.Set("Age", age)
	}
	h.Set("X-Origin-Variant", variant)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	status := http.StatusOK
	if n, err := strconv.Atoi(q.Get("status")); err == nil && n >= 200 && n <= 599 {
		status = n
		if n >= 300 && n < 400 {
			h.Set("Location", "/")
		}
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, "%s%s (variant %s%s, version %d)\n", r.Host, r.RequestURI, variant, varied, version)
}

// version is host's content version; o.mu is held.
func (o *OriginHandler) version(host string) int {
	if v, ok := o.versions[host]; ok {
		return v
	}
	return 1
}

// Origin is a running origin: one this process started, or one started
// elsewhere (Addr only).
type Origin struct {
	// Addr is HOST:PORT as the caches reach it.
	Addr   string
	server *http.Server
}

// StartOrigin serves an OriginHandler on addr (HOST:0 picks a port).
func StartOrigin(addr string, maxAge time.Duration) (*Origin, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("origin: listen %s: %w", addr, err)
	}
	s := &http.Server{Handler: NewOriginHandler(maxAge), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.Serve(l) }()
	return &Origin{Addr: l.Addr().String(), server: s}, nil
}

// Close stops an origin this process started.
func (o *Origin) Close() error {
	if o.server == nil {
		return nil
	}
	return o.server.Close()
}

// Hits returns how often the origin was asked for host + target.
func (o *Origin) Hits(ctx context.Context, host, target string) (int, error) {
	all, err := o.AllHits(ctx)
	if err != nil {
		return 0, err
	}
	return all[HitKey(host, target)], nil
}

// Deploy makes every URL of host answer with the next version of its
// content, and returns that version.
func (o *Origin) Deploy(ctx context.Context, host string) (int, error) {
	u := url.URL{Scheme: "http", Host: o.Addr, Path: DeployPath, RawQuery: url.Values{"host": {host}}.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("origin deploy: %w", err)
	}
	defer resp.Body.Close()
	var v int
	if _, err := fmt.Fscan(resp.Body, &v); err != nil || resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("origin deploy: %s: %v", resp.Status, err)
	}
	return v, nil
}

// Tag makes the origin tag its answers for host and target (path and
// query) with vmod xkey's tags (see TagPath).
func (o *Origin) Tag(ctx context.Context, host, target string, tags ...string) error {
	u := url.URL{Scheme: "http", Host: o.Addr, Path: TagPath,
		RawQuery: url.Values{"host": {host}, "path": {target}, "xkey": {strings.Join(tags, ",")}}.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("origin tag: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("origin tag %s%s: %s", host, target, resp.Status)
	}
	return nil
}

// AllHits returns every count, keyed by HitKey.
func (o *Origin) AllHits(ctx context.Context) (map[string]int, error) {
	u := url.URL{Scheme: "http", Host: o.Addr, Path: HitsPath}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("origin hits: %w", err)
	}
	defer resp.Body.Close()
	var m map[string]int
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return nil, fmt.Errorf("origin hits: %w", err)
	}
	return m, nil
}
