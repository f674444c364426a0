package serve_test

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/serve/api"
)

// noSecret fails when any 8 characters in a row of secret appear in s.
func noSecret(t *testing.T, s, secret, what string) {
	t.Helper()
	for i := 0; i+8 <= len(secret); i++ {
		require.NotContains(t, s, secret[i:i+8], "%s shows part of a secret", what)
	}
}

// Requests without a valid token (or, in transparent mode, from outside
// the allowed networks) get 401, and nothing reaches any instance. With
// the token, the API token itself is not forwarded, and no secret shows
// in any answer or log line.
func TestUnauthorizedReachesNothing(t *testing.T) {
	const purgeToken = "fleet-purge-token-0123456789"
	f := startOwnFleet(t, 3, "", purgeToken)
	apiToken := "ci-token-" + strings.Repeat("abcdef0123", 3)
	tokens := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(tokens, []byte("# who and token\nci "+apiToken+"\n"), 0o600))
	// Loopback is not an allowed network here: every request needs the token.
	p := startServe(t, filepath.Join(t.TempDir(), "journal.db"), []string{"PURGE_TOKEN=" + purgeToken},
		append(f.Args(), "--api-token-file", tokens, "--allow", "192.0.2.0/24", "--log-format", "json")...)
	list := urls("auth", 2)

	for _, tc := range []struct {
		name, method, path, token string
		body                      any
	}{
		{"api without token", http.MethodPost, api.PathPurge, "", api.Request{URLs: list}},
		{"api with a wrong token", http.MethodPost, api.PathPurge, apiToken[:len(apiToken)-1] + "x", api.Request{URLs: list}},
		{"api async without token", http.MethodPost, api.PathPurge + "?wait=false", "", api.Request{URLs: list}},
		{"verify without token", http.MethodPost, api.PathVerify, "", api.VerifyRequest{URLs: list}},
		{"job without token", http.MethodGet, api.PathJobs + "1", "", nil},
		{"transparent PURGE from outside --allow", "PURGE", "/auth/0", "", nil},
		{"transparent BAN with a wrong token", "BAN", "/", "wrong-token-wrong-token", nil},
	} {
		st, h, body := call(t, tc.method, p.url(tc.path), tc.token, tc.body, "Host: example.com", "X-Url: .")
		require.Equal(t, http.StatusUnauthorized, st, "%s: %s", tc.name, body)
		require.Equal(t, `Bearer realm="cdnpurge"`, h.Get("WWW-Authenticate"))
	}
	for i := range 3 {
		require.Empty(t, f.received(i), "instance %d received something", i+1)
	}

	// With the token: sent, and the Authorization header stays at serve.
	st, _, body := call(t, http.MethodPost, p.url(api.PathPurge), apiToken, api.Request{URLs: list})
	require.Equal(t, http.StatusOK, st, string(body))
	st, _, body = call(t, "PURGE", p.url("/auth/t"), apiToken, nil, "Host: example.com", "X-Trace: 1")
	require.Equal(t, http.StatusOK, st, string(body))
	for i := range 3 {
		require.Empty(t, f.missing(i, append(list, "http://example.com/auth/t")))
		out, err := exec.Command("varnishncsa", "-d", "-n", f.procs[i].WorkDir(), "-F", "%m %U auth=%{Authorization}i trace=%{X-Trace}i").Output()
		require.NoError(t, err)
		require.Contains(t, string(out), "PURGE /auth/t auth=- trace=1")
	}
	require.Equal(t, 0, p.stop(t))
	log := p.out.String()
	require.Contains(t, log, `"who":"ci"`)
	require.Contains(t, log, `"status":401`)
	noSecret(t, log, apiToken, "the log")
	noSecret(t, log, purgeToken, "the log")
	noSecret(t, string(body), purgeToken, "an answer")
}
