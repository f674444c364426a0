package purge

import (
	"fmt"
	"regexp/syntax"
	"strings"
	"unicode"
	"unicode/utf8"
)

// banTarget returns the request path a ban of the path expression re is
// sent with: the literal text every path it matches starts with (/p/42/
// for ^/p/42/). VCLs that take the ban from the request path (Shopware's,
// varnish/toolbox's) then ban no more than re would; VCLs that read the
// X-Url header get re itself. An expression without such a prefix (one not
// anchored with ^, or \.css$) is refused unless broad, which sends "/".
//
// The expression is read with Go's regexp/syntax in Perl mode; Varnish's
// PCRE reads the simple expressions bans use the same way. One Go cannot
// read is treated as having no prefix.
func banTarget(re string, broad bool) (string, error) {
	prefix, why := literalPrefix(re)
	switch {
	case prefix != "" && prefix[0] == '/':
		return pathEscape(prefix), nil
	case prefix != "":
		why = fmt.Sprintf("every path it matches starts with %q, and paths start with /", prefix)
	}
	if broad {
		return "/", nil
	}
	return "", fmt.Errorf("ban expression %q has no literal path prefix (%s): a VCL that bans what the request path matches "+
		"would ban every object of the host; anchor it (e.g. ^/assets/), or declare the ban broad", re, why)
}

// literalPrefix returns the literal text at the start of every match of
// re, when re is anchored at the start of the subject; else "" and why.
func literalPrefix(re string) (string, string) {
	t, err := syntax.Parse(re, syntax.Perl)
	if err != nil {
		return "", "it cannot be read: " + err.Error()
	}
	t = t.Simplify()
	var b strings.Builder
	anchored := false
	var walk func(t *syntax.Regexp) bool // false: stop, the literal prefix ends here
	walk = func(t *syntax.Regexp) bool {
		switch t.Op {
		case syntax.OpBeginText:
			if b.Len() > 0 {
				return false
			}
			anchored = true
			return true
		case syntax.OpBeginLine:
			return false // (?m)^ also matches after a line break inside the subject
		case syntax.OpEmptyMatch:
			return true
		case syntax.OpCapture:
			return walk(t.Sub[0])
		case syntax.OpConcat:
			for _, s := range t.Sub {
				if !walk(s) {
					return false
				}
			}
			return true
		case syntax.OpLiteral:
			if !anchored {
				return false
			}
			for _, r := range t.Rune {
				if t.Flags&syntax.FoldCase != 0 && unicode.SimpleFold(r) != r {
					return false // either case matches: the prefix ends before it
				}
				b.WriteRune(r)
			}
			return true
		}
		return false
	}
	walk(t)
	if !anchored {
		return "", "it is not anchored at the start of the path with ^"
	}
	if b.Len() == 0 {
		return "", "nothing literal follows the ^"
	}
	return b.String(), ""
}

// pathEscape percent-encodes what cannot stand in a request path as
// written: control characters, space, '#', and bytes beyond ASCII (as a
// browser sends them, which is how the cache stored the URL).
func pathEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == '#' || c >= utf8.RuneSelf || c == 0x7f {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
