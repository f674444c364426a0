package secret

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestShowsAnyRunOfEightCharacters(t *testing.T) {
	jwt := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
	s := New(jwt)
	assert.True(t, s.Shows(jwt))
	for i := 0; i+Run <= len(jwt); i++ {
		assert.True(t, s.Shows("reason: "+jwt[i:i+Run]+" ..."), "run at %d", i)
		assert.False(t, s.Shows("reason: "+jwt[i:i+Run-1]+" ..."), "7 characters at %d are not a run", i)
	}
	assert.True(t, s.Shows(strings.ToUpper(jwt[20:28])), "letters compared without case")
	assert.False(t, s.Shows("nothing to see"))
	assert.False(t, s.Shows(""))
}

func TestFlyMacaroonEveryPart(t *testing.T) {
	tok := "FlyV1 fm2_lJPECAAAAAAAAAAAxxxxx,fm2_lJPEzzzzQkSecondPart0123,fo1_thirdPartABCDEFGH"
	s := New(tok)
	for _, part := range strings.Split(strings.TrimPrefix(tok, "FlyV1 "), ",") {
		assert.True(t, s.Shows("the API says: "+part), part)
		assert.True(t, s.Shows(part[len(part)-Run:]), "the end of %s", part)
	}
	assert.True(t, s.Shows("Authorization: FlyV1 fm2"), "the prefix as sent")
}

func TestShortSecretsAsWords(t *testing.T) {
	s := New("t", "s3cret")
	assert.False(t, s.Shows("405 Not Allowed"), "a t inside a word shows nothing")
	assert.True(t, s.Shows("token is t here"), "on its own it may be the token")
	assert.True(t, s.Shows("echo: s3cret"))
	assert.False(t, s.Shows("echo: s3crets"))
}

func TestEmptyAndNil(t *testing.T) {
	var nilSet *Set
	assert.False(t, nilSet.Shows("anything"))
	assert.True(t, nilSet.Empty())
	assert.True(t, New("", "  ").Empty())
	assert.False(t, (&Set{}).Shows("x"))
	s := New("0123456789")
	assert.True(t, s.ShowsAny("a", "x01234567"))
	assert.False(t, s.ShowsAny("a", "b"))
}

// The check is per byte: a megabyte takes about a millisecond.
func BenchmarkShows(b *testing.B) {
	s := New("FlyV1 fm2_"+strings.Repeat("lJPECAAAAAAAAAAA", 20), "purge-token-0123456789")
	text := []byte(strings.Repeat("https://example.com/episode/123456 200 OK ", 1<<14))
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if s.Shows(string(text)) {
			b.Fatal("false positive")
		}
	}
}
