package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/fleet"
	"github.com/cdnpurge/cdnpurge/fleet/fleettest"
	"github.com/cdnpurge/cdnpurge/internal/syncbuf"
	"github.com/cdnpurge/cdnpurge/varnish"
)

func TestDemo(t *testing.T) {
	fleettest.NeedVarnishd(t)
	r := run(t, nil, "", "demo", "--instances", "2")
	require.Equal(t, ExitOK, r.code, r.stdout+r.stderr)
	assert.Contains(t, r.stdout, "-> 1 of 2 instances still serve the stale copy.")
	assert.Contains(t, r.stdout, "purged 1 URL on 2/2 instances")
	assert.Contains(t, r.stdout, "verified 1 URL on 2/2 instances: expected miss")
	assert.Contains(t, r.stdout, "verified 1 URL on 2/2 instances: expected hit")
	assert.Contains(t, r.stdout, "Done: the purge reached all 2 instances")
	assert.Contains(t, r.stdout, "cdn-1; fwd=miss; stored")
}

func TestDemoKeepStaysUpUntilCancelled(t *testing.T) {
	fleettest.NeedVarnishd(t)
	var out, errb syncbuf.Buffer
	a := &App{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Version: "test", Getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int)
	go func() { done <- a.Run(ctx, []string{"demo", "--instances", "1", "--mode", "loopback", "--keep"}) }()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), "stays up until Ctrl-C") {
		select {
		case code := <-done:
			t.Fatalf("demo ended (%d) before staying up: %s %s", code, out.String(), errb.String())
		default:
		}
		require.True(t, time.Now().Before(deadline), "demo did not come up: %s", out.String())
		time.Sleep(10 * time.Millisecond)
	}
	assert.Contains(t, out.String(), "curl -sI -H 'Host: cdnpurge.example'")
	assert.Contains(t, out.String(), "cdnpurge verify --url https://cdnpurge.example/episodes/1 --dns-name fleet.cdnpurge.test")
	cancel()
	assert.Equal(t, ExitOK, <-done)
	assert.Contains(t, out.String(), "Stopping the fleet.")
}

func TestDemoWithoutVarnishd(t *testing.T) {
	// A path: it is not there.
	r := run(t, nil, "", "demo", "--varnishd", "/nonexistent/varnishd")
	assert.Equal(t, ExitUsage, r.code)
	assert.Equal(t, "cdnpurge demo: --varnishd /nonexistent/varnishd: not found there\n"+
		"hint: give the path of varnishd (Debian: /usr/sbin/varnishd), or leave --varnishd out to use the one on PATH\n", r.stderr)
	assert.Empty(t, r.stdout)
	// A file that is no program.
	file := filepath.Join(t.TempDir(), "varnishd")
	require.NoError(t, os.WriteFile(file, []byte("not a program"), 0o644))
	r = run(t, nil, "", "demo", "--varnishd", file)
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.stderr, "--varnishd "+file+": not an executable program\n")
	// A name: not on PATH; installing Varnish is one way out.
	r = run(t, nil, "", "demo", "--varnishd", "varnishd-nonexistent")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.stderr, "--varnishd varnishd-nonexistent: not found on PATH (nor in /usr/sbin)\n")
	assert.Contains(t, r.stderr, "apt-get install -y varnish")
	assert.Empty(t, r.stdout)
}

func TestDemoUsage(t *testing.T) {
	r := run(t, nil, "", "demo", "--instances", "0")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.stderr, "--instances 0: give 1 to 50")
	r = run(t, nil, "", "demo", "--mode", "external")
	assert.Equal(t, ExitUsage, r.code)
	r = run(t, nil, "", "demo", "--help")
	assert.Equal(t, ExitOK, r.code)
	assert.Contains(t, r.stdout, "--keep")
}

// As root without the capabilities a container's root lacks (capsh drops
// what a Dagger exec lacks), the demo runs on loopback addresses and says
// why, instead of failing on the first 'ip link add'.
func TestDemoAsRootWithoutNetnsCapabilities(t *testing.T) {
	fleettest.NeedVarnishd(t)
	capsh, err := exec.LookPath("capsh")
	if err != nil || os.Geteuid() != 0 {
		if fleettest.Required() && os.Geteuid() == 0 {
			t.Fatal("CDNPURGE_E2E=require: capsh is not installed (apt-get install -y libcap2-bin)")
		}
		t.Skip("needs root and capsh (libcap2-bin)")
	}
	cmd := exec.Command(capsh, "--drop=cap_net_admin,cap_sys_admin", "--", "-c", `exec "$0" demo --instances 2`, binary(t))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	s := string(out)
	assert.Contains(t, s, "Fleet up: instances on loopback addresses")
	assert.Contains(t, s, "(Not one network namespace each: cannot create network interfaces here (root in a container, or another sandbox, without CAP_NET_ADMIN)")
	assert.NotContains(t, s, "run as root")
	assert.Contains(t, s, "Done: the purge reached all 2 instances")
}

