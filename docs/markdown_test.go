package docs

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/require"
)

// repo is the repository's root, seen from this package.
var repo = filepath.Join("..")

// page is one Markdown file: README.md or docs/*.md, relative to repo.
type page struct {
	path  string
	lines []string
}

// block is a fenced code block of a page.
type block struct {
	page *page
	lang string // the fence's info string: sh, yaml, go, text ...
	line int    // the 1-based line of its first content line
	text []string
}

func (b block) where(offset int) string { return b.page.path + ":" + itoa(b.line+offset) }

// command is one logical command of a shell block: its lines joined where
// a line ends with a backslash or a pipe.
type command struct {
	block block
	line  int // 1-based line in the page
	text  string
}

func (c command) String() string { return c.block.page.path + ":" + itoa(c.line) + ": " + c.text }

func itoa(n int) string { return strconv.Itoa(n) }

// pages reads README.md and every docs/*.md.
func pages(t *testing.T) []*page {
	t.Helper()
	paths := []string{"README.md"}
	more, err := filepath.Glob(filepath.Join(repo, "docs", "*.md"))
	require.NoError(t, err)
	for _, m := range more {
		rel, err := filepath.Rel(repo, m)
		require.NoError(t, err)
		paths = append(paths, rel)
	}
	sort.Strings(paths[1:])
	var out []*page
	for _, p := range paths {
		b, err := os.ReadFile(filepath.Join(repo, p))
		require.NoError(t, err)
		out = append(out, &page{path: p, lines: strings.Split(string(b), "\n")})
	}
	return out
}

// blocks returns the page's fenced code blocks.
func (p *page) blocks() []block {
	var out []block
	var cur *block
	for i, l := range p.lines {
		trimmed := strings.TrimSpace(l)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &block{page: p, lang: strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), line: i + 2}
		case cur != nil && trimmed == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text = append(cur.text, l)
		}
	}
	return out
}

// commands splits a shell block into logical commands, without blank and
// comment lines.
func (b block) commands() []command {
	var out []command
	var cur *command
	for i, l := range b.text {
		if cur == nil {
			if t := strings.TrimSpace(l); t == "" || strings.HasPrefix(t, "#") {
				continue
			}
			cur = &command{block: b, line: b.line + i}
		}
		t := stripComment(strings.TrimRight(l, " \t"))
		if cont, ok := strings.CutSuffix(t, "\\"); ok {
			cur.text += strings.TrimSpace(cont) + " "
			continue
		}
		if strings.HasSuffix(t, "|") {
			cur.text += strings.TrimSpace(t) + " "
			continue
		}
		cur.text += strings.TrimSpace(t)
		out = append(out, *cur)
		cur = nil
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out
}

// stripComment removes a trailing "# ..." comment that is not quoted.
func stripComment(s string) string {
	inS, inD := false, false
	for i, r := range s {
		switch {
		case r == '\'' && !inD:
			inS = !inS
		case r == '"' && !inS:
			inD = !inD
		case r == '#' && !inS && !inD && (i == 0 || s[i-1] == ' '):
			return strings.TrimRight(s[:i], " ")
		}
	}
	return s
}

// word is one shell word as written (quotes kept) and its value.
type word struct {
	raw, val string
	quoted   bool
}

// words splits a command into shell words on unquoted white space, keeping
// each word as written (raw) and as the shell would pass it (val: quotes
// removed; $VAR and $(...) left as written). Operators (|, >>, &&) are
// words of their own when written with spaces around them, as the pages
// write them.
func words(s string) []word {
	var out []word
	var raw, val strings.Builder
	inS, inD, quoted := false, false, false
	depth := 0 // $( ... ) nesting, kept in one word
	flush := func() {
		if raw.Len() > 0 {
			out = append(out, word{raw: raw.String(), val: val.String(), quoted: quoted})
		}
		raw.Reset()
		val.Reset()
		quoted = false
	}
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == '\'' && !inD:
			inS, quoted = !inS, true
			raw.WriteRune(r)
			continue
		case r == '"' && !inS:
			inD, quoted = !inD, true
			raw.WriteRune(r)
			continue
		case r == '\\' && !inS && i+1 < len(rs):
			raw.WriteRune(r)
			raw.WriteRune(rs[i+1])
			val.WriteRune(rs[i+1])
			i++
			continue
		case r == '$' && !inS && i+1 < len(rs) && rs[i+1] == '(':
			depth++
		case r == ')' && !inS && depth > 0:
			depth--
		case unicode.IsSpace(r) && !inS && !inD && depth == 0:
			flush()
			continue
		}
		raw.WriteRune(r)
		val.WriteRune(r)
	}
	flush()
	return out
}

// shellQuote quotes s for bash.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-_./:=,@%+[]", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// anchor is the fragment GitHub gives a heading.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// heading is the text of the last "## " heading before line (1-based).
func (p *page) heading(line int) string {
	for i := line - 1; i >= 0; i-- {
		if h, ok := strings.CutPrefix(p.lines[i], "## "); ok {
			return strings.TrimSpace(h)
		}
	}
	return ""
}

// anchors lists the page's headings' fragments.
func (p *page) anchors() map[string]bool {
	out := map[string]bool{}
	inFence := false
	for _, l := range p.lines {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			inFence = !inFence
		}
		if inFence {
			continue
		}
		if h, ok := strings.CutPrefix(l, "#"); ok {
			out[anchor(strings.TrimLeft(h, "#"))] = true
		}
	}
	return out
}

func TestWords(t *testing.T) {
	ws := words(`PURGE_TOKEN=... cdnpurge ban --regex '^/a b/' --header "X: $T" job=$(curl -sS x | jq -r .job) a\ b`)
	var vals []string
	for _, w := range ws {
		vals = append(vals, w.val)
	}
	require.Equal(t, []string{"PURGE_TOKEN=...", "cdnpurge", "ban", "--regex", "^/a b/", "--header", "X: $T", "job=$(curl -sS x | jq -r .job)", "a b"}, vals)
	require.Equal(t, "proof-by-content---origin-url", anchor("Proof by content: `--origin URL`"))
	require.Equal(t, "next-to-a-flyio-fleet", anchor("Next to a Fly.io fleet"))
}
