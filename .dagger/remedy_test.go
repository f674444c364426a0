package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/purge"
)

// The Machines API's answers, as the library reports them against a real
// listener, get this module's remedies: the token only when it was
// refused, --timeout for a slow API, --deadline when the run's deadline
// cut it, --region for a region without machines, and otherwise the
// library's own (when to try again). A Fly.io token is a *dagger.Secret,
// which needs an engine to read: the job is built here as the module
// builds it after reading one.
func TestMachinesAPIRemedies(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter, r *http.Request)
		job    func(*purge.Job)
		want   string
	}{
		{"401", status(http.StatusUnauthorized, ""), nil, "check --fly-token (e.g. env://FLY_API_TOKEN)"},
		{"429", status(http.StatusTooManyRequests, "30"), nil, "try again in 30s, as the API asks"},
		{"503", status(http.StatusServiceUnavailable, ""), nil, "try again later; https://status.flyio.net shows Fly.io's incidents"},
		{"timeout", waitFor(release), func(j *purge.Job) { j.Timeout = 100 * time.Millisecond }, "raise --timeout: it limits the Machines API's answer too"},
		{"deadline", waitFor(release), func(j *purge.Job) { j.Deadline = 100 * time.Millisecond }, "raise --deadline: it limits the whole run, finding the instances included"},
		{"region", machines, func(j *purge.Job) { j.Fly.Regions = []string{"iadd"} }, "pass --region with the app's regions, or leave it out to purge them all"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := httptest.NewServer(http.HandlerFunc(tc.answer))
			t.Cleanup(api.Close)
			j := purge.Job{URLs: []string{"https://e.com/x"}, Fly: purge.Fly{App: "my-cdn", Token: "fly-token-0123456789", API: api.URL}, NoIPv6: true}
			if tc.job != nil {
				tc.job(&j)
			}
			_, err := j.Run(context.Background())
			require.Error(t, err)
			assert.Equal(t, tc.want, remedy(err, j))
			msg := nothingSent(err, j).Error()
			assert.True(t, strings.HasSuffix(msg, "\nhint: "+tc.want), msg)
			if tc.name != "401" {
				assert.NotContains(t, msg, "token", "only a refused token gets a token remedy")
			}
		})
	}
}

func status(code int, retryAfter string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(code)
	}
}

func waitFor(release chan struct{}) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
}

func machines(w http.ResponseWriter, r *http.Request) {
	_, _ = w.Write([]byte(`[{"id":"148e1111","state":"started","region":"iad"},{"id":"148e2222","state":"started","region":"sjc"}]`))
}

// A certificate that does not verify names the arguments that get past it.
func TestBadCertificateRemedy(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	_, err := call(t, map[string]any{"instance": []string{srv.Listener.Addr().String()}, "scheme": "https"}, "Purge",
		map[string]any{"url": []string{"https://not-in-cert.test/x"}})
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "sent, and FAILED: purge: 1 of 1"), err.Error())
	assert.Contains(t, err.Error(), "\nhint: the certificate did not verify for the URL's host: pass --scheme http to reach the instances without TLS, or --insecure to skip the check\n")
}
