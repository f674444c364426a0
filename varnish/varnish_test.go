package varnish

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// requireVarnish skips when varnishd is missing, unless CDNPURGE_E2E=require.
func requireVarnish(t *testing.T, prog string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/" + prog); serr == nil {
			return "/usr/sbin/" + prog
		}
		if os.Getenv("CDNPURGE_E2E") == "require" {
			t.Fatalf("%s is not installed and CDNPURGE_E2E=require (apt-get install -y varnish)", prog)
		}
		t.Skipf("%s is not installed (apt-get install -y varnish)", prog)
	}
	return p
}

func TestRenderTemplate(t *testing.T) {
	v, err := RenderTemplate("{{.Name}} {{.OriginHost}} {{.OriginPort}} {{.TokenHeader}} {{.Grace}} {{.Xkey}}",
		VCL{Origin: "[fd00::5]:8080", Grace: 3 * time.Second, Xkey: true})
	require.NoError(t, err)
	assert.Equal(t, "varnish fd00::5 8080 Purge-Token 3 true", v)

	_, err = RenderTemplate("{{.Nope}}", VCL{Origin: "a:1"})
	assert.ErrorContains(t, err, "Nope")
	_, err = RenderTemplate("{{", VCL{Origin: "a:1"})
	assert.ErrorContains(t, err, "template")
	_, err = RenderTemplate("{{.Name}}", VCL{Name: "1bad", Origin: "a:1"})
	assert.ErrorContains(t, err, "instance name", "the same validation as Render")
	_, err = RenderTemplate("x", VCL{Origin: "a:1", Grace: -time.Second})
	assert.ErrorContains(t, err, "grace")
}

func TestRender(t *testing.T) {
	v, err := Render(VCL{Name: "cdn-iad", Origin: "10.0.0.5:8080"})
	require.NoError(t, err)
	assert.Contains(t, v, `.host = "10.0.0.5";`)
	assert.Contains(t, v, `.port = "8080";`)
	assert.Contains(t, v, `"cdn-iad; hit; ttl="`)
	assert.Contains(t, v, `std.getenv("PURGE_TOKEN")`)
	assert.Contains(t, v, "req.http.Purge-Token != req.http.x-cdnpurge-want")
	assert.NotContains(t, v, "import xkey;")
	assert.Contains(t, v, "synth(501, ")

	v, err = Render(VCL{Origin: "10.0.0.5:8080", Xkey: true})
	require.NoError(t, err)
	assert.Contains(t, v, "\nimport xkey;\n")
	assert.Contains(t, v, "xkey.softpurge(req.http.xkey-softpurge)")
	assert.NotContains(t, v, "synth(501, ")

	v, err = Render(VCL{Origin: "[fd00::5]:80", TokenHeader: "X-Purge-Key"})
	require.NoError(t, err)
	assert.Contains(t, v, `.host = "fd00::5";`)
	assert.Contains(t, v, "req.http.X-Purge-Key")

	for _, bad := range []VCL{
		{Name: "1bad", Origin: "a:1"},
		{Name: `x"; }`, Origin: "a:1"},
		{Origin: "nohostport"},
		{Origin: "a:99999"},
		{Origin: `a"b:80`},
		{Origin: "a:1", TokenHeader: "bad header"},
	} {
		_, err := Render(bad)
		assert.Error(t, err, "%+v", bad)
	}
}

// The origin a VCL under varnishtest is rendered with; vtcVCL points it at
// varnishtest's server s1.
const vtcOriginHost, vtcOriginPort = "cdnpurge-vtc-origin", "65535"

// vtcVCL renders tmpl for varnishtest: the origin is server s1.
func vtcVCL(t *testing.T, tmpl string, v VCL) string {
	t.Helper()
	v.Origin = net.JoinHostPort(vtcOriginHost, vtcOriginPort)
	vcl, err := RenderTemplate(tmpl, v)
	require.NoError(t, err)
	port := `.port = "` + vtcOriginPort + `";`
	require.Equal(t, 1, strings.Count(vcl, port), "the template must say %s once", `.port = "{{.OriginPort}}";`)
	vcl = strings.Replace(vcl, port, `.port = "${s1_port}";`, 1)
	return strings.ReplaceAll(vcl, vtcOriginHost, "${s1_addr}")
}

// importsXkey says whether a VCL imports vmod xkey.
var importsXkey = regexp.MustCompile(`(?m)^\s*import\s+xkey\b`).MatchString

// runVTC runs the varnishtest file with "@VCL@" replaced by vcl.
func runVTC(t *testing.T, file, vcl string) {
	t.Helper()
	vt := requireVarnish(t, "varnishtest")
	src, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Contains(t, string(src), "@VCL@")
	path := filepath.Join(t.TempDir(), filepath.Base(file))
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(string(src), "@VCL@", vcl, 1)), 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, vt, path) // prints the log of a failed test
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
}

