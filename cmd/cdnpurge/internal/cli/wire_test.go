package cli

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/internal/hostile"
	"github.com/cdnpurge/cdnpurge/purge/report/reporttest"
)

// SIGINT or SIGTERM mid-run: the report is written, and the hint names
// the signal (not --deadline).
func TestSignalStopsTheRunAndTheHintNamesIt(t *testing.T) {
	bin := binary(t)
	for _, tc := range []struct {
		sig  syscall.Signal
		want string
	}{
		{syscall.SIGINT, "interrupted by SIGINT (Ctrl-C)"},
		{syscall.SIGTERM, "terminated by SIGTERM"},
	} {
		held := make(chan struct{}, 1)
		in := hostile.Start(t, hostile.Each(func(c *hostile.Conn, r *hostile.Request) {
			if r.Target == "/held" {
				held <- struct{}{}
				c.Hold()
				return
			}
			c.Answer(200, "")
		}))
		cmd := exec.Command(bin, "purge", "--url", "https://example.com/ok", "--url", "https://example.com/held", "--instance", in.Addr, "--per-instance", "1", "--pipeline", "1")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Start())
		select {
		case <-held:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			t.Fatal("the held request never arrived")
		}
		require.NoError(t, cmd.Process.Signal(tc.sig))
		code := exitCode(t, cmd.Wait())
		assert.Equal(t, ExitFailed, code, stderr.String())
		assert.Contains(t, stdout.String(), "stopped before an answer came: "+tc.want)
		assert.Contains(t, stdout.String(), "FAILED: purged 1 of 2 (2 URLs x 1 instance)")
		assert.Contains(t, stderr.String(), "hint: the run was "+tc.want)
		assert.NotContains(t, stderr.String(), "--deadline")
	}
}

// A URL file with invalid UTF-8 on line 2, or a 50 MB line: exit 2 naming
// the line; nothing is sent.
func TestURLsFileBadLinesExit2(t *testing.T) {
	in := hostile.Start(t, hostile.Each(func(c *hostile.Conn, r *hostile.Request) { c.Answer(200, "") }))
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		content string
		want    string
	}{
		"utf8": {"https://example.com/1\nhttps://example.com/\xff\xfe\n", "line 2: not valid UTF-8"},
		"long": {"https://example.com/" + strings.Repeat("a", 50<<20) + "\n", "line 1: longer than 64 KiB"},
	} {
		file := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(file, []byte(tc.content), 0o644))
		r := run(t, nil, "", "purge", "--urls-file", file, "--instance", in.Addr)
		assert.Equal(t, ExitUsage, r.code, name)
		assert.Contains(t, r.stderr, tc.want, name)
		assert.Less(t, len(r.stderr), 1000, name)
	}
	assert.Empty(t, in.Requests(), "nothing was sent")
}

// Nothing the CLI writes shows 8 consecutive characters of a secret: not
// the report in any format (an instance echoes the token in its reason
// and body), not stderr (a Machines API repeats parts of the Fly token).
func TestSecretsNeverShownByTheCLI(t *testing.T) {
	token := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjZG5wdXJnZSIsImV4cCI6MTc5OTk5OTk5OX0.c2lnbmF0dXJlLW9mLXRoZS1wdXJnZS10b2tlbg"
	echo := hostile.Start(t, hostile.Each(func(c *hostile.Conn, r *hostile.Request) {
		var h []string
		for k, v := range r.Header {
			h = append(h, k+": "+strings.Join(v, ","))
		}
		sort.Strings(h)
		body := strings.Join(h, "\n")
		c.Write(fmt.Sprintf("HTTP/1.1 403 %s\r\nContent-Length: %d\r\n\r\n%s", strings.Join(h, " "), len(body), body))
	}))
	for _, format := range []string{"text", "json", "markdown"} {
		r := run(t, map[string]string{"PURGE_TOKEN": token}, "", "purge", "--url", "https://example.com/x", "--instance", echo.Addr,
			"--header", "X-Pad: "+strings.Repeat("p", 60), "--format", format)
		assert.Equal(t, ExitFailed, r.code, r.stderr)
		if run, shows := hostile.ShowsRun(r.stdout+r.stderr, token); shows {
			t.Errorf("%s: shows %q of the token:\n%s\n%s", format, run, r.stdout, r.stderr)
		}
		if format == "json" {
			reporttest.Require(t, r.stdout)
		}
	}

	fly := "FlyV1 fm2_lJPECAAAAAAAAMndxRBcsk3Yq8y5bW4bP1gQwrVzdHRwczovL2FwaS5mbHkuaW8v,fm2_lJPEEGUXkxKC9Q3mT0sXh6Yk8kF2Q"
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		auth := r.Header.Get("Authorization")
		_, _ = fmt.Fprintf(w, "internal error handling %s (part %s)", auth[:40], auth[len(auth)-20:])
	}))
	t.Cleanup(api.Close)
	r := run(t, map[string]string{"FLY_API_TOKEN": fly}, "", "purge", "--url", "https://example.com/x", "--fly-app", "my-cdn", "--fly-api", api.URL)
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.stderr, "the Machines API answered 500")
	if run, shows := hostile.ShowsRun(r.stdout+r.stderr, fly); shows {
		t.Errorf("shows %q of the Fly token: %s", run, r.stderr)
	}
}
