package purge

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	whatwg "github.com/nlnwa/whatwg-url/url"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/internal/loopback"
)

func TestParseInstance(t *testing.T) {
	for in, want := range map[string]Instance{
		"10.0.0.7":          {Host: "10.0.0.7", Port: 80},
		"10.0.0.7:9000":     {Host: "10.0.0.7", Port: 9000},
		"[fdaa::3]:9000":    {Host: "fdaa::3", Port: 9000},
		"[fdaa::3]":         {Host: "fdaa::3", Port: 80},
		"fdaa::3":           {Host: "fdaa::3", Port: 80},
		" cdn-1.internal ":  {Host: "cdn-1.internal", Port: 80},
		"CDN-1.internal.:8": {Host: "cdn-1.internal", Port: 8},
	} {
		got, err := ParseInstance(in, 80)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "http://10.0.0.7/", "10.0.0.7:", "10.0.0.7:x", "10.0.0.7:70000", "[10.0.0.7]:80", "fdaa::zz", "bad host!", "0.0.0.0", "[::]:80", "224.0.0.1"} {
		_, err := ParseInstance(in, 80)
		assert.Error(t, err, in)
		if err != nil {
			assert.Contains(t, err.Error(), "instance", in)
		}
	}
}

func TestParseURLCanonicalisesAsABrowser(t *testing.T) {
	for in, want := range map[string]string{
		"https://CDN.example:443/episodes/./1":    "https://cdn.example/episodes/1",
		"https://cdn.example./a/../b?x=1#frag":    "https://cdn.example/b?x=1",
		"http://EXAMPLE.com:80/%7Efoo/%2e%2E/bar": "http://example.com/bar",
		"http://example.com:8080/p?":              "http://example.com:8080/p?",
		"https://bücher.example/ä?ü":              "https://xn--bcher-kva.example/%C3%A4?%C3%BC",
		"https://example.com/a b/|pipe/`x`{y}":    "https://example.com/a%20b/|pipe/%60x%60%7By%7D",
		"https://example.com":                     "https://example.com/",
		"http://[0:0::1]:8443/x":                  "http://[::1]:8443/x",
		"https://example.com/a%2fb?q=a b'c":       "https://example.com/a%2fb?q=a%20b%27c",
		"https://example.com//double//":           "https://example.com//double//",
		"  https://example.com/trim \n":           "https://example.com/trim",
	} {
		u, err := ParseURL(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, u.String(), in)
	}
	u, err := ParseURL("https://CDN.Example:8443/x")
	require.NoError(t, err)
	assert.Equal(t, URL{Scheme: "https", Host: "cdn.example:8443", Hostname: "cdn.example", Port: "8443", Target: "/x"}, u)
	u, err = ParseURL("http://[::1]/")
	require.NoError(t, err)
	assert.Equal(t, "::1", u.Hostname)
	assert.Equal(t, "[::1]", u.Host)
}

func TestParseRawURLKeepsWhatWasWritten(t *testing.T) {
	for in, target := range map[string]string{
		"https://changelog.com/podcast/1":  "/podcast/1",
		"https://changelog.com":            "/",
		"http://example.com/a%20b?x=1&y=2": "/a%20b?x=1&y=2",
		"http://example.com/x|y?q=a|b":     "/x|y?q=a|b",
		"http://example.com/p?":            "/p?",
		"http://example.com/p#frag":        "/p",
		"http://example.com//double//":     "//double//",
		"http://example.com/a b?q=x y":     "/a%20b?q=x%20y",
		"http://example.com/ü?q=ü":         "/%C3%BC?q=%C3%BC",
		"http://example.com/{a}<b>?'":      "/%7Ba%7D%3Cb%3E?%27",
		"http://example.com/./a/../b":      "/./a/../b",
	} {
		u, err := ParseRawURL(in)
		require.NoError(t, err, in)
		assert.Equal(t, target, u.Target, in)
	}
	u, err := ParseRawURL("https://CDN.example:443/x")
	require.NoError(t, err)
	assert.Equal(t, "CDN.example:443", u.Host)
}

