package purge_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/internal/hostile"
	"github.com/cdnpurge/cdnpurge/purge"
)

// A Machines API error that repeats part of the token: one part of a
// macaroon, a prefix, the raw body with its spaces doubled. No 8
// consecutive characters of it are shown.
func TestFlyTokenPartsNeverShown(t *testing.T) {
	part1 := "fm2_lJPECAAAAAAAAMndxRBcsk3Yq8y5bW4bP1gQwrVzdHRwczovL2FwaS5mbHkuaW8vdjGWAJLOAAmlf"
	part2 := "fm2_lJPEEGUXkxKC9Q3mT0sXh6Yk8kF2QyZo3bRhZ2Fuc2lvbnMvMTIzNDU2Nzg5MA"
	macaroon := "FlyV1 " + part1 + "," + part2
	for name, body := range map[string]func(auth string) string{
		"one part":      func(string) string { return `{"error":"macaroon part ` + part2 + ` expired"}` },
		"prefix":        func(string) string { return `{"error":"bad token ` + part1[:20] + `..."}` },
		"raw body":      func(a string) string { return "<html>token " + strings.ReplaceAll(a, " ", "   ") + " refused</html>" },
		"tail in quote": func(string) string { return `{"error":"signature \"` + part1[len(part1)-12:] + `\" does not verify"}` },
	} {
		api := startFlyAPI(t, flyFleet, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(body(r.Header.Get("Authorization"))))
		})
		j := flyJob(api, nil, "https://cdn.example/feed")
		j.Fly.Token = macaroon
		_, err := j.Run(context.Background())
		require.Error(t, err, name)
		if run, shows := hostile.ShowsRun(err.Error(), macaroon); shows {
			t.Errorf("%s: the error shows %q of the token: %v", name, run, err)
		}
		assert.Contains(t, err.Error(), "refused the Fly.io token", name)
	}
}

// The Machines API lists one machine twice: it is one machine, purged once.
func TestFlyMachineListedTwiceIsPurgedOnce(t *testing.T) {
	twice := append(append([]flyMachine{}, flyFleet[:2]...), flyFleet[0])
	api := startFlyAPI(t, twice, nil)
	edge := startFlyEdge(t, false, nil)
	out := flyRun(t, flyJob(api, edge, "https://cdn.example/feed"))
	require.True(t, out.OK())
	assert.Len(t, out.Instances, 2)
	assert.Contains(t, out.Purge.Summary(), "on 2/2 instances")
	per := map[string]int{}
	for _, s := range edge.requests() {
		per[s.Machine]++
	}
	assert.Equal(t, map[string]int{flyFleet[0].ID: 1, flyFleet[1].ID: 1}, per)
}

// A redirect from the Machines API to another port, or from https to
// http, is not followed with the token; one on the same origin is.
func TestFlyRedirectNeverCarriesTheToken(t *testing.T) {
	var got []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
		_, _ = w.Write([]byte("[]"))
	}))
	t.Cleanup(other.Close)

	// Another port (the same host).
	api := startFlyAPI(t, flyFleet, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound)
	})
	_, err := flyJob(api, nil, "https://cdn.example/feed").Run(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "redirected to "+other.URL)
	assert.Contains(t, err.Error(), "not followed, as the request carries the Fly.io token")

	// From https to http.
	tlsAPI := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusMovedPermanently)
	}))
	t.Cleanup(tlsAPI.Close)
	j := flyJob(&flyAPI{URL: tlsAPI.URL}, nil, "https://cdn.example/feed")
	_, err = j.Run(context.Background())
	require.Error(t, err)
	assert.Empty(t, got, "the other address was never asked, token or not")

	// The same origin, another path: followed, with the token.
	var auth []string
	moved := startFlyAPI(t, flyFleet, func(w http.ResponseWriter, r *http.Request) {
		auth = append(auth, r.Header.Get("Authorization"))
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			http.Redirect(w, r, "/v2/"+strings.TrimPrefix(r.URL.Path, "/v1/"), http.StatusTemporaryRedirect)
			return
		}
		_, _ = w.Write([]byte(`[{"id":"148ed193b95e89","state":"started","region":"iad"}]`))
	})
	plan, err := flyJob(moved, nil, "https://cdn.example/feed").Plan(context.Background())
	require.NoError(t, err)
	assert.Len(t, plan.Instances, 1)
	assert.Equal(t, []string{"Bearer " + flyTestToken, "Bearer " + flyTestToken}, auth)
}

// deadAddress is a loopback address whose connections never complete: a
// listener with a full accept queue, so the kernel drops further SYNs (as
// a firewall that drops packets does).
func deadAddress(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Close(fd) })
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, syscall.Listen(fd, 0))
	sa, err := syscall.Getsockname(fd)
	require.NoError(t, err)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	// Fill the queue (never accepted): connections that complete, then
	// one that does not.
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { _ = c.Close() })
		require.Less(t, i, 8, "the accept queue does not fill")
	}
	return addr
}

// Edge mode with --connect to an address that drops connections, shared
// by 3,000 machines: the address is given up once, and every machine is
// reported at once. Dropped two ways: SYNs dropped (nothing sent), and
// connections accepted and closed at once (a request written, no answer).
func TestFlyDeadConnectAddressIsGivenUpOnce(t *testing.T) {
	var machines []flyMachine
	for i := range 3000 {
		machines = append(machines, flyMachine{ID: fmt.Sprintf("m%013d", i), State: "started", Region: "iad"})
	}
	api := startFlyAPI(t, machines, nil)
	closer := hostile.Start(t, func(c *hostile.Conn) {})
	for _, tc := range []struct{ name, addr string }{
		{"SYNs dropped", deadAddress(t)},
		{"closed at once", closer.Addr},
	} {
		j := flyJob(api, nil, "https://cdn.example/feed")
		j.Fly.Connect = tc.addr
		j.Timeout = 300 * time.Millisecond
		out := flyRun(t, j)
		rep := out.Purge
		require.Equal(t, 3000, rep.Len())
		assert.Equal(t, 3000, rep.Failed(), tc.name)
		var shared error
		notSent := 0
		for k := range rep.Len() {
			res := rep.Result(k)
			// Written in the first wave, before the address was known dead: its
			// own "no answer", and perhaps one more try while the failures
			// that gave the address up were still arriving.
			require.LessOrEqual(t, res.Attempts, purge.DefaultAttempts, "%s: %s: %v", tc.name, res.Instance, res.Err)
			if res.Attempts > 0 {
				continue
			}
			notSent++
			if shared == nil {
				shared = res.Err
			}
			if res.Err != shared {
				t.Fatalf("%s: machine %d has its own failure (%v): the address was not given up once for all", tc.name, k, res.Err)
			}
		}
		assert.GreaterOrEqual(t, notSent, 3000-purge.DefaultConcurrency, tc.name)
		if !errors.Is(shared, purge.ErrUnreachable) && !errors.Is(shared, purge.ErrNotAnswering) {
			t.Fatalf("%s: %v", tc.name, shared)
		}
		assert.Contains(t, shared.Error(), "not sent", tc.name)
		assert.Contains(t, shared.Error(), tc.addr, tc.name)
	}
}
