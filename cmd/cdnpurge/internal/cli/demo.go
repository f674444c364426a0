package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/cdnpurge/cdnpurge/fleet"
	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/report"
	"github.com/cdnpurge/cdnpurge/varnish"
)

const demoAbout = `Start a local fleet of real Varnish instances (the shipped VCL) behind a DNS
name, fill their caches, purge a URL on every instance and prove it: each one
misses right after the purge and hits again on the next request. Everything
is stopped at the end (or on Ctrl-C with --keep).

Where it can create network namespaces (root with iproute2, not in a
container), each instance runs in its own namespace with its own IPv6 address
on the same port, found by AAAA records, as on Fly.io. Otherwise the instances
share the loopback interface (127.0.x.y, one port, found by A records), and
the demo says why. Needs varnishd (Debian/Ubuntu: apt-get install -y varnish).

With --fly, the same steps run in Fly.io edge mode against a local stand-in
for Fly.io: a Machines API that lists one machine per instance (region and
machine id) and an edge proxy that routes each request to the machine named
in fly-force-instance-id, as Fly's proxy does. Nothing reaches Fly.io.

A demo killed without the chance to clean up (kill -9) leaves varnishd
processes and namespaces behind: the next demo removes them, as does
'cdnpurge demo --clean'.`

const demoExamples = `  cdnpurge demo
  cdnpurge demo --instances 5 --url https://example.com/feed
  cdnpurge demo --xkey             # also a tag purge (vmod xkey)
  sudo cdnpurge demo --keep        # stay up and print commands to try by hand
  cdnpurge demo --fly              # Fly.io edge mode, through a local stand-in
  cdnpurge demo --clean            # stop what a killed demo left behind`

// demoTag is the tag the --xkey step purges.
const demoTag = "episode-1"

func (a *App) demo(ctx context.Context, args []string) error {
	f := newFlags("demo", demoAbout, demoExamples)
	n := f.Int("instances", 3, "how many Varnish instances to start (1-50)")
	mode := f.String("mode", "auto", "fleet layout: `auto|netns|loopback`")
	rawURL := f.String("url", "https://cdnpurge.example/episodes/1", "the `URL` to cache, purge and verify")
	keep := f.Bool("keep", false, "stay up after the demo until Ctrl-C, and print commands to try by hand")
	varnishd := f.String("varnishd", "varnishd", "the varnishd `program` to run")
	xkey := f.Bool("xkey", false, "also purge by tag: the instances run the VCL with vmod xkey (Debian's varnish-modules), and one PURGE with 'xkey-purge: "+demoTag+"' drops every page so tagged")
	fly := f.Bool("fly", false, "run the steps in Fly.io edge mode, through a local stand-in for Fly.io's Machines API and edge proxy (machines listed by the API, each reached with fly-force-instance-id)")
	clean := f.Bool("clean", false, "only stop the varnishd processes and remove the namespaces and directories that killed demos left behind, and say what was removed")
	if err := f.parse(a, args); err != nil {
		return err
	}
	if *clean {
		removed, err := fleet.Sweep(ctx)
		for _, r := range removed {
			fmt.Fprintln(a.Stdout, "removed", r)
		}
		if len(removed) == 0 && err == nil {
			fmt.Fprintln(a.Stdout, "nothing to clean: no fleet of a dead process is left")
		}
		return err
	}
	if *n < 1 || *n > 50 {
		return usagef("--instances %d: give 1 to 50", *n)
	}
	m, err := fleet.ParseMode(*mode)
	if err != nil || m == fleet.ModeExternal {
		return usagef("--mode %s: use auto, netns or loopback", *mode)
	}
	u, err := purge.ParseURL(*rawURL)
	if err != nil {
		return usagef("--url: %v", err)
	}
	if err := checkVarnishd(*varnishd, f.set("varnishd"), *xkey); err != nil {
		return err
	}
	tok := make([]byte, 6)
	_, _ = rand.Read(tok)
	token := "demo-" + hex.EncodeToString(tok)

	w := a.Stdout
	fmt.Fprintf(w, "Starting %d Varnish instances...\n", *n)
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	fl, err := fleet.Start(startCtx, fleet.Options{N: *n, Mode: m, Token: token, Varnishd: *varnishd, Xkey: *xkey})
	cancel()
	if err != nil {
		return fmt.Errorf("start the fleet: %w", err)
	}
	defer func() {
		if err := fl.Close(); err != nil {
			fmt.Fprintf(a.Stderr, "cdnpurge demo: stop the fleet: %v\n", err)
		}
	}()
	describeFleet(w, fl)
	target := demoTarget{job: fl.Job, found: "found by DNS", n: len(fl.Members),
		one: purge.Job{Instances: []string{fl.Members[0].Instance.String()}}}
	var edge *fleet.FlyEdge
	if *fly {
		if edge, err = fl.StartFly(fleet.FlyOptions{App: "cdnpurge-demo", Token: "demo-fly-" + hex.EncodeToString(tok)}); err != nil {
			return fmt.Errorf("start the Fly.io stand-in: %w", err)
		}
		defer func() {
			if err := edge.Close(); err != nil {
				fmt.Fprintf(a.Stderr, "cdnpurge demo: stop the Fly.io stand-in: %v\n", err)
			}
		}()
		describeFly(w, edge)
		// Without fly-force-instance-id the edge sends a request to the
		// nearest machine: the public address.
		target = demoTarget{job: edge.Job, found: "listed by the Machines API", n: len(fl.Members),
			one: purge.Job{Instances: []string{edge.Addr}}}
	}
	target.xkey = *xkey
	if err := demoSteps(ctx, w, target, u, token); err != nil {
		return err
	}
	if *keep {
		if edge != nil {
			flyTryByHand(w, edge, u, token, *xkey)
		} else {
			tryByHand(w, fl, u, token, *xkey)
		}
		<-ctx.Done()
		fmt.Fprintln(w, "\nStopping the fleet.")
	}
	return nil
}

