// Package cli is the cdnpurge command line: flags, help texts, exit codes.
// Each command maps its flags to one purge.Job and runs it; errors are
// returned to one place (App.Run) that prints them and picks the exit code.
// cmd/cdnpurge only calls Main.
package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/cdnpurge/cdnpurge/internal/secret"
	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/cachestatus"
)

// Exit codes.
const (
	ExitOK     = 0 // every instance did what was asked
	ExitFailed = 1 // some instance did not (the report says which)
	ExitUsage  = 2 // bad flags, configuration or discovery: nothing was sent
)

// App holds what a run needs from its process, so tests can run it in-process.
type App struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	Version        string

	// secrets are the tokens read for this run: nothing written on stderr
	// shows one (the reports check their own text).
	secrets secret.Set
	// inspect, when set (by tests), sees each command's flag set before
	// it parses.
	inspect func(*flag.FlagSet)
	// probe, when set (by flagsOf), receives a command's flags instead of
	// the command parsing them: the command returns errProbe at once.
	probe func(*flags)
	// parsed is the running command's flags, once parsed: exit words
	// remedies with the flags that were given.
	parsed *flags
}

// Interrupted is why a run stopped on a signal: the cause of the context
// SignalContext cancels, which the library's stop errors carry, so that
// the hint names the signal.
type Interrupted struct{ Signal os.Signal }

func (e *Interrupted) Error() string {
	switch e.Signal {
	case os.Interrupt:
		return "interrupted by SIGINT (Ctrl-C)"
	case syscall.SIGTERM:
		return "terminated by SIGTERM"
	}
	return "stopped by the signal " + e.Signal.String()
}

// SignalContext returns a context cancelled, with an *Interrupted cause,
// on SIGINT or SIGTERM. After the first signal the next one acts as it
// would without cdnpurge (Ctrl-C twice quits at once).
func SignalContext(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			signal.Stop(ch)
			cancel(&Interrupted{Signal: sig})
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(nil)
	}
}

// Main runs the CLI with the process's own streams and environment.
func Main(ctx context.Context, args []string) int {
	// A large fleet wants a connection per instance: lift the open-file
	// limit to what the system allows (the library never does this itself).
	_, _ = purge.RaiseOpenFileLimit()
	a := &App{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Version: purge.Version()}
	return a.Run(ctx, args)
}

// command is one subcommand.
type command struct {
	name, summary string
	exec          func(a *App, ctx context.Context, args []string) error
}

func commands() []command {
	return []command{
		{"purge", "send PURGE for URLs (or tags) to every instance and report each", (*App).purge},
		{"ban", "send a BAN (a regular expression over paths) to every instance", (*App).ban},
		{"verify", "ask every instance for URLs and check what its cache says", (*App).verify},
		{"serve", "run an HTTP broadcaster that sends each purge to every instance", (*App).serve},
		{"demo", "start a local Varnish fleet, purge a URL on it and show the proof", (*App).demo},
		{"completion", "print a shell completion script: bash, zsh or fish", (*App).completion},
		{"version", "print the version", (*App).version},
		{"help", "show a command's help: cdnpurge help purge", (*App).help},
	}
}

// flagsOf returns the flags command c registers, without running it: c
// returns at its parse (see probe). Nil for a command without flags.
func (a *App) flagsOf(c command) *flags {
	var got *flags
	p := &App{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard, Getenv: a.Getenv, Version: a.Version,
		probe: func(f *flags) { got = f }}
	_ = c.exec(p, context.Background(), nil)
	return got
}

