package purge

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	werrors "github.com/nlnwa/whatwg-url/errors"
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
// trailing dot, dot segments removed, backslashes read as slashes, what a
// browser percent-encodes encoded, and a '%' that starts no escape kept as
// written. A cache keys its objects on the request a browser sends, so
// that is the request a purge must send.
func ParseURL(s string) (URL, error) {
	in := strings.TrimSpace(s)
	if u, ok := canonicalAlready(in); ok {
		return u, nil // and the parser would agree: see FuzzCanonicalAlready
	}
	if err := checkScheme(s, in); err != nil {
		return URL{}, err
	}
	w, err := whatwg.Parse(in)
	if err != nil {
		return URL{}, fmt.Errorf("url %q: %s", safeURL(s), whatwgReason(err))
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
		if n, err := strconv.Atoi(p); err != nil || n < 1 {
			return URL{}, fmt.Errorf("url %q: port %q is out of range 1-65535", safeURL(s), p)
		}
		host += ":" + p
	}
	href := w.Href(true)
	target := strings.TrimPrefix(href, scheme+"://"+w.Host())
	if target == "" || target[0] != '/' {
		target = "/" + target
	}
	return URL{Scheme: scheme, Host: host, Hostname: strings.Trim(name, "[]"), Port: w.Port(), Target: target}, nil
}

// checkScheme gives the errors a person can act on before the parser
// runs: empty, not text, not absolute, another scheme, no host.
func checkScheme(s, in string) error {
	if in == "" {
		return fmt.Errorf("url %q: empty; give an absolute URL such as https://example.com/path", s)
	}
	if !utf8.ValidString(in) {
		return fmt.Errorf("url %q: not valid UTF-8; percent-encode bytes that are not text", safeURL(s))
	}
	scheme, rest, ok := strings.Cut(in, ":")
	if !ok || !validScheme(scheme) || hostFirst(in) {
		return notAbsolute(s, in)
	}
	switch strings.ToLower(scheme) {
	case "http", "https":
	default:
		return fmt.Errorf("url %q: scheme %q is not http or https", safeURL(s), scheme)
	}
	if strings.HasPrefix(rest, "///") || strings.HasPrefix(rest, "//?") || strings.HasPrefix(rest, "//#") || rest == "//" || rest == "" {
		return fmt.Errorf("url %q: no host; give the public host the cache serves, e.g. https://example.com/path", safeURL(s))
	}
	return nil
}

