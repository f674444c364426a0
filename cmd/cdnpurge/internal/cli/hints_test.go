package cli

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// machinesAPI is a Machines API stand-in on a real listener: it lists
// three machines (two started, in iad and sjc; one stopped, in ams), or
// answers what answer says.
func machinesAPI(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if answer != nil {
			answer(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`[{"id":"148e1111","name":"a","state":"started","region":"iad"},` +
			`{"id":"148e2222","name":"b","state":"started","region":"sjc"},` +
			`{"id":"148e3333","name":"c","state":"stopped","region":"ams"}]`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// What the Machines API answers is said for what it means, and the hint
// names the flag to change: the token only when the token was refused,
// --timeout for a slow API, --deadline when the run's deadline cut it,
// --region with the regions that exist.
func TestFlyDiscoveryHintsSayWhatEachAnswerMeans(t *testing.T) {
	status := func(code int, retryAfter, body string) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.WriteHeader(code)
			_, _ = w.Write([]byte(body))
		}
	}
	release := make(chan struct{})
	defer close(release)
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	huge := func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte("[" + strings.Repeat(`{"id":"148e1111","state":"started","region":"iad"},`, 20000))
		for n := 0; n <= 17<<20; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter, r *http.Request)
		extra  []string
		err    string // after "cdnpurge purge: discover Fly.io app my-cdn: "
		hint   string // "" for none
	}{
		{"401", status(401, "", `{"error":"unauthorized"}`), nil,
			"the Machines API refused the Fly.io token (401 Unauthorized: unauthorized); give a token that can read the app, e.g. from 'flyctl tokens create readonly'",
			"check the Fly.io token (FLY_API_TOKEN or --fly-token-file)"},
		{"429", status(429, "30", `{"error":"rate limit exceeded"}`), nil,
			"the Machines API answered 429 Too Many Requests (rate limited): rate limit exceeded",
			"try again in 30s, as the API asks"},
		{"500", status(500, "", `{"error":"internal server error"}`), nil,
			"the Machines API answered 500 Internal Server Error (a failure on Fly.io's side): internal server error",
			"try again later; https://status.flyio.net shows Fly.io's incidents"},
		{"503", status(503, "", `{"error":"service unavailable"}`), nil,
			"the Machines API answered 503 Service Unavailable (unavailable for now, on Fly.io's side): service unavailable",
			"try again later; https://status.flyio.net shows Fly.io's incidents"},
		{"over 16 MiB", huge, nil,
			"the Machines API's answer is larger than 16 MiB, the most read of it: its list of machines cannot be read whole", ""},
		{"timeout", slow, []string{"--timeout", "200ms"},
			"the Machines API at {API} did not answer within 200ms",
			"raise --timeout: it limits the Machines API's answer too"},
		{"deadline", slow, []string{"--deadline", "200ms"},
			"stopped before the Machines API at {API} answered: the job's deadline passed",
			"raise --deadline: it limits the whole run, finding the instances included"},
		{"region typo", nil, []string{"--region", "iadd"},
			"the app has no machine in iadd: its 3 machines are in ams, iad and sjc",
			"did you mean --region iad?"},
		{"regions typos", nil, []string{"--region", "iadd,sjcc"},
			"the app has no machine in iadd or sjcc: its 3 machines are in ams, iad and sjc",
			"did you mean --region iad,sjc?"},
		{"region far", nil, []string{"--region", "syd"},
			"the app has no machine in syd: its 3 machines are in ams, iad and sjc",
			"give --region one of the app's regions, or leave it out to purge them all"},
		{"region stopped", nil, []string{"--region", "ams"},
			"the app has no started machine in ams (1 listed there: 1 stopped)", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := machinesAPI(t, tc.answer)
			args := append([]string{"purge", "--url", "https://e.com/x", "--fly-app", "my-cdn", "--fly-api", api}, tc.extra...)
			r := run(t, map[string]string{"FLY_API_TOKEN": "fly-token-0123456789"}, "", args...)
			assert.Equal(t, ExitUsage, r.code)
			assert.Empty(t, r.stdout)
			want := "cdnpurge purge: discover Fly.io app my-cdn: " + strings.ReplaceAll(tc.err, "{API}", api) + "\n"
			if tc.hint != "" {
				want += "hint: " + tc.hint + "\n"
			}
			assert.Equal(t, want, r.stderr)
		})
	}
}

// A lookup the run's deadline cut names --deadline, not the resolver or
// --dns-timeout; one stopped by a signal names nothing to change.
func TestDNSStoppedHintNamesTheDeadline(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer silent.Close()
	addr := silent.LocalAddr().String()
	r := run(t, nil, "", "purge", "--url", "https://e.com/", "--dns-name", "cdn.test", "--resolver", addr, "--deadline", "100ms")
	assert.Equal(t, ExitUsage, r.code)
	assert.Equal(t, "cdnpurge purge: discover AAAA cdn.test via "+addr+": stopped waiting for resolver "+addr+": the job's deadline passed\n"+
		"hint: raise --deadline: it limits the whole run, finding the instances included\n", r.stderr)

	ctx, cancel := context.WithCancelCause(context.Background())
	go func() {
		_, _, _ = silent.ReadFrom(make([]byte, 512))
		cancel(&Interrupted{Signal: os.Interrupt})
	}()
	var out, errb strings.Builder
	a := &App{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Version: "test", Getenv: func(string) string { return "" }}
	code := a.Run(ctx, []string{"purge", "--url", "https://e.com/", "--dns-name", "cdn.test", "--resolver", addr, "--dns-timeout", "500ms"})
	assert.Equal(t, ExitUsage, code)
	assert.Equal(t, "cdnpurge purge: discover AAAA cdn.test via "+addr+": stopped waiting for resolver "+addr+": interrupted by SIGINT (Ctrl-C)\n", errb.String())
}

// A dry run counts in words: one instance is "1 instance".
func TestDryRunCountsInWords(t *testing.T) {
	f := startFleet(t, 1, nil)
	r := run(t, nil, "", append([]string{"purge", "--url", "https://e.com/x", "--dry-run"}, f.args()...)...)
	assert.Equal(t, ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "would send PURGE to 1 instance x 1 URL over http; nothing was sent\n")
	r = run(t, nil, "", append([]string{"purge", "--url", "https://e.com/x", "--url", "https://e.com/y", "--dry-run"}, f.args()...)...)
	assert.Equal(t, ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "would send PURGE to 1 instance x 2 URLs over http; nothing was sent\n")
}

// A certificate that does not verify names the flags that get past it;
// the row shows the time the handshake took, not 0s.
func TestBadCertificateHintNamesTheFlags(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	r := run(t, nil, "", "purge", "--url", "https://not-in-cert.test/x", "--instance", srv.Listener.Addr().String(), "--scheme", "https", "--retries", "0")
	assert.Equal(t, ExitFailed, r.code)
	assert.Contains(t, r.stdout, "not sent: tls: failed to verify certificate")
	assert.NotContains(t, r.stdout, " 0s ", "the row shows the time the handshake took")
	assert.Contains(t, r.stderr, "\nhint: the instance's certificate did not verify for the URL's host: --scheme http reaches the instances without TLS, or --insecure skips the check\n")
}