const mainUsage = `cdnpurge purges a URL from EVERY instance of a self-hosted cache fleet
(Varnish behind one anycast address) and proves it worked.

A PURGE sent to the public host reaches one instance; the others keep serving
stale content. cdnpurge finds every instance (DNS AAAA, A or SRV records, a
static list, or a Fly.io app's machines), sends the request to each with the
URL's Host header, all at once, reports per instance, and verifies with each
cache's own evidence that none still serves the old copy.

Usage:
  cdnpurge <command> [flags]

Commands:
%s
Flags:
  -h, --help     this help; 'cdnpurge <command> --help' shows a command's flags
  --version      print the version (as 'cdnpurge version')
  -v, --verbose  on every command that reports, show every result; before a
                 command it is that command's (cdnpurge -v purge ...); alone,
                 'cdnpurge -v' prints the version, as it always has

Examples:
%s

`

const mainExamples = `  cdnpurge demo   # a local Varnish fleet: purged, then proven
  PURGE_TOKEN=... cdnpurge purge --url https://example.com/podcast/1 --dns-name my-cdn.internal --port 9000 --verify
  FLY_API_TOKEN=... cdnpurge purge --url https://example.com/feed --fly-app my-cdn --verify
  cdnpurge verify --url https://example.com/feed --dns-name my-cdn.internal --port 9000 --expect hit
  source <(cdnpurge completion bash)   # tab completion in this shell`

const exitCodes = "Exit codes: 0 every instance did what was asked; 1 some instance did not (the report says which); 2 usage, configuration or discovery error (nothing was sent).\n"

// shortUsage is what plain 'cdnpurge' prints: a few lines, not the help.
const shortUsage = `cdnpurge purges a URL from every instance of a cache fleet and proves it.

Usage:  cdnpurge <command> [flags]
        commands: %s
Try:    cdnpurge demo            a local Varnish fleet, purged and proven
        cdnpurge purge --help    a command's flags
Run 'cdnpurge --help' for more.
`

func (a *App) usage(w io.Writer) {
	var b strings.Builder
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, mainUsage, b.String(), wrapExamples(mainExamples, helpWidth))
	fmt.Fprint(w, wrap(exitCodes, helpWidth, ""))
}

func (a *App) shortUsage(w io.Writer) {
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	fmt.Fprintf(w, shortUsage, strings.Join(names, ", "))
}

// Run runs one command and returns the process exit code.
func (a *App) Run(ctx context.Context, args []string) int {
	if a.Getenv == nil {
		a.Getenv = func(string) string { return "" }
	}
	if len(args) == 0 {
		a.shortUsage(a.Stderr)
		return ExitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		a.usage(a.Stdout)
		return ExitOK
	case "--version", "-version":
		args = []string{"version"}
	case "-v", "--verbose", "-verbose":
		// -v is --verbose everywhere. Alone it prints the version, as
		// 'cdnpurge -v' always has; before a command it is that command's.
		switch {
		case len(args) == 1:
			return a.exit("cdnpurge", a.version(ctx, nil))
		case !strings.HasPrefix(args[1], "-"):
			args = append([]string{args[1], args[0]}, args[2:]...)
		}
	}
	if args[0] == completeCmd {
		a.complete(a.Stdout, args[1:])
		return ExitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return a.exit("cdnpurge "+c.name, c.exec(a, ctx, args[1:]))
		}
	}
	return a.exit("cdnpurge", a.unknownCommand(args[0]))
}

// unknownCommand is the error for a first argument that names no command.
func (a *App) unknownCommand(name string) error {
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	if strings.HasPrefix(name, "-") {
		flagName, _, _ := strings.Cut(strings.TrimLeft(name, "-"), "=")
		for _, c := range commands() {
			if f := a.flagsOf(c); f != nil && f.Lookup(flagName) != nil {
				return usagef("%s: give the command first", name).hint(fmt.Sprintf("flags go after it: cdnpurge %s %s ...", c.name, name))
			}
		}
		return usagef("unknown flag %s", name).hint("run 'cdnpurge --help' for the commands")
	}
	err := usagef("unknown command %q", name)
	switch s := suggest(name, names); {
	case len(s) > 0:
		return err.hint(didYouMean("cdnpurge ", s))
	case strings.Contains(name, "://"):
		return err.hint("to purge it: cdnpurge purge --url " + name + " --dns-name NAME (or --instance, --fly-app)")
	}
	return err.hint("the commands are " + orList(names) + "; run 'cdnpurge --help' for more")
}

