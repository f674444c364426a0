package cli

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/internal/syncbuf"
)

func TestServeUsageErrors(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	require.NoError(t, os.WriteFile(short, []byte("ci abc\n"), 0o600))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--instance", "127.0.0.1:1", "--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"serve", "--instance", "127.0.0.1:1", "--log-format", "xml"}, "--log-format xml: use text or json"},
		{[]string{"serve", "--instance", "127.0.0.1:1", "--url", "https://e.com/"}, "unknown flag --url"},
		{[]string{"serve", "--instance", "127.0.0.1:1", "--allow", "nowhere"}, `allow "nowhere": give a network`},
		{[]string{"serve", "--instance", "127.0.0.1:1", "--api-token-file", short}, "shorter than 16 characters"},
		{[]string{"serve", "--instance", "127.0.0.1:1", "--max-jobs", "0"}, "--max-jobs 0: give a positive number"},
		{[]string{"serve"}, "no instances"},
		{[]string{"purge", "--url", "https://e.com/", "--api-token-file", short}, "--api-token-file goes with --via"},
		{[]string{"purge", "--url", "https://e.com/", "--via", "http://127.0.0.1:1", "--dns-name", "cdn.test"}, "--dns-name: with --via the serve decides this"},
		{[]string{"verify", "--url", "https://e.com/", "--via", "http://127.0.0.1:1", "--instance", "127.0.0.1:1"}, "--instance: with --via the serve decides this"},
	} {
		r := run(t, nil, "", tc.args...)
		assert.Equal(t, ExitUsage, r.code, "%v: %s", tc.args, r.stderr)
		assert.Contains(t, r.stderr, tc.want, tc.args)
	}
}

// serve in-process: purge --via reaches every instance through it, with
// the exit codes of a direct run; a stopped serve exits 0.
func TestServeAndVia(t *testing.T) {
	f := startFleet(t, 3, func(addr string, w http.ResponseWriter, r *http.Request) {
		if addr == "127.0.1.3" && strings.Contains(r.RequestURI, "fail") {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	const token = "0123456789abcdef0123"
	require.NoError(t, os.WriteFile(tokens, []byte("deploy "+token+"\n"), 0o600))
	stderr := &syncbuf.Buffer{}
	a := &App{Stdout: &syncbuf.Buffer{}, Stderr: stderr, Version: "test", Getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	go func() {
		code <- a.Run(ctx, append([]string{"serve", "--listen", "127.0.0.1:0", "--journal", filepath.Join(dir, "j.db"),
			"--api-token-file", tokens, "--retries", "0"}, f.args()...))
	}()
	var addr string
	re := regexp.MustCompile(`msg=serving addr=(\S+)`)
	for deadline := time.Now().Add(10 * time.Second); addr == ""; {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
		}
		require.True(t, time.Now().Before(deadline), "serve did not start: %s", stderr.String())
		time.Sleep(5 * time.Millisecond)
	}
	via := "http://" + addr
	env := map[string]string{"CDNPURGE_API_TOKEN": token}

	r := run(t, env, "", "purge", "--via", via, "--url", "https://changelog.com/ok")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "purged 1 URL on 3/3 instances")
	for _, ad := range f.addrs {
		require.Len(t, f.requests(ad), 1)
	}
	r = run(t, env, "", "purge", "--via", via, "--url", "https://changelog.com/fail")
	require.Equal(t, ExitFailed, r.code, r.stderr)
	assert.Contains(t, r.stderr, "cdnpurge purge: FAILED: purge: 1 of 3 results failed on 1 of 3 instances")
	r = run(t, map[string]string{"CDNPURGE_API_TOKEN": "wrong-token-wrong"}, "", "purge", "--via", via, "--url", "https://changelog.com/ok")
	require.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.stderr, "401 Unauthorized")
	assert.Contains(t, r.stderr, "hint: check the API token in $CDNPURGE_API_TOKEN or --api-token-file")
	assert.NotContains(t, r.stderr, "wrong-token-wrong")

	cancel()
	require.Equal(t, ExitOK, <-code, stderr.String())
	assert.Contains(t, stderr.String(), "who=deploy")
	assert.NotContains(t, stderr.String(), token[:8])
}