// TestVarnishtest runs testdata/*.vtc against the shipped VCL, rendered as
// instance vt1 with Xkey off; a file named *.xkey.vtc gets it
// rendered with Xkey on and needs vmod xkey.
func TestVarnishtest(t *testing.T) {
	requireVarnish(t, "varnishtest")
	files, err := filepath.Glob("testdata/*.vtc")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			v := VCL{Name: "vt1", Xkey: strings.HasSuffix(f, ".xkey.vtc")}
			if v.Xkey {
				requireXkey(t)
			}
			runVTC(t, f, vtcVCL(t, vclTemplate, v))
		})
	}
}

// styleFiles lists the style templates, testdata/styles/*.vcl.
func styleFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("testdata/styles/*.vcl")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	return files
}

var (
	aclRE      = regexp.MustCompile(`(?s)\bacl\s+[A-Za-z0-9_-]+\s*\{(.*?)\}`)
	aclEntries = []string{`"127.0.0.0"/8;`, `"::1";`, `"fdcd::"/16;`, `"10.0.0.0"/8;`}
)

// TestStylesCompile renders every style with sample fields and compiles it
// with varnishd -C; the ACLs must admit the test fleets' addresses.
func TestStylesCompile(t *testing.T) {
	requireVarnish(t, "varnishd")
	for _, f := range styleFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			src, err := os.ReadFile(f)
			require.NoError(t, err)
			assert.Regexp(t, `(?s)^vcl 4\.[01];\n# Style "`+regexp.QuoteMeta(strings.TrimSuffix(filepath.Base(f), ".vcl"))+`": .*# PURGE .*# Evidence`,
				string(src), "a style documents itself at the top: PURGE, then Evidence")
			vcl, err := RenderTemplate(string(src), VCL{Name: "style-test", Origin: "127.0.0.1:8080"})
			require.NoError(t, err)
			for _, acl := range aclRE.FindAllStringSubmatch(vcl, -1) {
				for _, e := range aclEntries {
					assert.Contains(t, acl[1], e, "every ACL admits the test fleets")
				}
			}
			if importsXkey(vcl) {
				requireXkey(t)
			}
			require.NoError(t, Compile(context.Background(), "", vcl))
		})
	}
}

// TestStylesVarnishtest runs testdata/styles/NAME.vtc against style NAME.vcl
// (instance vt1): each style behaves as its header comment says.
func TestStylesVarnishtest(t *testing.T) {
	requireVarnish(t, "varnishtest")
	for _, f := range styleFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			src, err := os.ReadFile(f)
			require.NoError(t, err)
			vcl := vtcVCL(t, string(src), VCL{Name: "vt1"})
			if importsXkey(vcl) {
				requireXkey(t)
			}
			runVTC(t, strings.TrimSuffix(f, ".vcl")+".vtc", vcl)
		})
	}
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestStartServesAndStops(t *testing.T) {
	requireVarnish(t, "varnishd")
	var hits atomic.Int64
	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "hello %s", r.URL.Path)
	})}
	ol, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = origin.Serve(ol) }()
	t.Cleanup(func() { origin.Close() })

	p, err := Start(context.Background(), Config{VCL: VCL{Name: "t1", Origin: ol.Addr().String()}, Listen: freePort(t), Token: "tok"})
	require.NoError(t, err)
	t.Cleanup(func() { p.Stop() })
	require.True(t, p.Running())

	get := func(method string, hdr ...string) *http.Response { return request(t, p, method, hdr...) }
	assert.Equal(t, "t1; fwd=miss; stored", get("GET").Header.Get("Cache-Status"))
	assert.Contains(t, get("GET").Header.Get("Cache-Status"), "t1; hit")
	assert.Equal(t, 401, get("PURGE").StatusCode)
	assert.Equal(t, 200, get("PURGE", "Purge-Token", "tok").StatusCode)
	assert.Equal(t, "t1; fwd=miss; stored", get("GET").Header.Get("Cache-Status"))
	assert.Equal(t, int64(2), hits.Load())

	require.NoError(t, p.Stop())
	assert.False(t, p.Running())
	require.NoError(t, p.Stop(), "Stop twice is fine")
}