func (a *App) version(_ context.Context, args []string) error {
	f := newFlags("version", "Print cdnpurge's version (also: cdnpurge --version).", "  cdnpurge version")
	f.exits = ""
	if err := f.parse(a, args); err != nil {
		return err
	}
	_, err := fmt.Fprintln(a.Stdout, "cdnpurge", a.Version)
	return err
}

// help is 'cdnpurge help [command]'.
func (a *App) help(ctx context.Context, args []string) error {
	f := newFlags("help", "Show the help of cdnpurge, or of one of its commands.", "  cdnpurge help\n  cdnpurge help purge")
	f.operands, f.exits = "[command]", ""
	if err := f.parse(a, args); err != nil {
		return err
	}
	switch len(f.args) {
	case 0:
		a.usage(a.Stdout)
		return nil
	case 1:
	default:
		return usagef("unexpected argument %q", f.args[1]).hint("give one command, e.g. cdnpurge help purge")
	}
	for _, c := range commands() {
		if c.name == f.args[0] {
			return c.exec(a, ctx, []string{"--help"})
		}
	}
	return a.unknownCommand(f.args[0])
}

// usageError is a flag or input that cannot work: nothing was sent. Its
// hint says what to do instead.
type usageError struct {
	err error
	tip string
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// hint sets what to do instead.
func (e *usageError) hint(h string) *usageError {
	e.tip = h
	return e
}

func usagef(format string, a ...any) *usageError { return &usageError{err: fmt.Errorf(format, a...)} }

// failedError says requests were sent and not all succeeded; the report
// is already written. hints are the front end's advice.
type failedError struct {
	err   error
	hints []string
}

func (e *failedError) Error() string { return e.err.Error() }

// errHelp: help was printed; exit 0.
var errHelp = errors.New("help")

// exit prints err (if any) on stderr and chooses the exit code, in one
// place for every command. A usage error is one line and a hint (or where
// the help is), never the help itself, and nothing on stdout.
func (a *App) exit(cmd string, err error) int {
	var (
		ue *usageError
		je *purge.JobError
		de *purge.DiscoveryError
		oe *purge.OriginError
		fe *failedError
	)
	// A line that carries an error is decided as it is printed: one that
	// shows a secret is withheld whole. Hints and usage lines are this
	// program's own words.
	say := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		if a.secrets.Shows(line) {
			line = cmd + ": (the message is withheld: it shows part of a secret)\n"
		}
		_, _ = io.WriteString(a.Stderr, line)
	}
	own := func(format string, args ...any) { fmt.Fprintf(a.Stderr, format, args...) }
	usage := func(msg, hint string) int {
		say("%s: %s\n", cmd, msg)
		if hint != "" {
			own("hint: %s\n", hint)
		} else {
			own("Run '%s --help' for usage.\n", cmd)
		}
		return ExitUsage
	}
	switch {
	case err == nil, errors.Is(err, errHelp):
		return ExitOK
	case errors.As(err, &fe):
		say("%s: FAILED: %v\n", cmd, fe.err)
		for _, h := range fe.hints {
			own("hint: %s\n", h)
		}
		return ExitFailed
	case errors.As(err, &ue):
		return usage(ue.Error(), ue.tip)
	case errors.As(err, &je):
		return usage(je.Error(), a.jobHint(je))
	case errors.As(err, &de):
		say("%s: %v\n", cmd, err)
		if h := a.discoveryHint(de); h != "" {
			own("hint: %s\n", h)
		}
		return ExitUsage
	case errors.As(err, &oe):
		fmt.Fprintf(a.Stderr, "%s: %v\nhint: check --origin: it must serve the URLs' current versions; nothing was sent to the instances\n", cmd, err)
		return ExitUsage
	}
	say("%s: %v\n", cmd, err)
	return ExitUsage
}