// demo --xkey shows a tag purge: two tagged pages cached everywhere, one
// PURGEKEYS to every instance, every page missing and then hitting.
func TestDemoXkey(t *testing.T) {
	fleettest.NeedXkey(t)
	r := run(t, nil, "", "demo", "--xkey", "--instances", "2", "--mode", "loopback")
	require.Equal(t, ExitOK, r.code, r.stdout+r.stderr)
	s := r.stdout
	assert.Contains(t, s, "== 4. Tags (vmod xkey)")
	_, step4, ok := strings.Cut(s, "== 4. Tags")
	require.True(t, ok)
	assert.Contains(t, step4, "verified 2 URLs on 2/2 instances: expected hit")
	assert.Contains(t, step4, "sent PURGEKEYS for 1 URL on 2/2 instances")
	assert.Contains(t, step4, "verified 2 URLs on 2/2 instances: expected miss")
	assert.Regexp(t, `feed\?xkey=episode-1\s+\S+\s+200\s+miss .* cdn-1; fwd=miss; stored`, step4)
	assert.Contains(t, s, "Done: the purges (by URL and by tag) reached all 2 instances")
}

// The commands 'demo --keep' prints work as printed, in a shell: each one
// is run and must succeed (with --xkey, the tag purge too; in netns mode,
// varnishstat inside the instance's namespace).
func TestDemoKeepPrintsCommandsThatWork(t *testing.T) {
	fleettest.NeedVarnishd(t)
	bin := binary(t)
	modes := []string{"loopback"}
	if fleet.NetnsAvailable(t.Context()) == nil {
		modes = append(modes, "netns")
	}
	xkey, _ := varnish.HasVmod("", "xkey")
	for _, mode := range modes {
		args := []string{"demo", "--instances", "2", "--mode", mode, "--keep"}
		if xkey {
			args = append(args, "--xkey")
		}
		var out, errb syncbuf.Buffer
		a := &App{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Version: "test", Getenv: func(string) string { return "" }}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int)
		go func() { done <- a.Run(ctx, args) }()
		deadline := time.Now().Add(2 * time.Minute)
		for !strings.Contains(out.String(), "stays up until Ctrl-C") {
			select {
			case code := <-done:
				cancel()
				t.Fatalf("%s: demo ended (%d) before staying up: %s %s", mode, code, out.String(), errb.String())
			default:
			}
			require.True(t, time.Now().Before(deadline), "demo did not come up: %s", out.String())
			time.Sleep(10 * time.Millisecond)
		}
		_, tryIt, _ := strings.Cut(out.String(), "Try by hand")
		var lines []string
		for _, l := range strings.Split(tryIt, "\n")[1:] {
			if strings.HasPrefix(l, "  ") {
				lines = append(lines, strings.TrimSpace(l))
			}
		}
		want := map[string]string{ // what each command prints, by its first word
			"curl -sI":    "cache-status: cdn-1",
			"curl -si":    "401",
			"cdnpurge":    "verified 1 URL on 2/2 instances: expected hit",
			"PURGE_TOKEN": "on 2/2 instances",
			"varnishstat": "MAIN.cache_hit",
			"ip":          "MAIN.n_purges",
		}
		ran := map[string]bool{}
		for _, line := range lines {
			assert.NotRegexp(t, `<[a-z]+>`, line, "%s: no placeholder left", mode)
			cmd := exec.Command("bash", "-o", "pipefail", "-c", line)
			cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
			got, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s: %s\n%s", mode, line, got)
			key, _, _ := strings.Cut(strings.Fields(line)[0], "=")
			if key == "curl" {
				key = strings.Join(strings.Fields(line)[:2], " ")
			}
			if key == "dig" {
				assert.Regexp(t, `(?m)^[0-9a-f.:]+$`, string(got), "%s: dig lists the instances", mode)
				ran[key] = true
			}
			if w, ok := want[key]; ok {
				assert.Contains(t, strings.ToLower(string(got)), strings.ToLower(w), "%s: %s", mode, line)
				ran[key] = true
			}
			if strings.Contains(line, "--tag") {
				assert.Contains(t, string(got), "sent PURGEKEYS for 1 URL on 2/2 instances", line)
				assert.Contains(t, string(got), "verified 2 URLs on 2/2 instances: expected miss", line)
				ran["tag"] = true
			}
		}
		assert.True(t, ran["curl -sI"] && ran["curl -si"] && ran["cdnpurge"] && ran["PURGE_TOKEN"] && ran["dig"], "%s: %v", mode, ran)
		if mode == "netns" {
			assert.True(t, ran["ip"], "varnishstat in the namespace: %v", lines)
		} else {
			assert.True(t, ran["varnishstat"], "varnishstat: %v", lines)
		}
		assert.Equal(t, xkey, ran["tag"], "the tag purge is printed with --xkey: %v", lines)
		cancel()
		assert.Equal(t, ExitOK, <-done)
	}
}
