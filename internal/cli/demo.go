package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/cdnpurge/cdnpurge/e2e"
	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/varnish"
)

const demoAbout = `Start a local fleet of real Varnish instances (the shipped VCL) behind a DNS
name, fill their caches, purge a URL on every instance and prove it: each one
misses right after the purge and hits again on the next request. Everything
is stopped at the end (or on Ctrl-C with --keep).

As root with iproute2, each instance runs in its own network namespace with
its own IPv6 address on the same port, found by AAAA records, as on Fly.io.
Otherwise the instances share the loopback interface (127.0.x.y, one port,
found by A records). Needs varnishd (Debian/Ubuntu: apt-get install -y varnish).`

const demoExamples = `  cdnpurge demo
  cdnpurge demo --instances 5 --url https://example.com/feed
  sudo cdnpurge demo --keep        # stay up and print commands to try by hand`

func (a *App) demo(ctx context.Context, args []string) int {
	const cmd = "cdnpurge demo"
	fs := a.newFlagSet("demo", demoAbout, demoExamples)
	n := fs.Int("instances", 3, "how many Varnish instances to start (1-50)")
	mode := fs.String("mode", "auto", "fleet layout: `auto|netns|loopback`")
	rawURL := fs.String("url", "https://cdnpurge.example/episodes/1", "the URL to cache, purge and verify")
	keep := fs.Bool("keep", false, "stay up after the demo until Ctrl-C, and print commands to try by hand")
	varnishd := fs.String("varnishd", "varnishd", "the varnishd `program` to run")
	if code, ok := a.parse(fs, args); !ok {
		return code
	}
	if *n < 1 || *n > 50 {
		return a.usageErr(cmd, errors.New("--instances must be 1 to 50"))
	}
	m, err := e2e.ParseMode(*mode)
	if err != nil || m == e2e.ModeExternal {
		return a.usageErr(cmd, fmt.Errorf("--mode %q: use auto, netns or loopback", *mode))
	}
	u, err := purge.ParseURL(*rawURL)
	if err != nil {
		return a.usageErr(cmd, fmt.Errorf("--url: %w", err))
	}
	if _, err := varnish.Lookup(*varnishd); err != nil {
		fmt.Fprintf(a.Stderr, "%s: %v\nThe demo runs real Varnish instances; install varnishd and run it again.\n", cmd, err)
		return ExitUsage
	}
	tok := make([]byte, 6)
	_, _ = rand.Read(tok)
	token := "demo-" + hex.EncodeToString(tok)

	w := a.Stdout
	fmt.Fprintf(w, "Starting %d Varnish instances...\n", *n)
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	f, err := e2e.Start(startCtx, e2e.Options{N: *n, Mode: m, Token: token, Varnishd: *varnishd})
	cancel()
	if err != nil {
		return a.fail(cmd, fmt.Errorf("start fleet: %w", err))
	}
	defer func() {
		if err := f.Close(); err != nil {
			fmt.Fprintf(a.Stderr, "%s: stop fleet: %v\n", cmd, err)
		}
	}()
	a.describeFleet(f)

	code, err := a.demoSteps(ctx, f, u, token)
	if err != nil {
		return a.fail(cmd, err)
	}
	if *keep {
		a.tryByHand(f, u, token)
		<-ctx.Done()
		fmt.Fprintln(w, "\nStopping the fleet.")
	}
	return code
}

func (a *App) describeFleet(f *e2e.Fleet) {
	w := a.Stdout
	switch f.Mode {
	case e2e.ModeNetns:
		fmt.Fprintf(w, "Fleet up: each instance in its own network namespace, its own IPv6 address, port %d.\n", f.Port)
	default:
		fmt.Fprintf(w, "Fleet up: instances on loopback addresses, port %d (run as root for one network namespace each).\n", f.Port)
	}
	fmt.Fprintf(w, "DNS: %s records of %s served at %s; origin at %s.\n", strings.ToUpper(string(f.Record)), f.Name, f.DNS.Addr, f.Origin.Addr)
	for _, m := range f.Members {
		fmt.Fprintf(w, "  %-6s %s\n", m.Name, m.Instance)
	}
}