// given says whether the running command's flag name was given.
func (a *App) given(name string) bool { return a.parsed != nil && a.parsed.set(name) }

// jobHint words a setting's remedy in this CLI's flags, where the library
// says which setting (errors.Is); empty: the help is the hint.
func (a *App) jobHint(je *purge.JobError) string {
	var given []string
	for _, n := range []string{"dns-name", "instance", "fly-app", "region", "connect"} {
		if a.given(n) {
			given = append(given, "--"+n)
		}
	}
	switch {
	case errors.Is(je, purge.ErrNoInstances):
		return "say where the instances are: --dns-name NAME (the internal DNS name that lists every instance), --instance ADDR[:PORT] (repeatable) or --fly-app APP"
	case errors.Is(je, purge.ErrManySources):
		return fmt.Sprintf("give one of --dns-name, --instance and --fly-app (given: %s)", strings.Join(given, ", "))
	case errors.Is(je, purge.ErrNeedsFlyApp):
		var fly []string
		for _, g := range given {
			if g == "--region" || g == "--connect" {
				fly = append(fly, g)
			}
		}
		if len(fly) > 1 {
			return fmt.Sprintf("%s only apply with --fly-app APP (Fly.io edge mode)", strings.Join(fly, " and "))
		}
		return fmt.Sprintf("%s only applies with --fly-app APP (Fly.io edge mode)", strings.Join(fly, ""))
	case errors.Is(je, purge.ErrNeedsVerifyURLs):
		return "give the URLs to check with --verify-url URL (repeatable): pages the ban or the tags cover"
	}
	return ""
}

// discoveryHint words a discovery failure's remedy in this CLI's flags, or
// takes the library's where no flag is concerned.
func (a *App) discoveryHint(de *purge.DiscoveryError) string {
	switch de.Kind {
	case purge.KindNoRecords:
		if de.Suggest != "" {
			return "try --record " + string(de.Suggest)
		}
		if len(de.Regions) > 0 {
			return a.regionHint(de.Regions)
		}
	case purge.KindTimeout:
		if de.Record == "" {
			return "raise --timeout: it limits the Machines API's answer too"
		}
		return "check --resolver, or raise --dns-timeout"
	case purge.KindStopped:
		if errors.Is(de, purge.ErrDeadline) {
			return "raise --deadline: it limits the whole run, finding the instances included"
		}
		return "" // a signal: the one who sent it knows
	case purge.KindUnreachable:
		if de.Record != "" {
			return "check --resolver"
		}
		return "check --fly-api and the network"
	case purge.KindAPI:
		switch de.Status {
		case http.StatusUnauthorized, http.StatusForbidden:
			return "check the Fly.io token (FLY_API_TOKEN or --fly-token-file)"
		case 0: // not followed to another address
			return "check --fly-api"
		}
	}
	return de.Hint()
}

// regionHint words a --region no machine is in: the regions meant, when
// close to the app's own, or else how to purge them all.
func (a *App) regionHint(regions []string) string {
	var meant []string
	if a.parsed != nil {
		if f := a.parsed.Lookup("region"); f != nil {
			for _, r := range strings.Split(f.Value.String(), ",") {
				if s := suggest(r, regions); len(s) > 0 && !slices.Contains(meant, s[0]) {
					meant = append(meant, s[0])
				}
			}
		}
	}
	if len(meant) > 0 {
		return "did you mean --region " + strings.Join(meant, ",") + "?"
	}
	return "give --region one of the app's regions, or leave it out to purge them all"
}

