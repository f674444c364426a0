// Package cli is the cdnpurge command line: flags, help texts, exit codes.
// Each command maps its flags to one purge.Job and runs it; errors are
// returned to one place (App.Run) that prints them and picks the exit code.
// cmd/cdnpurge only calls Main.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/cdnpurge/cdnpurge/internal/secret"
	"github.com/cdnpurge/cdnpurge/purge"
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
		{"purge", "send PURGE for URLs (or tags) to every instance of the fleet and report each", (*App).purge},
		{"ban", "send a BAN (a regular expression over paths) to every instance", (*App).ban},
		{"verify", "ask every instance for URLs and check what its cache says (hit, miss, ...)", (*App).verify},
		{"serve", "run a broadcaster: one HTTP endpoint that sends each purge to every instance, journaled", (*App).serve},
		{"demo", "start a local Varnish fleet, purge a URL on it and show the proof", (*App).demo},
		{"version", "print the version", func(a *App, _ context.Context, _ []string) error {
			_, err := fmt.Fprintln(a.Stdout, "cdnpurge", a.Version)
			return err
		}},
	}
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
Examples:
  PURGE_TOKEN=... cdnpurge purge --url https://example.com/podcast/1 --dns-name my-cdn.internal --port 9000 --verify
  FLY_API_TOKEN=... cdnpurge purge --url https://example.com/feed --fly-app my-cdn --verify
  cdnpurge verify --url https://example.com/feed --dns-name my-cdn.internal --port 9000 --expect hit
  cdnpurge demo

Run 'cdnpurge <command> --help' for a command's flags.
` + exitCodes

const exitCodes = "Exit codes: 0 all instances ok, 1 some instance failed, 2 usage, configuration or discovery error (nothing sent).\n"

func (a *App) usage(w io.Writer) {
	var b strings.Builder
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, mainUsage, b.String())
}

// Run runs one command and returns the process exit code.
func (a *App) Run(ctx context.Context, args []string) int {
	if a.Getenv == nil {
		a.Getenv = func(string) string { return "" }
	}
	if len(args) == 0 {
		a.usage(a.Stderr)
		return ExitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		a.usage(a.Stdout)
		return ExitOK
	case "-v", "--version":
		args[0] = "version"
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return a.exit("cdnpurge "+c.name, c.exec(a, ctx, args[1:]))
		}
	}
	fmt.Fprintf(a.Stderr, "cdnpurge: unknown command %q\nRun 'cdnpurge --help' for the commands.\n", args[0])
	return ExitUsage
}

// usageError is a flag or input that cannot work: nothing was sent.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return &usageError{fmt.Errorf(format, a...)} }

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
// place for every command.
func (a *App) exit(cmd string, err error) int {
	var (
		ue *usageError
		je *purge.JobError
		de *purge.DiscoveryError
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
	switch {
	case err == nil, errors.Is(err, errHelp):
		return ExitOK
	case errors.As(err, &fe):
		say("%s: FAILED: %v\n", cmd, fe.err)
		for _, h := range fe.hints {
			own("hint: %s\n", h)
		}
		return ExitFailed
	case errors.As(err, &ue), errors.As(err, &je):
		say("%s: %v\n", cmd, err)
		own("Run '%s --help' for usage.\n", cmd)
		return ExitUsage
	case errors.As(err, &de):
		say("%s: %v\n", cmd, err)
		if h := discoveryHint(de); h != "" {
			own("hint: %s\n", h)
		}
		return ExitUsage
	}
	say("%s: %v\n", cmd, err)
	return ExitUsage
}

// discoveryHint words a discovery failure's remedy in this CLI's flags, or
// takes the library's where no flag is concerned.
func discoveryHint(de *purge.DiscoveryError) string {
	switch de.Kind {
	case purge.KindNoRecords:
		if de.Suggest != "" {
			return "try --record " + string(de.Suggest)
		}
	case purge.KindTimeout:
		return "check --resolver, or raise --dns-timeout"
	case purge.KindUnreachable:
		if de.Record != "" {
			return "check --resolver"
		}
		return "check --fly-api and the network"
	case purge.KindAPI:
		return "check the Fly.io token (FLY_API_TOKEN or --fly-token-file)"
	}
	return de.Hint()
}

// failureHints words, once each, the remedies for the failures in out.
func failureHints(out *purge.Outcome) []string {
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
	}
	var hints []string
	seen := make([]bool, len(causes))
	var stopped error
	for _, r := range out.Reports() {
		if r.Failed() == 0 {
			continue
		}
		for k := range r.Len() {
			err := r.Err(k)
			if err == nil {
				continue
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
