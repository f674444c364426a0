package purge

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseInstance(t *testing.T) {
	for in, want := range map[string]Instance{
		"10.0.0.7":            {"10.0.0.7", 80},
		"10.0.0.7:9000":       {"10.0.0.7", 9000},
		"fdaa::3":             {"fdaa::3", 80},
		"[fdaa::3]":           {"fdaa::3", 80},
		"[fdaa:0::3]:9000":    {"fdaa::3", 9000},
		"varnish-1.local:81":  {"varnish-1.local", 81},
		" cache.example.com ": {"cache.example.com", 80},
	} {
		got, err := ParseInstance(in, 80)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for in, want := range map[string]string{
		"":                   "empty",
		"10.0.0.7:x":         "not a number",
		"10.0.0.7:70000":     "out of range",
		"[10.0.0.7]:80":      "not an IPv6",
		"fdaa::zz":           "not an IPv6",
		"http://10.0.0.7/":   "give ADDR",
		"bad host!":          "neither an IP address nor a host name",
		"10.0.0.7:80:90":     "not an IPv6",
		"[fdaa::3]:0":        "out of range",
		"cache.example.com:": "port is empty",
	} {
		_, err := ParseInstance(in, 80)
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), want, in)
		assert.Contains(t, err.Error(), "instance", in)
	}
}

func TestParseURL(t *testing.T) {
	for in, target := range map[string]string{
		"https://changelog.com/podcast/1":  "/podcast/1",
		"https://changelog.com":            "/",
		"http://example.com/a%20b?x=1&y=2": "/a%20b?x=1&y=2",
		"http://example.com/x|y?q=a|b":     "/x|y?q=a|b",
		"http://example.com/p?":            "/p?",
		"http://example.com/p#frag":        "/p",
		"http://[::1]:8080/p":              "/p",
		"http://example.com//double//":     "//double//",
		"http://example.com/a b?q=x y":     "/a%20b?q=x%20y",
		"http://example.com/ü?q=ü":         "/%C3%BC?q=%C3%BC",
		"http://example.com/%C3%BC":        "/%C3%BC",
		"http://example.com/{a}<b>?'":      "/%7Ba%7D%3Cb%3E?%27",
	} {
		u, err := ParseURL(in)
		require.NoError(t, err, in)
		assert.Equal(t, target, RequestTarget(u), in)
	}
	for in, want := range map[string]string{
		"":                            "empty",
		"/podcast/1":                  "not absolute",
		"changelog.com/podcast":       "not absolute",
		"ftp://example.com/x":         "scheme \"ftp\"",
		"https:///nohost":             "no host",
		"https://user:pw@example.com": "credentials",
		"http://example.com:99999/":   "out of range",
		"http://exa mple.com/":        "url",
	} {
		_, err := ParseURL(in)
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), want, in)
	}
	_, err := ParseURL("https://user:hunter2@example.com/")
	assert.NotContains(t, err.Error(), "hunter2")
}

func TestReadURLs(t *testing.T) {
	in := "# changed pages\nhttps://a.example/1\n\n   \n  https://a.example/2?x=1  \n# done\n"
	urls, err := ReadURLs(strings.NewReader(in), "changed.txt")
	require.NoError(t, err)
	require.Len(t, urls, 2)
	assert.Equal(t, "https://a.example/2?x=1", DisplayURL(urls[1]))

	_, err = ReadURLs(strings.NewReader("https://a.example/1\n/relative\n"), "changed.txt")
	assert.ErrorContains(t, err, "changed.txt line 2")
	assert.ErrorContains(t, err, "not absolute")
}

func TestParseHeader(t *testing.T) {
	k, v, err := ParseHeader("xkey:  post-1 ")
	require.NoError(t, err)
	assert.Equal(t, "Xkey", k)
	assert.Equal(t, "post-1", v)
	for _, bad := range []string{"no colon", ": empty name", "bad name: x"} {
		_, _, err := ParseHeader(bad)
		assert.ErrorContains(t, err, "Name: value", bad)
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"https://changelog.com/podcast/1", "http://[::1]:80/a%20b?x=1", "http://e/x|y", "/rel", "http://e//x", "http://e/%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURL(s)
		if err != nil {
			return
		}
		target := RequestTarget(u)
		if !strings.HasPrefix(target, "/") {
			t.Fatalf("%q: request target %q does not start with /", s, target)
		}
		again, err := ParseURL(DisplayURL(u))
		if err != nil {
			t.Fatalf("%q: display form %q does not parse: %v", s, DisplayURL(u), err)
		}
		if RequestTarget(again) != target || again.Host != u.Host {
			t.Fatalf("%q: round trip changed %q to %q", s, target, RequestTarget(again))
		}
	})
}

func FuzzParseInstance(f *testing.F) {
	for _, s := range []string{"10.0.0.7", "[fdaa::3]:9000", "fdaa::3", "host.example:80", "[::1]", ":80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		in, err := ParseInstance(s, 80)
		if err != nil {
			return
		}
		if in.Port < 1 || in.Port > 65535 {
			t.Fatalf("%q: port %d out of range", s, in.Port)
		}
		again, err := ParseInstance(in.String(), 1)
		if err != nil || again != in {
			t.Fatalf("%q: %v does not round trip: %v %v", s, in, again, err)
		}
	})
}
