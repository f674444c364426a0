package purge

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxDetail bounds the part of an answer's body quoted in an error.
const maxDetail = 200

// bodyDetail is what an error quotes of a failed answer's body: its text,
// without markup, control characters or the lines that echo the request's
// headers. The purge token never appears in it, whole or in part: a body
// that contains it is withheld altogether (replacing the token by a mark
// would show where it stood, and for a short token, what it is), and the
// end of a body that was cut short is dropped, lest it end with the
// token's first characters.
func bodyDetail(body []byte, token string, sent []string) string {
	if len(body) == 0 {
		return ""
	}
	if token != "" && len(body) >= keepBody {
		body = body[:max(0, len(body)-len(token))]
	}
	s := strings.ToValidUTF8(string(body), "?")
	if showsToken(s, token) {
		return "(the body is withheld: it contains the purge token)"
	}
	var kept []string
	for _, line := range strings.Split(s, "\n") {
		if !echoes(line, sent) {
			kept = append(kept, line)
		}
	}
	return cleanText(stripTags(strings.Join(kept, " ")), maxDetail)
}

// showsToken says whether s shows the token: anywhere in it, or, for a
// token shorter than 8 bytes, as a word of its own (a "t" inside "Not
// Allowed" shows nothing, a "1" on its own may be the token).
func showsToken(s, token string) bool {
	if token == "" {
		return false
	}
	if len(token) >= 8 {
		return strings.Contains(s, token)
	}
	for i := 0; ; {
		j := strings.Index(s[i:], token)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(token)
		if (start == 0 || !wordByte(s[start-1])) && (end == len(s) || !wordByte(s[end])) {
			return true
		}
		i = start + 1
	}
}

func wordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80 || strings.IndexByte("-_.~+/=", c) >= 0
}

// echoes says whether line is one of the request's own header lines, as an
// instance that echoes requests sends them back.
func echoes(line string, sent []string) bool {
	name, _, ok := strings.Cut(strings.TrimSpace(line), ":")
	if !ok {
		return false
	}
	for _, s := range sent {
		if strings.EqualFold(strings.TrimSpace(name), s) {
			return true
		}
	}
	return false
}

// stripTags drops HTML markup, keeping the text between tags.
func stripTags(s string) string {
	if !strings.Contains(s, "<") {
		return s
	}
	var b strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
			b.WriteByte(' ')
		case r == '>' && in:
			in = false
		case !in:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// cleanText makes text from an instance safe to show: control characters
// (terminal escape sequences among them) become spaces, runs of white
// space one space, and it is cut to n bytes on a character boundary.
func cleanText(s string, n int) string {
	var b strings.Builder
	space := true
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == utf8.RuneError || unicode.Is(unicode.Cf, r) {
			if !space {
				b.WriteByte(' ')
				space = true
			}
			continue
		}
		if b.Len()+utf8.RuneLen(r) > n {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
		space = false
	}
	return strings.TrimSpace(b.String())
}
