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

// HitsPath is where an origin reports how often it was asked for each URL.
// It is never cached and never counted.
const HitsPath = "/__cdnpurge/hits"

// OriginHandler serves deterministic content: every path answers 200 with a
// body naming the Host, the path and query, and the Accept-Encoding variant,
// "Cache-Control: public, max-age=MaxAge" and "Vary: Accept-Encoding". It
// counts each request by Host + request target (GET and HEAD alike).
//
// Some requests ask for more, as real origins behave:
//
//   - a path under /private/ answers "Cache-Control: private" (not cacheable);
//   - ?max-age=N sets the freshness to N seconds (a short TTL, to see stale);
//   - ?xkey=a,b tags the response with "xkey: a b" (vmod xkey's tags);
//   - a path under /cdn-headers/ answers with the cache headers another CDN
//     in front of the origin would add ("Cache-Status: OriginCDN; fwd=miss",
//     "X-Cache: Miss from cloudfront"), which Varnish stores with the object.
type OriginHandler struct {
	MaxAge time.Duration

	mu   sync.Mutex
	hits map[string]int
}

// NewOriginHandler returns a handler whose responses may be cached for maxAge.
func NewOriginHandler(maxAge time.Duration) *OriginHandler {
	return &OriginHandler{MaxAge: maxAge, hits: map[string]int{}}
}

// HitKey is the key of a request in the hit counts: Host + request target.
func HitKey(host, target string) string { return host + target }

func (o *OriginHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == HitsPath {
		o.mu.Lock()
		b, _ := json.Marshal(o.hits)
		o.mu.Unlock()
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
		return
	}
	o.mu.Lock()
	o.hits[HitKey(r.Host, r.RequestURI)]++
	n := o.hits[HitKey(r.Host, r.RequestURI)]
	o.mu.Unlock()
	variant := r.Header.Get("Accept-Encoding")
	if variant == "" {
		variant = "identity"
	}
	maxAge := int(o.MaxAge.Seconds())
	if n, err := strconv.Atoi(r.URL.Query().Get("max-age")); err == nil && n >= 0 {
		maxAge = n
	}
	if strings.HasPrefix(r.URL.Path, "/private/") {
		w.Header().Set("Cache-Control", "private, no-store")
	} else {
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", maxAge))
	}
	if tags := r.URL.Query().Get("xkey"); tags != "" {
		w.Header().Set("Xkey", strings.ReplaceAll(tags, ",", " "))
	}
	if strings.HasPrefix(r.URL.Path, "/cdn-headers/") {
		w.Header().Set("Cache-Status", "OriginCDN; fwd=miss")
		w.Header().Set("X-Cache", "Miss from cloudfront")
	}
	w.Header().Set("Vary", "Accept-Encoding")
	w.Header().Set("X-Origin-Variant", variant)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "%s%s (variant %s, origin fetch %d)\n", r.Host, r.RequestURI, variant, n)
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