func TestParseURLErrors(t *testing.T) {
	for in, want := range map[string]string{
		"":                            "empty",
		"/podcast/1":                  "not absolute",
		"changelog.com/podcast":       "not absolute",
		"ftp://example.com/x":         `scheme "ftp"`,
		"https:///nohost":             "no host",
		"https://user:pw@example.com": "credentials",
		"http://example.com:99999/":   "out of range",
		"http://exa mple.com/":        "url",
	} {
		for _, parse := range []func(string) (URL, error){ParseURL, ParseRawURL} {
			_, err := parse(in)
			require.Error(t, err, in)
			assert.Contains(t, err.Error(), want, in)
		}
	}
	for _, in := range []string{"https://user:hunter2@example.com/", "https://user:hunter2@exa mple.com/"} {
		_, err := ParseURL(in)
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "hunter2")
	}
}

// A URL without its scheme is most often a host and a path: the example
// is that URL with https://, not a path on someone else's host. Only what
// cannot be a host (a file name, a single word) is read as a path.
func TestParseURLNotAbsoluteSuggestsTheURLMeant(t *testing.T) {
	for in, want := range map[string]string{
		"cdn.example/x":           "https://cdn.example/x",
		"CDN.Example.com/a/b?q=1": "https://CDN.Example.com/a/b?q=1",
		"cdn.example":             "https://cdn.example/",
		"cdn.example?x=1":         "https://cdn.example/?x=1",
		"cdn.example:8080/x":      "https://cdn.example:8080/x",
		"localhost:8080":          "https://localhost:8080/",
		"localhost/feed":          "https://localhost/feed",
		"10.0.0.7/feed":           "https://10.0.0.7/feed",
		"[2001:db8::1]:8080/feed": "https://[2001:db8::1]:8080/feed",
		"//cdn.example/x":         "https://cdn.example/x",
		"bücher.example/x":        "https://bücher.example/x",
		"www.example.xn--p1ai/x":  "https://www.example.xn--p1ai/x",
		"/podcast/1":              "https://example.com/podcast/1",
		"podcast/1":               "https://example.com/podcast/1",
		"feed.xml":                "https://example.com/feed.xml",
		"index.html":              "https://example.com/index.html",
		"episode.mp3":             "https://example.com/episode.mp3",
		"v1.2/notes":              "https://example.com/v1.2/notes",
		"cdn:x/y":                 "", // a scheme of its own: said apart
	} {
		for _, parse := range []func(string) (URL, error){ParseURL, ParseRawURL} {
			_, err := parse(in)
			require.Error(t, err, in)
			if want == "" {
				assert.NotContains(t, err.Error(), "not absolute", in)
				continue
			}
			assert.Contains(t, err.Error(), "not absolute; give the full public URL, e.g. "+want, in)
			assert.NotContains(t, err.Error(), want+"/", in) // nothing appended
		}
	}
}

func TestReadURLs(t *testing.T) {
	in := "# changed pages\nhttps://a.example/1\n\n   \n  https://a.example/2?x=1  \n# done\n"
	urls, err := ReadURLs(strings.NewReader(in), "changed.txt", false)
	require.NoError(t, err)
	assert.Equal(t, []string{"https://a.example/1", "https://a.example/2?x=1"}, urls.Strings())

	_, err = ReadURLs(strings.NewReader("https://a.example/1\n/relative\n"), "changed.txt", false)
	assert.ErrorContains(t, err, "changed.txt line 2")
	assert.ErrorContains(t, err, "not absolute")
}

func TestParseHeader(t *testing.T) {
	k, v, err := ParseHeader("xkey:  post-1 ")
	require.NoError(t, err)
	assert.Equal(t, "Xkey", k)
	assert.Equal(t, "post-1", v)
	for bad, want := range map[string]string{"no colon": "Name: value", ": empty name": "Name: value", "bad name: x": "Name: value", "X-A: b\x1bc": "control"} {
		_, _, err := ParseHeader(bad)
		assert.ErrorContains(t, err, want, bad)
	}
}

