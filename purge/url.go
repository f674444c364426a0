package purge

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"

	whatwg "github.com/nlnwa/whatwg-url/url"
)

// URL is one URL of a job as it goes on the wire: the Host header and the
// request target, and the form shown in reports.
type URL struct {
	// Scheme is the URL's own scheme, http or https. It does not choose how
	// instances are reached (Job.Scheme does).
	Scheme string
	// Host is the Host header: host[:port], IPv6 in brackets.
	Host string
	// Hostname is Host without port or brackets: the TLS server name, and the
	// public host that edge routing connects to.
	Hostname string
	// Port is the explicit port of the URL, or "" when it has none.
	Port string
	// Target is the request target: path and query.
	Target string
}

// String is the URL as it is sent: scheme, Host and request target.
func (u URL) String() string { return u.Scheme + "://" + u.Host + u.Target }

// ParseURL reads an absolute http or https URL and returns it as a browser
// would request it (the WHATWG URL standard): host lower-cased (and
// internationalised names in their ASCII form), no default port, no
// trailing dot, dot segments removed, backslashes read as slashes, and
// what a browser percent-encodes encoded. A cache keys its objects on the
// request a browser sends, so that is the request a purge must send.
func ParseURL(s string) (URL, error) {
	if u, ok := canonicalAlready(strings.TrimSpace(s)); ok {
		return u, nil // and checkURL would pass it: see FuzzCanonicalAlready
	}
	if _, err := checkURL(s); err != nil {
		return URL{}, err
	}
	w, err := whatwg.Parse(strings.TrimSpace(s))
	if err != nil {
		return URL{}, fmt.Errorf("url %q: %v", safeURL(s), err)
	}
	if w.Username() != "" || w.Password() != "" {
		return URL{}, fmt.Errorf("url %q: credentials in a URL are not sent to caches; remove the user:password@ part", safeURL(s))
	}
	scheme := strings.TrimSuffix(w.Protocol(), ":")
	name := strings.TrimSuffix(w.Hostname(), ".")
	if name == "" || name == "[]" || slices.Contains(strings.Split(name, "."), "") {
		return URL{}, fmt.Errorf("url %q: no host; give the public host the cache serves, e.g. https://example.com/path", s)
	}
	host := name
	if p := w.Port(); p != "" {
		host += ":" + p
	}
	href := w.Href(true)
	target := strings.TrimPrefix(href, scheme+"://"+w.Host())
	if target == "" || target[0] != '/' {
		target = "/" + target
	}
	return URL{Scheme: scheme, Host: host, Hostname: strings.Trim(name, "[]"), Port: w.Port(), Target: target}, nil
}

// canonicalAlready recognises, cheaply, a URL that the WHATWG parser would
// leave as it is (lower-case host of letters, digits, '-' and '.', no
// default port, no dot segment, nothing to percent-encode, no fragment),
// and returns it. Anything else takes the parser (about 5µs a URL, which
// counts for a hundred thousand URLs). The fuzz test holds the two to the
// same answer.
func canonicalAlready(s string) (URL, bool) {
	var u URL
	rest, ok := "", false
	if rest, ok = strings.CutPrefix(s, "https://"); ok {
		u.Scheme = "https"
	} else if rest, ok = strings.CutPrefix(s, "http://"); ok {
		u.Scheme = "http"
	} else {
		return u, false
	}
	slash := strings.IndexByte(rest, '/')
	if slash <= 0 {
		return u, false
	}
	u.Host, u.Target = rest[:slash], rest[slash:]
	u.Hostname = u.Host
	if h, p, found := strings.Cut(u.Host, ":"); found {
		n, err := strconv.Atoi(p)
		if err != nil || p[0] == '0' || n > 65535 || p == "80" && u.Scheme == "http" || p == "443" && u.Scheme == "https" {
			return u, false
		}
		u.Hostname, u.Port = h, p
	}
	labels := strings.Split(u.Hostname, ".")
	last := labels[len(labels)-1]
	if last == "" || last[0] >= '0' && last[0] <= '9' { // empty, trailing dot, or IPv4-like
		return u, false
	}
	for _, l := range labels {
		if l == "" || strings.HasPrefix(l, "xn--") {
			return u, false
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return u, false
			}
		}
	}
	path, query, hasQuery := strings.Cut(u.Target, "?")
	if strings.Contains(path, "/.") || strings.Contains(path, "%2e") || strings.Contains(path, "%2E") {
		return u, false
	}
	if !plain(path, "\"#<>`{}\\") || hasQuery && !plain(query, "\"#<>'") {
		return u, false
	}
	return u, true
}