func describeFleet(w io.Writer, f *fleet.Fleet) {
	switch f.Mode {
	case fleet.ModeNetns:
		fmt.Fprintf(w, "Fleet up: each instance in its own network namespace, its own IPv6 address, port %d.\n", f.Port)
	default:
		fmt.Fprintf(w, "Fleet up: instances on loopback addresses, port %d.\n", f.Port)
		if f.NoNetns != nil {
			fmt.Fprintf(w, "(Not one network namespace each: %v.)\n", f.NoNetns)
		}
	}
	fmt.Fprintf(w, "DNS: %s records of %s served at %s; origin at %s.\n", strings.ToUpper(string(f.Record)), f.Name, f.Resolver, f.Origin.Addr)
	for _, m := range f.Members {
		fmt.Fprintf(w, "  %-6s %s\n", m.Name, m.Instance)
	}
}

// demoTarget is what the demo purges: the job that finds every instance,
// the one a request to the public address reaches, and how the instances
// are found, in words.
type demoTarget struct {
	job   func() purge.Job
	one   purge.Job
	found string
	n     int
	xkey  bool // the instances have vmod xkey: show a tag purge too
}

// checkVarnishd says, before anything starts, why the demo cannot run
// varnishd (the --varnishd given, or the one on PATH), or vmod xkey with
// --xkey.
func checkVarnishd(path string, given, xkey bool) error {
	if _, err := varnish.Lookup(path); err != nil {
		switch _, serr := os.Stat(path); {
		case given && serr == nil:
			return usagef("--varnishd %s: not an executable program", path).hint("give the path of varnishd, e.g. /usr/sbin/varnishd")
		case given && strings.Contains(path, "/"):
			return usagef("--varnishd %s: not found there", path).hint("give the path of varnishd (Debian: /usr/sbin/varnishd), or leave --varnishd out to use the one on PATH")
		case given:
			return usagef("--varnishd %s: not found on PATH (nor in /usr/sbin)", path).hint("give its path, or install Varnish (Debian/Ubuntu: sudo apt-get install -y varnish)")
		}
		return usagef("%v", err).hint("the demo runs real Varnish instances: install varnishd and run it again")
	}
	if !xkey {
		return nil
	}
	ok, err := varnish.HasVmod(path, "xkey")
	switch {
	case err != nil:
		return fmt.Errorf("--xkey: %w", err)
	case !ok:
		return usagef("--xkey: this varnishd cannot load vmod xkey").hint("install Debian's varnish-modules (sudo apt-get install -y varnish-modules), or leave --xkey out")
	}
	return nil
}

