package purge

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A URLList gives back what was added, in order, whatever the hosts' order
// (runs of one host, and hosts that alternate).
func TestURLListKeepsEveryURL(t *testing.T) {
	var l URLList
	var want []string
	for i := range 5000 {
		host := []string{"a.example", "b.example:8080", "a.example", "[::1]"}[i/7%4]
		s := fmt.Sprintf("https://%s/p/%d?q=%s", host, i, strings.Repeat("x", i%300))
		require.NoError(t, l.Add(s))
		u, err := ParseURL(s)
		require.NoError(t, err)
		want = append(want, u.String())
		if i%1000 == 0 {
			assert.Equal(t, u, l.At(i))
		}
	}
	assert.Equal(t, 5000, l.Len())
	assert.Equal(t, want, l.Strings())
	assert.Len(t, l.hosts, 3, "each host once")
	for i, u := range l.All() {
		if i == 10 {
			assert.Equal(t, want[10], u.String())
			break
		}
	}
	var empty *URLList
	assert.Equal(t, 0, empty.Len())
}

func TestURLListRefusesWhatNoCacheTakes(t *testing.T) {
	var l URLList
	err := l.Add("https://example.com/" + strings.Repeat("a", MaxTargetBytes))
	assert.ErrorContains(t, err, "longer than 64 KiB")
	assert.Equal(t, 0, l.Len())
	assert.Error(t, l.Append(URL{}))
}

// ReadURLs: canonical or as written, comments and blank lines skipped, and
// the first bad line named: invalid UTF-8, a line too long, a bad URL.
func TestReadURLsStreams(t *testing.T) {
	in := "# a comment\nhttps://EXAMPLE.com/./a\n\n  https://example.com/b  \n"
	l, err := ReadURLs(strings.NewReader(in), "f", false)
	require.NoError(t, err)
	assert.Equal(t, []string{"https://example.com/a", "https://example.com/b"}, l.Strings())
	l, err = ReadURLs(strings.NewReader(in), "f", true)
	require.NoError(t, err)
	assert.Equal(t, []string{"https://EXAMPLE.com/./a", "https://example.com/b"}, l.Strings())

	for content, want := range map[string]string{
		"https://example.com/a\nhttps://example.com/\xff\n":                     "f line 2: not valid UTF-8",
		"https://example.com/" + strings.Repeat("a", 10<<20):                    "f line 1: longer than 64 KiB",
		"https://example.com/a\n\n# c\nhttps://exa mple.com/\n":                 "f line 4: url",
		strings.Repeat("https://example.com/ok\n", 3) + "ftp://example.com/x\n": "f line 4: url \"ftp://example.com/x\": scheme",
	} {
		_, err := ReadURLs(strings.NewReader(content), "f", false)
		assert.ErrorContains(t, err, want)
	}
	l, err = ReadURLs(strings.NewReader("https://example.com/no-final-newline"), "f", false)
	require.NoError(t, err)
	assert.Equal(t, 1, l.Len())
}

// A job takes its URLs and its URLList together, URLs first.
func TestJobURLsAndURLList(t *testing.T) {
	a := startInstance(t, "127.0.0.1", nil)
	l, err := ReadURLs(strings.NewReader("https://example.com/from-file\n"), "f", false)
	require.NoError(t, err)
	j := job([]string{"https://example.com/from-flag"}, a.addr)
	j.URLList = l
	out := run(t, j)
	require.True(t, out.OK())
	assert.Equal(t, []string{"https://example.com/from-flag", "https://example.com/from-file"}, out.Purge.URLs.Strings())
	assert.Equal(t, 1, l.Len(), "the job does not change the caller's list")
}