// validScheme is RFC 3986's scheme: a letter, then letters, digits, '+',
// '-' or '.'.
func validScheme(s string) bool {
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// whatwgReason is the parser's reason without the URL it repeats (which
// may hold credentials).
func whatwgReason(err error) string {
	why := string(werrors.Type(err))
	if strings.Contains(strings.ToLower(why), "port") {
		return "the port is not a number from 1 to 65535 (out of range)"
	}
	if d := werrors.Description(err); d != "" {
		why += " (" + d + ")"
	}
	if why == "" {
		return "not a URL"
	}
	return strings.ToLower(why[:1]) + strings.TrimSuffix(why[1:], ".")
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
	in := strings.TrimSpace(s)
	if !utf8.ValidString(in) {
		return URL{}, fmt.Errorf("url %q: not valid UTF-8; percent-encode bytes that are not text", safeURL(s))
	}
	u, err := checkURL(s)
	if err != nil {
		return URL{}, err
	}
	path := u.EscapedPath()
	if raw := rawPath(in); raw != "" {
		path = escapeSet(raw, "\"#<>?`{}")
	}
	if path == "" {
		path = "/"
	}
	target := path
	if u.RawQuery != "" || u.ForceQuery {
		target += "?" + escapeSet(rawQuery(in), "\"#<>'")
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
	if scheme, _, ok := strings.Cut(in, ":"); !ok || !validScheme(scheme) || hostFirst(in) {
		return nil, notAbsolute(s, in)
	}
	// A '%' that starts no escape is kept as written (browsers do): only
	// Go's parser minds it.
	u, err := url.Parse(escapeLonePercent(in))
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
		return nil, notAbsolute(s, in)
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

// notAbsolute is the error for a URL without its scheme, with the URL it
// most likely stands for as the example (see meantURL).
func notAbsolute(s, in string) error {
	return fmt.Errorf("url %q: not absolute; give the full public URL, e.g. %s", safeURL(s), meantURL(in))
}

// meantURL is the absolute URL a URL written without its scheme most
// likely stands for: https:// and the host it starts with
// (cdn.example/x is https://cdn.example/x), or, when it does not start
// with a host (/feed, podcast/1, feed.xml), a path on example.com.
func meantURL(in string) string {
	rest := strings.TrimPrefix(in, "//")
	end := strings.IndexAny(rest, "/?#")
	first, path := rest, ""
	if end >= 0 {
		first, path = rest[:end], rest[end:]
	}
	if !hostLike(first, strings.HasPrefix(path, "/")) {
		return "https://example.com/" + strings.TrimLeft(in, "/")
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return "https://" + first + path
}

// hostFirst says whether in starts with a host and a port (cdn.example:8080/x,
// localhost:8080), which a URL parser reads as a scheme and what follows it.
func hostFirst(in string) bool {
	first := in
	if end := strings.IndexAny(in, "/?#"); end >= 0 {
		first = in[:end]
	}
	return strings.Contains(first, ":") && hostLike(first, true)
}

// hostLike says whether s, the start of a URL written without its scheme,
// is a host name or address (with a port, or not): localhost, an IP
// address, or a dotted name whose last label is a top-level domain's
// (letters, or xn-- and its ASCII form). A lone name that ends like a file
// (feed.xml, index.html) is a path, unless a path follows it.
func hostLike(s string, pathFollows bool) bool {
	host := s
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return false
		}
		a, err := netip.ParseAddr(s[1:end])
		rest := s[end+1:]
		return err == nil && a.Is6() && (rest == "" || strings.HasPrefix(rest, ":") && portLike(rest[1:]))
	}
	if h, port, ok := strings.Cut(s, ":"); ok {
		if !portLike(port) {
			return false
		}
		host, pathFollows = h, true
	}
	host = strings.TrimSuffix(host, ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Is4()
	}
	labels := strings.Split(host, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || l[0] == '-' || l[len(l)-1] == '-' || strings.ContainsFunc(l, func(r rune) bool {
			return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '-'
		}) {
			return false
		}
	}
	tld := strings.ToLower(labels[len(labels)-1])
	if !strings.HasPrefix(tld, "xn--") && (len(tld) < 2 || strings.ContainsFunc(tld, func(r rune) bool { return !unicode.IsLetter(r) })) {
		return false
	}
	return pathFollows || !fileExtensions[tld]
}

// portLike says whether s can be a port: one to five digits.
func portLike(s string) bool {
	return s != "" && len(s) <= 5 && strings.Trim(s, "0123456789") == ""
}

// fileExtensions end names that are files more often than hosts.
var fileExtensions = map[string]bool{
	"html": true, "htm": true, "xml": true, "rss": true, "atom": true, "json": true, "txt": true,
	"css": true, "js": true, "mjs": true, "map": true, "png": true, "jpg": true, "jpeg": true,
	"gif": true, "svg": true, "webp": true, "avif": true, "ico": true, "pdf": true, "mp3": true,
	"mp4": true, "m4a": true, "ogg": true, "webm": true, "woff": true, "woff2": true, "php": true,
	"asp": true, "aspx": true, "md": true, "csv": true, "zip": true, "gz": true,
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

// escapeLonePercent writes a '%' that starts no escape as "%25".
func escapeLonePercent(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && (i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2])) {
			b.WriteString("%25")
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// rawQuery returns the query of an absolute URL as written, without '?'
// and fragment.
func rawQuery(s string) string {
	s, _, _ = strings.Cut(s, "#")
	_, q, _ := strings.Cut(s, "?")
	return q
}
