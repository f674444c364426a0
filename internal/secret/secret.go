// Package secret decides whether a text shows a secret: a purge token, a
// Fly.io token, an API token. It is the one rule every part of cdnpurge
// applies before it shows anything that came from outside (an instance's
// reason phrase or body, an API's error, a header value) or that a person
// typed (a URL), in any format, on any stream.
//
// The rule: a text shows a secret when it contains Run (8) consecutive
// characters of it, anywhere, ASCII letters compared without case. A secret
// shorter than Run shows when it stands in the text as a word of its own (a
// "t" inside "Not Allowed" shows nothing; a "1" between spaces may be the
// token). Eight characters of a random token are not guessed by chance, and
// a clipped or folded copy of a token (the first 67 characters of a JWT, a
// reason cut after 120 bytes) is caught as surely as the whole.
//
// Decide on the text exactly as it will be shown, after every
// transformation (white space folded, clipped, escaped for a terminal,
// Markdown or JSON): a text that is safe before escaping may not be after
// (a '|' escaped as "\|" can complete a run of a secret that holds "\|").
// What shows a secret is withheld whole, not masked: a mask shows where the
// secret stood, and for a short one, what it is.
package secret

import (
	"strings"
)

// Run is how many consecutive characters of a secret make a text show it.
const Run = 8

// Set is the secrets of one run. The zero value and nil hold none. Add
// them before the Set is shared: Shows may then be called from any
// goroutine.
type Set struct {
	// windows holds every Run-byte window of every secret of Run bytes or
	// more, ASCII letters folded to lower case, as a little-endian word.
	windows map[uint64]struct{}
	// filter is a one-hash Bloom filter over windows: most windows of an
	// ordinary text miss it, so a check costs a shift and a load per byte.
	filter []uint64
	short  []string // secrets shorter than Run
}

const filterBits = 1 << 16

// New returns a Set holding secrets (empty strings are ignored).
func New(secrets ...string) *Set {
	s := &Set{}
	for _, v := range secrets {
		s.Add(v)
	}
	return s
}

// Add adds a secret. Every part of a credential is covered with it: a
// run of one part of a Fly.io macaroon ("FlyV1 fm2_...,fm2_...") or of the
// token after a scheme ("Bearer TOKEN") is a run of the whole.
func (s *Set) Add(secret string) {
	if secret = strings.TrimSpace(secret); secret != "" {
		s.add(secret)
	}
}

func (s *Set) add(v string) {
	if len(v) < Run {
		for _, have := range s.short {
			if have == v {
				return
			}
		}
		s.short = append(s.short, v)
		return
	}
	if s.windows == nil {
		s.windows = map[uint64]struct{}{}
		s.filter = make([]uint64, filterBits/64)
	}
	var w uint64
	for i := 0; i < len(v); i++ {
		w = w>>8 | uint64(fold(v[i]))<<56
		if i >= Run-1 {
			s.windows[w] = struct{}{}
			h := hash(w)
			s.filter[h/64] |= 1 << (h % 64)
		}
	}
}

// Empty says whether the set holds no secret.
func (s *Set) Empty() bool { return s == nil || len(s.windows) == 0 && len(s.short) == 0 }

// Shows says whether text shows any secret of the set (see the package
// documentation).
func (s *Set) Shows(text string) bool {
	if s.Empty() {
		return false
	}
	if s.windows != nil && len(text) >= Run {
		var w uint64
		for i := 0; i < len(text); i++ {
			w = w>>8 | uint64(fold(text[i]))<<56
			if i < Run-1 {
				continue
			}
			h := hash(w)
			if s.filter[h/64]&(1<<(h%64)) == 0 {
				continue
			}
			if _, ok := s.windows[w]; ok {
				return true
			}
		}
	}
	for _, v := range s.short {
		if word(text, v) {
			return true
		}
	}
	return false
}

// ShowsAny says whether any of texts shows a secret.
func (s *Set) ShowsAny(texts ...string) bool {
	for _, t := range texts {
		if s.Shows(t) {
			return true
		}
	}
	return false
}

func fold(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func hash(w uint64) uint64 { return (w * 0x9e3779b97f4a7c15) >> (64 - 16) }

// word says whether v stands in s as a word of its own: not inside a
// longer run of letters, digits or the characters tokens are made of.
func word(s, v string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], v)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(v)
		if (start == 0 || !wordByte(s[start-1])) && (end == len(s) || !wordByte(s[end])) {
			return true
		}
		i = start + 1
	}
}

func wordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80 || strings.IndexByte("-_.~+/=", c) >= 0
}
