package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
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
  sudo cdnpurge demo --keep        # stay up and print commands to try by hand
  cdnpurge demo --fly              # the same in Fly.io edge mode, through a local stand-in
  cdnpurge demo --clean            # stop what a killed demo left behind`

func (a *App) demo(ctx context.Context, args []string) error {
	f := newFlags("demo", demoAbout, demoExamples)
	n := f.Int("instances", 3, "how many Varnish instances to start (1-50)")
	mode := f.String("mode", "auto", "fleet layout: `auto|netns|loopback`")
	rawURL := f.String("url", "https://cdnpurge.example/episodes/1", "the `URL` to cache, purge and verify")
	keep := f.Bool("keep", false, "stay up after the demo until Ctrl-C, and print commands to try by hand")
	varnishd := f.String("varnishd", "varnishd", "the varnishd `program` to run")
	fly := f.Bool("fly", false, "run the steps in Fly.io edge mode, through a local stand-in for Fly.io's Machines API\nand edge proxy (machines listed by the API, each reached with fly-force-instance-id)")
	clean := f.Bool("clean", false, "only stop the varnishd processes and remove the namespaces and directories that\nkilled demos left behind, and say what was removed")
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
		return usagef("--mode %q: use auto, netns or loopback", *mode)
	}
	u, err := purge.ParseURL(*rawURL)
	if err != nil {
		return &usageError{err}
	}
	if _, err := varnish.Lookup(*varnishd); err != nil {
		return fmt.Errorf("%w\nThe demo runs real Varnish instances; install varnishd and run it again", err)
	}
	tok := make([]byte, 6)
	_, _ = rand.Read(tok)
	token := "demo-" + hex.EncodeToString(tok)

	w := a.Stdout
	fmt.Fprintf(w, "Starting %d Varnish instances...\n", *n)
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	fl, err := fleet.Start(startCtx, fleet.Options{N: *n, Mode: m, Token: token, Varnishd: *varnishd})
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
	if err := demoSteps(ctx, w, target, u, token); err != nil {
		return err
	}
	if *keep {
		if edge != nil {
			flyTryByHand(w, edge, u, token)
		} else {
			tryByHand(w, fl, u, token)
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

	fmt.Fprintln(w)
	if !ok {
		return &failedError{err: fmt.Errorf("some instance was not purged; see the tables above")}
	}
	fmt.Fprintf(w, "Done: the purge reached all %d instances, proven by each one's own cache evidence.\n", n)
	return nil
}

func tryByHand(w io.Writer, f *fleet.Fleet, u purge.URL, token string) {
	in := f.Members[0].Instance
	args := strings.Join(f.Args(), " ")
	fmt.Fprintf(w, "\nThe fleet stays up until Ctrl-C. Try by hand (this throwaway fleet's purge token is %s):\n", token)
	fmt.Fprintf(w, "  curl -sI -H 'Host: %s' http://%s%s | grep -i cache-status\n", u.Host, in, u.Target)
	fmt.Fprintf(w, "  curl -si -X PURGE -H 'Host: %s' http://%s%s        # 401: no token\n", u.Host, in, u.Target)
	fmt.Fprintf(w, "  cdnpurge verify --url %s %s --expect hit\n", u, args)
	fmt.Fprintf(w, "  PURGE_TOKEN=%s cdnpurge purge --url %s %s --verify=miss,hit\n", token, u, args)
	host, port, _ := net.SplitHostPort(f.Resolver)
	fmt.Fprintf(w, "  dig @%s -p %s %s %s +short\n", host, port, f.Name, strings.ToUpper(string(f.Record)))
	if f.Mode == fleet.ModeNetns {
		fmt.Fprintf(w, "  ip netns exec %s varnishstat -1 -n <dir>   # each instance has its namespace: ip netns list\n", f.Members[0].Netns)
	}
}

func describeFly(w io.Writer, e *fleet.FlyEdge) {
	fmt.Fprintf(w, "\nA local stand-in for Fly.io (nothing here reaches Fly.io): the Machines API at %s\n", e.API)
	fmt.Fprintf(w, "lists app %s's machines, and the edge at %s routes each request to the machine\n", e.App, e.Addr)
	fmt.Fprintln(w, "named in fly-force-instance-id, as Fly's proxy does (without it: to the nearest machine).")
	for _, m := range e.Machines() {
		fmt.Fprintf(w, "  %s/%s  %-6s %s -> %s\n", m.Region, m.ID, m.Name, m.State, m.Member.Instance)
	}
}

func flyTryByHand(w io.Writer, e *fleet.FlyEdge, u purge.URL, token string) {
	m := e.Machine(0)
	args := strings.Join(e.Args(), " ")
	fmt.Fprintf(w, "\nThe fleet stays up until Ctrl-C. Try by hand (this throwaway fleet's purge token is %s,\nthe stand-in's Fly.io token %s):\n", token, e.Token)
	fmt.Fprintf(w, "  curl -s -H 'Authorization: Bearer %s' %s/v1/apps/%s/machines\n", e.Token, e.API, e.App)
	fmt.Fprintf(w, "  curl -sI -H 'Host: %s' -H 'fly-force-instance-id: %s' http://%s%s | grep -i cache-status\n", u.Host, m.ID, e.Addr, u.Target)
	fmt.Fprintf(w, "  FLY_API_TOKEN=%s cdnpurge verify --url %s %s --expect hit\n", e.Token, u, args)
	fmt.Fprintf(w, "  FLY_API_TOKEN=%s PURGE_TOKEN=%s cdnpurge purge --url %s %s --verify=miss,hit\n", e.Token, token, u, args)
}