// A static instance given by a name that has several addresses is every
// one of them: purging one would leave the others stale.
func TestStaticNameWithSeveralAddressesIsEveryInstance(t *testing.T) {
	ls, port, err := loopback.Listen(3)
	require.NoError(t, err)
	var ins []*instance
	for _, l := range ls {
		ins = append(ins, serveInstance(t, l, nil))
	}
	s := startDNS(t)
	for _, l := range ls {
		require.NoError(t, s.Add("cdn.test. IN A "+l.Addr().(*net.TCPAddr).IP.String()))
	}
	j := job([]string{"http://example.com/x"}, fmt.Sprintf("cdn.test:%d", port))
	j.Resolver = s.Addr
	out := run(t, j)
	require.True(t, out.OK(), out.Purge.Summary())
	require.Len(t, out.Instances, 3)
	for i, in := range ins {
		assert.Len(t, in.requests(), 1, "instance %d", i)
		assert.Equal(t, "cdn.test", out.Instances[i].Name)
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"https://changelog.com/podcast/1", "http://[::1]:80/a%20b?x=1", "http://e/x|y", "/rel", "http://e//x", "http://e/%zz", "https://E.COM:443/./a/../b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, parse := range []func(string) (URL, error){ParseURL, ParseRawURL} {
			u, err := parse(s)
			if err != nil {
				continue
			}
			if !strings.HasPrefix(u.Target, "/") || strings.ContainsAny(u.Target, " \r\n#") || strings.ContainsAny(u.Host, " \r\n/") {
				t.Fatalf("%q: bad request target %q or host %q", s, u.Target, u.Host)
			}
			// A '%' that starts no escape is sent as written, as browsers
			// do; only Go's own parser minds it.
			if _, err := http.ReadRequest(bufioReader("GET " + escapeLonePercent(u.Target) + " HTTP/1.1\r\nHost: " + u.Host + "\r\n\r\n")); err != nil {
				t.Fatalf("%q: %q on %q is not a valid request: %v", s, u.Target, u.Host, err)
			}
			again, err := parse(u.String())
			if err != nil || again != u {
				t.Fatalf("%q: %v does not round trip: %v %v", s, u, again, err)
			}
		}
	})
}

// The fast path for URLs already canonical agrees with the WHATWG parser
// wherever it answers.
func FuzzCanonicalAlready(f *testing.F) {
	for _, s := range []string{"https://example.com/a/b?c=d", "http://e.com:8080/x", "https://e.com:443/x", "http://E.com/x", "https://e.com/a/./b",
		"https://e.com/%2e%2E/x", "https://127.1/x", "https://e.com/x?q='", "https://xn--bcher-kva.de/", "https://e.com./x", "http://a.b-c.d/~x!$&'()*+,;=:@"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fast, ok := canonicalAlready(s)
		if !ok {
			return
		}
		if _, err := checkURL(s); err != nil {
			t.Fatalf("%q: the fast path takes it, checkURL refuses it: %v", s, err)
		}
		w, err := whatwg.Parse(s)
		if err != nil {
			t.Fatalf("%q: the fast path takes it, the parser refuses it: %v", s, err)
		}
		if got := w.Href(true); got != fast.String() {
			t.Fatalf("%q: fast path %q, parser %q", s, fast.String(), got)
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

func TestStaticLookupFailureIsADiscoveryError(t *testing.T) {
	s := startDNS(t, "other.test. IN A 10.0.0.1")
	j := job([]string{"http://example.com/x"}, "missing.test:80")
	j.Resolver = s.Addr
	_, err := j.Run(context.Background())
	var de *DiscoveryError
	require.ErrorAs(t, err, &de)
	assert.Contains(t, err.Error(), "missing.test")
}