// plain says whether s holds only printable ASCII outside set, and '%' only
// as the start of an escape (Go's parser refuses a bare one).
func plain(s, set string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c <= ' ' || c >= 0x7f || strings.IndexByte(set, c) >= 0:
			return false
		case c == '%' && (i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2])):
			return false
		}
	}
	return true
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// ParseRawURL checks s as ParseURL does but keeps its host and path as
// written, for caches whose configuration keys objects on the raw request.
// Only what cannot go on a request line (controls, space, non-ASCII, '#',
// '"', '<', '>', '`', '{', '}' in the path) is percent-encoded.
func ParseRawURL(s string) (URL, error) {
	u, err := checkURL(s)
	if err != nil {
		return URL{}, err
	}
	path := u.EscapedPath()
	if raw := rawPath(strings.TrimSpace(s)); raw != "" {
		path = escapeSet(raw, "\"#<>?`{}")
	}
	if path == "" {
		path = "/"
	}
	target := path
	if u.RawQuery != "" || u.ForceQuery {
		target += "?" + escapeSet(u.RawQuery, "\"#<>'")
	}
	return URL{Scheme: u.Scheme, Host: u.Host, Hostname: u.Hostname(), Port: u.Port(), Target: target}, nil
}

// checkURL gives the errors a person can act on: not absolute, another
// scheme, no host, credentials, a bad port.
func checkURL(s string) (*url.URL, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return nil, fmt.Errorf("url %q: empty; give an absolute URL such as https://example.com/path", s)
	}
	u, err := url.Parse(in)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("url %q: %v", safeURL(s), err)
	}
	if u.User != nil {
		return nil, fmt.Errorf("url %q: credentials in a URL are not sent to caches; remove the user:password@ part", safeURL(s))
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		u.Scheme = strings.ToLower(u.Scheme)
	case "":
		return nil, fmt.Errorf("url %q: not absolute; give the full public URL, e.g. https://example.com%s", safeURL(s), prefixSlash(in))
	default:
		return nil, fmt.Errorf("url %q: scheme %q is not http or https", safeURL(s), u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("url %q: no host; give the public host the cache serves, e.g. https://example.com/path", safeURL(s))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("url %q: port %q is out of range 1-65535", safeURL(s), p)
		}
	}
	return u, nil
}

// escapeSet percent-encodes controls, space, non-ASCII bytes and the bytes
// in set.
func escapeSet(s, set string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(set, c) >= 0 {
			if b.Len() == 0 {
				b.WriteString(s[:i])
			}
			fmt.Fprintf(&b, "%%%02X", c)
		} else if b.Len() > 0 {
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return s
	}
	return b.String()
}

// rawPath returns the path of an absolute URL as written, without query or fragment.
func rawPath(s string) string {
	_, rest, ok := strings.Cut(s, "://")
	if !ok {
		return ""
	}
	i := strings.IndexAny(rest, "/?#")
	if i < 0 || rest[i] != '/' {
		return ""
	}
	rest = rest[i:]
	if j := strings.IndexAny(rest, "?#"); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

func prefixSlash(s string) string {
	if strings.HasPrefix(s, "/") {
		return s
	}
	return "/" + s
}

// safeURL is s with any user:password@ part masked, for error messages.
func safeURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		return scheme + "://***@" + rest[at+1:]
	}
	return s
}

// ReadURLs reads one URL a line from r. Blank lines and lines whose first
// non-blank character is '#' are skipped. Every URL is checked (as
// ParseRawURL does, which a canonical URL passes too); the error names the
// source and the line of the first bad one.
func ReadURLs(r io.Reader, source string) ([]string, error) {
	var urls []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if _, ok := canonicalAlready(t); !ok {
			if _, err := checkURL(t); err != nil {
				return nil, fmt.Errorf("%s line %d: %w", source, line, err)
			}
		}
		urls = append(urls, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", source, err)
	}
	return urls, nil
}