// demoSteps warms, purges and verifies, printing each step; it fails when
// the purge did not reach every instance.
func demoSteps(ctx context.Context, w io.Writer, f demoTarget, u purge.URL, token string) error {
	step := func(title string) { fmt.Fprintf(w, "\n== %s\n", title) }
	show := func(out *purge.Outcome) bool {
		_ = report.Write(w, report.Text, out, report.Options{})
		return out.OK()
	}
	check := func(e purge.Expect) (*purge.Outcome, error) {
		j := f.job()
		j.URLs, j.VerifyOnly, j.Verify = []string{u.String()}, true, []purge.Expect{e}
		return j.Run(ctx)
	}
	n := f.n

	step(fmt.Sprintf("1. Warm the caches: ask each of the %d instances (%s) for %s", n, f.found, u))
	if _, err := check(purge.ExpectAny); err != nil {
		return err
	}
	warm, err := check(purge.ExpectHit)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "What every instance says on the next request (each has it cached):")
	ok := show(warm)

	step("2. The usual way: one PURGE to the public address, which reaches ONE instance")
	one := f.one
	one.URLs, one.Token = []string{u.String()}, token
	out, err := one.Run(ctx)
	if err != nil {
		return err
	}
	show(out)
	naive, err := check(purge.ExpectMiss)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "What each instance serves now (a miss is fresh content; every hit is the old copy):")
	show(naive)
	if n > 1 {
		fmt.Fprintf(w, "-> %d of %d instances still serve the stale copy.\n", naive.Verify[0].Failed(), n)
	}

	step(fmt.Sprintf("3. cdnpurge: PURGE every instance %s, at once, with Host and Purge-Token,\n   then prove it: every instance must miss now, and hit again on the next request", f.found))
	j := f.job()
	j.URLs, j.Token, j.Verify = []string{u.String()}, token, []purge.Expect{purge.ExpectMiss, purge.ExpectHit}
	out, err = j.Run(ctx)
	if err != nil {
		return err
	}
	ok = show(out) && ok

	if f.xkey {
		tagged := taggedURLs(u)
		step(fmt.Sprintf("4. Tags (vmod xkey): the origin tags pages (here, as their ?xkey= asks); one PURGE\n   with 'xkey-purge: %s' drops every page so tagged, on every instance", demoTag))
		warm := func(e purge.Expect) (*purge.Outcome, error) {
			j := f.job()
			j.URLs, j.VerifyOnly, j.Verify = tagged, true, []purge.Expect{e}
			return j.Run(ctx)
		}
		if _, err := warm(purge.ExpectAny); err != nil {
			return err
		}
		cached, err := warm(purge.ExpectHit)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "Two pages tagged %s, cached on every instance:\n", demoTag)
		ok = show(cached) && ok
		fmt.Fprintf(w, "\nPURGEKEYS to every instance (its URL only carries the Host), then the proof: every\ntagged page misses now, and hits again on the next request:\n")
		j := f.job()
		j.URLs, j.Tags, j.Token = []string{u.Scheme + "://" + u.Host + "/"}, []string{demoTag}, token
		j.VerifyURLs, j.Verify = tagged, []purge.Expect{purge.ExpectMiss, purge.ExpectHit}
		out, err = j.Run(ctx)
		if err != nil {
			return err
		}
		ok = show(out) && ok
	}

	fmt.Fprintln(w)
	if !ok {
		return &failedError{err: fmt.Errorf("some instance was not purged; see the tables above")}
	}
	what := "the purge"
	if f.xkey {
		what = "the purges (by URL and by tag)"
	}
	fmt.Fprintf(w, "Done: %s reached all %d instances, proven by each one's own cache evidence.\n", what, n)
	return nil
}

// taggedURLs are the pages the --xkey step purges by tag: the origin tags
// each answer with what its ?xkey= query names.
func taggedURLs(u purge.URL) []string {
	base := u.Scheme + "://" + u.Host
	return []string{base + "/episodes/" + demoTag + "?xkey=" + demoTag, base + "/feed?xkey=" + demoTag}
}

