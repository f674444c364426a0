package serve

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Token is an API token and the name logs know it by.
type Token struct {
	Name  string
	Value string
}

// MinTokenLen is the shortest API token accepted.
const MinTokenLen = 16

// ReadTokens reads API tokens, one a line: "NAME TOKEN", or a bare TOKEN
// (named after its line). Blank lines and lines starting with # are
// skipped. source names the input in errors, which never show a token.
func ReadTokens(r io.Reader, source string) ([]Token, error) {
	var out []Token
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	n := 0
	names := map[string]bool{}
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		var t Token
		switch len(f) {
		case 1:
			t = Token{Name: fmt.Sprintf("line-%d", n), Value: f[0]}
		case 2:
			t = Token{Name: f[0], Value: f[1]}
		default:
			return nil, fmt.Errorf("%s line %d: write NAME TOKEN, or TOKEN alone", source, n)
		}
		if len(t.Value) < MinTokenLen {
			return nil, fmt.Errorf("%s line %d: the token is shorter than %d characters; make one with: openssl rand -hex 32", source, n, MinTokenLen)
		}
		if names[t.Name] {
			return nil, fmt.Errorf("%s line %d: the name %s is used twice", source, n, t.Name)
		}
		names[t.Name] = true
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no tokens in it", source)
	}
	return out, nil
}

// auth decides who a request comes from.
type auth struct {
	hashes [][32]byte
	names  []string
	allow  []netip.Prefix
}

func newAuth(tokens []Token, allow []netip.Prefix) *auth {
	a := &auth{allow: allow}
	for _, t := range tokens {
		a.hashes = append(a.hashes, sha256.Sum256([]byte(t.Value)))
		a.names = append(a.names, t.Name)
	}
	return a
}

// bearer is the request's bearer token, if it has one.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return "", false
	}
	return strings.TrimSpace(h[7:]), true
}

// token returns the name of the API token the request carries: ok is
// false when it carries none of them. Every token is compared, in
// constant time over their hashes, whatever matches.
func (a *auth) token(r *http.Request) (name string, ok bool) {
	v, has := bearer(r)
	if !has || len(a.hashes) == 0 {
		return "", false
	}
	h := sha256.Sum256([]byte(v))
	match := -1
	for i := range a.hashes {
		if subtle.ConstantTimeCompare(h[:], a.hashes[i][:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return "", false
	}
	return a.names[match], true
}

// allowed says whether the request's source address is in an allowed
// network. The address is the connection's: forwarding headers are not
// believed.
func (a *auth) allowed(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range a.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// DefaultAllow returns where transparent requests are accepted from
// without a token: loopback only (a new slice at each call).
func DefaultAllow() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

// ParseAllow parses networks (CIDR) or single addresses.
func ParseAllow(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("allow %q: give a network such as 10.0.0.0/8 or fdaa::/16, or an address", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
