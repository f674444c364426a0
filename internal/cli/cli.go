// Package cli is the cdnpurge command line: flag parsing, help texts, exit
// codes and the wiring of package purge. cmd/cdnpurge only calls Main.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"
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
}

// Main runs the CLI with the process's own streams and environment.
func Main(ctx context.Context, args []string) int {
	a := &App{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Version: version()}
	return a.Run(ctx, args)
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return strings.TrimPrefix(bi.Main.Version, "v")
	}
	return "dev"
}

type command struct {
	name, summary string
	run           func(a *App, ctx context.Context, args []string) int
}

func commands() []command {
	return []command{
		{"purge", "send PURGE for URLs to every instance of the fleet and report each", (*App).purge},
		{"verify", "ask every instance for URLs and check their Cache-Status (hit, miss, ...)", (*App).verify},
		{"demo", "start a local Varnish fleet, purge a URL on it and show the proof", (*App).demo},
		{"version", "print the version", func(a *App, _ context.Context, _ []string) int {
			fmt.Fprintln(a.Stdout, "cdnpurge", a.Version)
			return ExitOK
		}},
	}
}

const mainUsage = `cdnpurge purges a URL from EVERY instance of a self-hosted cache fleet
(Varnish behind one anycast address) and proves it worked.

A PURGE sent to the public host reaches one instance; the others keep serving
stale content. cdnpurge finds every instance through DNS (AAAA, A or SRV),
sends the request to each with the URL's Host header, all at once, reports
per instance, and can verify with Cache-Status that each one now misses.

Usage:
  cdnpurge <command> [flags]

Commands:
%s
Examples:
  PURGE_TOKEN=... cdnpurge purge --url https://example.com/podcast/1 --dns-name my-cdn.internal --port 9000
  cdnpurge verify --url https://example.com/feed --dns-name my-cdn.internal --port 9000 --expect hit
  cdnpurge demo

Run 'cdnpurge <command> --help' for a command's flags.
Exit codes: 0 all instances ok, 1 some instance failed, 2 usage, configuration or discovery error.
`

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
			return c.run(a, ctx, args[1:])
		}
	}
	fmt.Fprintf(a.Stderr, "cdnpurge: unknown command %q\n\n", args[0])
	a.usage(a.Stderr)
	return ExitUsage
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ", ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// newFlagSet returns a flag set whose --help prints about, the flags with
// double dashes, and examples.
func (a *App) newFlagSet(name, about, examples string) *flag.FlagSet {
	fs := flag.NewFlagSet("cdnpurge "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		w := a.Stdout
		fmt.Fprintf(w, "%s\n\nUsage:\n  cdnpurge %s [flags]\n\nFlags:\n", strings.TrimSpace(about), name)
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		sort.Strings(names)
		for _, n := range names {
			f := fs.Lookup(n)
			arg, text := flag.UnquoteUsage(f)
			if arg != "" {
				arg = " " + arg
			}
			def := ""
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" && f.DefValue != "[]" {
				def = fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintf(w, "  --%s%s\n      %s%s\n", n, arg, strings.ReplaceAll(text, "\n", "\n      "), def)
		}
		fmt.Fprintf(w, "\nExamples:\n%s\nExit codes: 0 all instances ok, 1 some instance failed, 2 usage, configuration or discovery error.\n", examples)
	}
	return fs
}

// parse parses flags; it returns an exit code and false when the command
// must stop (help asked for, or bad flags).
func (a *App) parse(fs *flag.FlagSet, args []string) (int, bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return ExitOK, false
	case err != nil:
		return a.usageErr(fs.Name(), err), false
	case fs.NArg() > 0:
		return a.usageErr(fs.Name(), fmt.Errorf("unexpected argument %q (URLs go in --url or --urls-file)", fs.Arg(0))), false
	}
	return ExitOK, true
}

func (a *App) usageErr(cmd string, err error) int {
	fmt.Fprintf(a.Stderr, "%s: %v\nRun '%s --help' for usage.\n", cmd, err, cmd)
	return ExitUsage
}

func (a *App) fail(cmd string, err error) int {
	fmt.Fprintf(a.Stderr, "%s: %v\n", cmd, err)
	return ExitUsage
}
