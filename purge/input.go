package purge

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Instance is one member of the fleet: an IP address (or, for a static
// instance, a host name) and the port its cache listens on.
type Instance struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

// String returns host:port, with IPv6 addresses in brackets.
func (i Instance) String() string {
	return net.JoinHostPort(i.Host, strconv.Itoa(i.Port))
}

// ParseInstance parses ADDR, ADDR:PORT, [IPv6] or [IPv6]:PORT. A bare IPv6
// address without brackets is accepted too. defaultPort is used when the
// input has no port. ADDR may be an IP address or a host name.
func ParseInstance(s string, defaultPort int) (Instance, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return Instance{}, fmt.Errorf("instance %q: empty; give ADDR or ADDR:PORT, e.g. 10.0.0.7:9000 or [fdaa::3]:9000", s)
	}
	if strings.Contains(in, "/") {
		return Instance{}, fmt.Errorf("instance %q: give ADDR or ADDR:PORT, not a URL, e.g. 10.0.0.7:9000", s)
	}
	// A bare IPv6 address: more than one colon and no brackets.
	if !strings.HasPrefix(in, "[") && strings.Count(in, ":") > 1 {
		a, err := netip.ParseAddr(in)
		if err != nil {
			return Instance{}, fmt.Errorf("instance %q: not an IPv6 address (%v); write IPv6 with a port as [ADDR]:PORT", s, err)
		}
		return newInstance(s, a.String(), defaultPort)
	}
	host, port := in, defaultPort
	if strings.HasPrefix(in, "[") || strings.Contains(in, ":") {
		h, p, err := net.SplitHostPort(in)
		if err != nil {
			if strings.HasPrefix(in, "[") && strings.HasSuffix(in, "]") {
				h, p = in[1:len(in)-1], ""
			} else {
				return Instance{}, fmt.Errorf("instance %q: %v; give ADDR, ADDR:PORT or [IPv6]:PORT", s, err)
			}
		}
		host = h
		if p == "" && strings.HasSuffix(in, ":") {
			return Instance{}, fmt.Errorf("instance %q: port is empty; give ADDR:PORT", s)
		}
		if p != "" {
			n, err := strconv.Atoi(p)
			if err != nil {
				return Instance{}, fmt.Errorf("instance %q: port %q is not a number", s, p)
			}
			port = n
		}
	}
	if strings.Contains(host, ":") || strings.HasPrefix(in, "[") {
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() {
			return Instance{}, fmt.Errorf("instance %q: %q in brackets is not an IPv6 address", s, host)
		}
		host = a.String()
	} else if a, err := netip.ParseAddr(host); err == nil {
		host = a.String()
	} else if !validHostname(host) {
		return Instance{}, fmt.Errorf("instance %q: %q is neither an IP address nor a host name", s, host)
	}
	return newInstance(s, host, port)
}

func newInstance(s, host string, port int) (Instance, error) {
	if port < 1 || port > 65535 {
		return Instance{}, fmt.Errorf("instance %q: port %d is out of range 1-65535", s, port)
	}
	return Instance{Host: host, Port: port}, nil
}

func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// ParseURL checks that s is an absolute http or https URL with a host, the
// only kind of URL a cache instance can be asked to purge.
func ParseURL(s string) (*url.URL, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return nil, fmt.Errorf("url %q: empty; give an absolute URL such as https://example.com/path", s)
	}
	u, err := url.Parse(in)
	if err != nil {
		return nil, fmt.Errorf("url %q: %w", s, errUnwrapURL(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		if u.Scheme == "" {
			return nil, fmt.Errorf("url %q: not absolute; give the full public URL, e.g. https://example.com%s", s, prefixSlash(in))
		}
		return nil, fmt.Errorf("url %q: scheme %q is not http or https", s, u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("url %q: no host; give the public host the cache serves, e.g. https://example.com/path", s)
	}
	if u.User != nil {
		return nil, fmt.Errorf("url %q: credentials in a URL are not sent to caches; remove the user:password@ part", redactUser(u))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("url %q: port %q is out of range 1-65535", s, p)
		}
	}
	u.Fragment, u.RawFragment = "", ""
	// Keep the path as written: caches key on the request target as
	// clients send it, and Go would re-escape characters such as '|'. Only
	// what a browser would escape is escaped (WHATWG URL: controls, space,
	// non-ASCII and "#<>?`{} in the path; controls, space, non-ASCII and "#<>'
	// in the query), so "/a b" is purged as "/a%20b", as browsers ask for it.
	if raw := rawPath(in); raw != "" {
		u.RawPath = escapeSet(raw, "\"#<>?`{}")
	}
	u.RawQuery = escapeSet(u.RawQuery, "\"#<>'")
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

func errUnwrapURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

func prefixSlash(s string) string {
	if strings.HasPrefix(s, "/") {
		return s
	}
	return "/" + s
}

func redactUser(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

// RequestTarget is what goes on the request line for u: its path (or "/")
// and its query, exactly as written.
func RequestTarget(u *url.URL) string {
	p := u.RawPath
	if p == "" {
		p = u.EscapedPath()
	}
	if p == "" {
		p = "/"
	}
	if u.RawQuery != "" || u.ForceQuery {
		p += "?" + u.RawQuery
	}
	return p
}

// DisplayURL is u as it is purged: scheme, host and the request target as
// written.
func DisplayURL(u *url.URL) string {
	return u.Scheme + "://" + u.Host + RequestTarget(u)
}

// ReadURLs reads one URL per line from r. Blank lines and lines whose first
// non-blank character is '#' are skipped. Every URL is checked; the error
// names the source and the line of the first bad one.
func ReadURLs(r io.Reader, source string) ([]*url.URL, error) {
	var urls []*url.URL
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		u, err := ParseURL(t)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", source, line, err)
		}
		urls = append(urls, u)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", source, err)
	}
	return urls, nil
}