// demoSteps warms, purges and verifies, printing each step.
func (a *App) demoSteps(ctx context.Context, f *e2e.Fleet, u *url.URL, token string) (int, error) {
	w := a.Stdout
	urls := []*url.URL{u}
	instances, err := purge.Discover(ctx, f.Discovery())
	if err != nil {
		return ExitUsage, err
	}
	o := purge.Options{Timeout: 5 * time.Second}
	step := func(title string) { fmt.Fprintf(w, "\n== %s\n", title) }

	step(fmt.Sprintf("1. Warm the caches: ask each of the %d instances (found by DNS) for %s", len(instances), purge.DisplayURL(u)))
	if _, err := purge.Verify(ctx, o, purge.ExpectAny, instances, urls); err != nil {
		return ExitUsage, err
	}
	warm, err := purge.Verify(ctx, o, purge.ExpectHit, instances, urls)
	if err != nil {
		return ExitUsage, err
	}
	fmt.Fprintln(w, "Cache-Status of every instance on the next request (each has it cached):")
	_ = warm.Write(w, purge.FormatText)

	step("2. The usual way: one PURGE to the public address, which reaches ONE instance")
	o.Token = token
	one, err := purge.Run(ctx, o, instances[:1], urls)
	if err != nil {
		return ExitUsage, err
	}
	_ = one.Write(w, purge.FormatText)
	o.Token = ""
	naive, err := purge.Verify(ctx, o, purge.ExpectMiss, instances, urls)
	if err != nil {
		return ExitUsage, err
	}
	fmt.Fprintln(w, "What each instance serves now (a miss is fresh content; every hit is the old copy):")
	_ = naive.Write(w, purge.FormatText)
	if len(instances) > 1 {
		fmt.Fprintf(w, "-> %d of %d instances still serve the stale copy.\n", len(naive.Unmatched()), len(instances))
	}

	step("3. cdnpurge: PURGE every instance found by DNS, at once, with Host and Purge-Token")
	o.Token = token
	rep, err := purge.Run(ctx, o, instances, urls)
	if err != nil {
		return ExitUsage, err
	}
	_ = rep.Write(w, purge.FormatText)
	o.Token = ""

	step("4. Prove it: every instance must miss now...")
	miss, err := purge.Verify(ctx, o, purge.ExpectMiss, instances, urls)
	if err != nil {
		return ExitUsage, err
	}
	_ = miss.Write(w, purge.FormatText)

	step("5. ...and hit again on the next request (the fresh copy is cached)")
	hit, err := purge.Verify(ctx, o, purge.ExpectHit, instances, urls)
	if err != nil {
		return ExitUsage, err
	}
	_ = hit.Write(w, purge.FormatText)

	fmt.Fprintln(w)
	if warm.OK() && rep.OK() && miss.OK() && hit.OK() {
		fmt.Fprintf(w, "Done: the purge reached all %d instances, proven by their Cache-Status.\n", len(instances))
		return ExitOK, nil
	}
	fmt.Fprintln(w, "FAILED: some instance was not purged; see the tables above.")
	return ExitFailed, nil
}

func (a *App) tryByHand(f *e2e.Fleet, u *url.URL, token string) {
	w := a.Stdout
	in := f.Members[0].Instance
	fmt.Fprintf(w, "\nThe fleet stays up until Ctrl-C. Try by hand (this throwaway fleet's purge token is %s):\n", token)
	fmt.Fprintf(w, "  curl -sI -H 'Host: %s' http://%s%s | grep -i cache-status\n", u.Host, in, purge.RequestTarget(u))
	fmt.Fprintf(w, "  curl -si -X PURGE -H 'Host: %s' http://%s%s        # 401: no token\n", u.Host, in, purge.RequestTarget(u))
	fmt.Fprintf(w, "  cdnpurge verify --url %s %s --expect hit\n", purge.DisplayURL(u), strings.Join(f.DiscoveryArgs(), " "))
	fmt.Fprintf(w, "  PURGE_TOKEN=%s cdnpurge purge --url %s %s --verify=miss,hit\n", token, purge.DisplayURL(u), strings.Join(f.DiscoveryArgs(), " "))
	host, port, _ := net.SplitHostPort(f.DNS.Addr)
	fmt.Fprintf(w, "  dig @%s -p %s %s %s +short\n", host, port, f.Name, strings.ToUpper(string(f.Record)))
	if f.Mode == e2e.ModeNetns {
		fmt.Fprintf(w, "  ip netns exec %s varnishstat -1 -n <dir>   # each instance has its namespace: ip netns list\n", f.Members[0].Netns)
	}
}