// failureHints words, once each, the remedies for the failures in out,
// in the flags of the job j that ran.
func failureHints(out *purge.Outcome, j purge.Job) []string {
	refused := "connection refused: is the cache listening on that port? Give the instances' port with --port N (or ADDR:PORT in --instance)"
	switch {
	case j.Fly.App != "":
		refused = "connection refused by the edge: check the URL's host, --connect and --scheme"
	case j.Record == purge.RecordSRV:
		refused = "connection refused on the port the SRV records give: check the records, and that the caches listen there"
	}
	causes := []struct {
		err  error
		hint string
	}{
		{purge.ErrNoToken, "the instances want a purge token: set PURGE_TOKEN or --token-file FILE"},
		{purge.ErrTokenRejected, "the purge token was refused: check PURGE_TOKEN or --token-file, and --token-header"},
		{purge.ErrNotFound, "if the VCL answers 404 when nothing was cached, add --ok-status 404"},
		{purge.ErrServedFromCache, "the VCL answers METHOD as an ordinary request (a cache hit): add METHOD handling (see the README's 'Works with')"},
		{purge.ErrPurgeNotHandled, "the VCL answers METHOD as an ordinary request (passed on to the backend): add METHOD handling (see the README's 'Works with')"},
		{purge.ErrStopped, ""}, // worded by its cause, below
		{syscall.ECONNREFUSED, refused},
		{purge.ErrOldCopy, "purge again: an instance still serves a copy made before the purge (a fetch in flight during the purge survives it)"},
		{purge.ErrUncertain, "--origin URL compares content and settles it; --accept-uncertain passes copies Age cannot order"},
		{purge.ErrStaleUnknown, "without a cache header, expect hit (or name the application's header with --cache-header)"},
	}
	var hints []string
	seen := make([]bool, len(causes))
	var stopped error
	var badCert *tls.CertificateVerificationError
	for _, r := range out.Reports() {
		if r.Failed() == 0 {
			continue
		}
		for k := range r.Len() {
			err := r.Err(k)
			if err == nil {
				continue
			}
			if badCert == nil {
				errors.As(err, &badCert)
			}
			for i, c := range causes {
				if !seen[i] && errors.Is(err, c.err) {
					seen[i] = true
					if c.err == purge.ErrStopped {
						stopped = err
					}
				}
			}
		}
	}
	for i, c := range causes {
		if !seen[i] {
			continue
		}
		if c.err == purge.ErrStopped {
			hints = append(hints, stopHint(stopped))
			continue
		}
		method := "PURGE"
		if out.Purge != nil {
			method = out.Purge.Method
		}
		hints = append(hints, strings.ReplaceAll(c.hint, "METHOD", method))
	}
	if badCert != nil {
		if j.Fly.App != "" {
			hints = append(hints, "the edge's certificate did not verify for the URL's host (TLS names it, also with --connect): check the URL's host, or --insecure skips the check")
		} else {
			hints = append(hints, "the instance's certificate did not verify for the URL's host: --scheme http reaches the instances without TLS, or --insecure skips the check")
		}
	}
	if out.Purge == nil && j.Wait == 0 && missedHit(out) {
		hints = append(hints, "a miss can mean the URL was not cached yet: this check's own request has now filled each cache, so the next run finds hits; --wait 2m keeps asking until every instance matches")
	}
	return hints
}

// stopHint says what stopped a run: --deadline, a signal, or else.
func stopHint(err error) string {
	var sig *Interrupted
	switch {
	case errors.Is(err, purge.ErrDeadline):
		return "the run was stopped by --deadline before every request was answered"
	case errors.As(err, &sig):
		return fmt.Sprintf("the run was %s before every request was answered; the report shows what was done", sig)
	}
	return "the run was stopped before every request was answered"
}

// missedHit says whether a check that expected a hit found a miss: the
// instance had not cached the URL yet (and the check's own request has
// now filled its cache).
func missedHit(out *purge.Outcome) bool {
	for _, r := range out.Verify {
		if r.Failed() == 0 || (r.Expect != purge.ExpectHit && r.Expect != purge.ExpectFresh) {
			continue
		}
		for k := range r.Len() {
			if r.Err(k) == nil {
				continue
			}
			if res := r.Result(k); res.Class == cachestatus.Miss && res.Status < 500 {
				return true
			}
		}
	}
	return false
}