// tagByHand prints the tag purge to try by hand.
func tagByHand(w io.Writer, env string, u purge.URL, token, args string) {
	verify := ""
	for _, t := range taggedURLs(u) {
		verify += " --verify-url '" + t + "'"
	}
	fmt.Fprintf(w, "  %sPURGE_TOKEN=%s cdnpurge purge --url %s://%s/ --tag %s %s%s --verify=miss,hit\n", env, token, u.Scheme, u.Host, demoTag, args, verify)
}

// tryByHand prints commands that work on the fleet as it is: a test runs
// every one of them.
func tryByHand(w io.Writer, f *fleet.Fleet, u purge.URL, token string, xkey bool) {
	m := f.Members[0]
	in := m.Instance
	args := strings.Join(f.Args(), " ")
	fmt.Fprintf(w, "\nThe fleet stays up until Ctrl-C. Try by hand (this throwaway fleet's purge token is %s):\n", token)
	fmt.Fprintf(w, "  curl -sI -H 'Host: %s' http://%s%s | grep -i cache-status\n", u.Host, in, u.Target)
	fmt.Fprintf(w, "  curl -si -X PURGE -H 'Host: %s' http://%s%s | head -1    # 401: no token\n", u.Host, in, u.Target)
	fmt.Fprintf(w, "  cdnpurge verify --url %s %s --expect hit\n", u, args)
	fmt.Fprintf(w, "  PURGE_TOKEN=%s cdnpurge purge --url %s %s --verify=miss,hit\n", token, u, args)
	if xkey {
		tagByHand(w, "", u, token, args)
	}
	host, port, _ := net.SplitHostPort(f.Resolver)
	fmt.Fprintf(w, "  dig @%s -p %s %s %s +short\n", host, port, f.Name, strings.ToUpper(string(f.Record)))
	// varnishstat reads the instance's working directory; in netns mode
	// it runs in the instance's namespace, as every tool there would.
	prefix := ""
	if m.Netns != "" {
		prefix = "ip netns exec " + m.Netns + " "
	}
	fmt.Fprintf(w, "  %svarnishstat -1 -n %s -f MAIN.cache_hit -f MAIN.cache_miss -f MAIN.n_purges -f MAIN.n_obj_purged   # %s's counters\n", prefix, m.WorkDir(), m.Name)
}

func describeFly(w io.Writer, e *fleet.FlyEdge) {
	fmt.Fprintf(w, "\nA local stand-in for Fly.io (nothing here reaches Fly.io): the Machines API at %s\n", e.API)
	fmt.Fprintf(w, "lists app %s's machines, and the edge at %s routes each request to the machine\n", e.App, e.Addr)
	fmt.Fprintln(w, "named in fly-force-instance-id, as Fly's proxy does (without it: to the nearest machine).")
	for _, m := range e.Machines() {
		fmt.Fprintf(w, "  %s/%s  %-6s %s -> %s\n", m.Region, m.ID, m.Name, m.State, m.Member.Instance)
	}
}

func flyTryByHand(w io.Writer, e *fleet.FlyEdge, u purge.URL, token string, xkey bool) {
	m := e.Machine(0)
	args := strings.Join(e.Args(), " ")
	fmt.Fprintf(w, "\nThe fleet stays up until Ctrl-C. Try by hand (this throwaway fleet's purge token is %s,\nthe stand-in's Fly.io token %s):\n", token, e.Token)
	fmt.Fprintf(w, "  curl -s -H 'Authorization: Bearer %s' %s/v1/apps/%s/machines\n", e.Token, e.API, e.App)
	fmt.Fprintf(w, "  curl -sI -H 'Host: %s' -H 'fly-force-instance-id: %s' http://%s%s | grep -i cache-status\n", u.Host, m.ID, e.Addr, u.Target)
	fmt.Fprintf(w, "  FLY_API_TOKEN=%s cdnpurge verify --url %s %s --expect hit\n", e.Token, u, args)
	fmt.Fprintf(w, "  FLY_API_TOKEN=%s PURGE_TOKEN=%s cdnpurge purge --url %s %s --verify=miss,hit\n", e.Token, token, u, args)
	if xkey {
		tagByHand(w, "FLY_API_TOKEN="+e.Token+" ", u, token, args)
	}
}