// TestStartTemplate runs a style through Start and Config.Template: the
// fields are rendered and the token reaches the VCL as PURGE_TOKEN.
func TestStartTemplate(t *testing.T) {
	requireVarnish(t, "varnishd")
	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		fmt.Fprintf(w, "hello %s", r.URL.Path)
	})}
	ol, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = origin.Serve(ol) }()
	t.Cleanup(func() { origin.Close() })

	tmpl, err := os.ReadFile("testdata/styles/pipely.vcl")
	require.NoError(t, err)
	p, err := Start(context.Background(), Config{
		VCL:      VCL{Name: "iad", Origin: ol.Addr().String(), TokenHeader: "X-Purge-Key", Grace: 5 * time.Second},
		Template: string(tmpl), Listen: freePort(t), Token: "tok",
	})
	require.NoError(t, err)
	t.Cleanup(func() { p.Stop() })

	do := func(method string, hdr ...string) *http.Response { return request(t, p, method, hdr...) }
	prefix := "region=iad; origin=127.0.0.1; ttl="
	cs := do("GET").Header.Get("Cache-Status")
	assert.True(t, strings.HasPrefix(cs, prefix), cs)
	assert.Contains(t, cs, "; grace=5.000; storage=memory; miss; hits=0")
	assert.Contains(t, do("GET").Header.Get("Cache-Status"), "; hit; hits=1")
	assert.Equal(t, 401, do("PURGE", "X-Purge-Key", "wrong").StatusCode)
	assert.Equal(t, 200, do("PURGE", "X-Purge-Key", "tok").StatusCode)
	assert.Contains(t, do("GET").Header.Get("Cache-Status"), "; miss; hits=0")

	_, err = Start(context.Background(), Config{VCL: VCL{Origin: ol.Addr().String()}, Template: "{{.Nope}}", Listen: freePort(t)})
	assert.ErrorContains(t, err, "Nope", "a template is validated like the shipped one")
}

func TestStartFailureShowsVarnishdOutput(t *testing.T) {
	requireVarnish(t, "varnishd")
	// An origin host that does not resolve makes the VCL compiler fail.
	_, err := Start(context.Background(), Config{VCL: VCL{Origin: "no-such-host.invalid:80"}, Listen: freePort(t), StartTimeout: 20 * time.Second})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exited")
	assert.Contains(t, err.Error(), "no-such-host.invalid")
}

// requireXkey says whether varnishd can import vmod xkey; without it the test
// skips, or fails under CDNPURGE_E2E=require.
func requireXkey(t *testing.T) {
	t.Helper()
	requireVarnish(t, "varnishd")
	ok, err := xkeyOnce()
	require.NoError(t, err)
	if !ok {
		if os.Getenv("CDNPURGE_E2E") == "require" {
			t.Fatal("vmod xkey is not available and CDNPURGE_E2E=require (apt-get install -y varnish-modules)")
		}
		t.Skip("vmod xkey is not available (apt-get install -y varnish-modules)")
	}
}

var xkeyOnce = sync.OnceValues(func() (bool, error) { return HasVmod("", "xkey") })

func TestHasVmod(t *testing.T) {
	requireVarnish(t, "varnishd")
	ok, err := HasVmod("", "std")
	require.NoError(t, err)
	assert.True(t, ok, "vmod std ships with varnishd")

	ok, err = HasVmod("", "cdnpurge_no_such_vmod")
	require.NoError(t, err)
	assert.False(t, ok)

	_, err = HasVmod("", "std; import purge")
	assert.ErrorContains(t, err, "vmod name")

	_, err = HasVmod("varnishd-that-does-not-exist", "std")
	assert.ErrorIs(t, err, ErrNotInstalled)
}

func TestCompile(t *testing.T) {
	requireVarnish(t, "varnishd")
	v, err := Render(VCL{Origin: "127.0.0.1:80"})
	require.NoError(t, err)
	require.NoError(t, Compile(context.Background(), "", v))

	err = Compile(context.Background(), "", "vcl 4.1;\nbackend default none;\nsub vcl_recv { nonsense; }\n")
	var ce *CompileError
	require.ErrorAs(t, err, &ce)
	assert.Contains(t, ce.Output, "nonsense")
	assert.NotContains(t, ce.Output, "Could not delete")
}

func TestLookupMissing(t *testing.T) {
	_, err := Lookup("varnishd-that-does-not-exist")
	assert.ErrorIs(t, err, ErrNotInstalled)
	assert.Contains(t, ErrNotInstalled.Error(), "apt-get install -y varnish")
}

// request sends method for /x with Host example.com and the header pairs
// hdr to p, reads the whole answer and returns it.
func request(t *testing.T, p *Process, method string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+p.Addr+"/x", nil)
	require.NoError(t, err)
	req.Host = "example.com"
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// A process alone on its filesystem (a container) keeps varnishd's own
// working directory; the native runner gives each instance its own.
func TestArgs(t *testing.T) {
	alone := Args(Argv{Listen: ":9000", VCLFile: "/etc/varnish/default.vcl"})
	assert.NotContains(t, alone, "-n")
	assert.Equal(t, []string{"-F", "-a", ":9000", "-f", "/etc/varnish/default.vcl", "-s", DefaultStorage, "-T", "none"}, alone[:9])
	native := Args(Argv{Listen: "127.0.0.1:80", VCLFile: "a.vcl", WorkDir: "/tmp/w", Storage: "malloc,1m"})
	assert.Equal(t, []string{"-F", "-n", "/tmp/w", "-a", "127.0.0.1:80", "-f", "a.vcl", "-s", "malloc,1m"}, native[:9])
	assert.Equal(t, alone[9:], native[11:], "the same parameters")
}
