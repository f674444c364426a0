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
// headers. Whether it shows a secret is decided on what is finally shown
// (see plan.answer).
func bodyDetail(body []byte, sent []string) string {
	if len(body) == 0 {
		return ""
	}
	s := strings.ToValidUTF8(string(body), "?")
	var kept []string
	for _, line := range strings.Split(s, "\n") {
		if !echoes(line, sent) {
			kept = append(kept, line)
		}
	}
	return cleanText(stripTags(strings.Join(kept, " ")), maxDetail)
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
