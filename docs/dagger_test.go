package docs

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cdnpurge/cdnpurge/internal/daggermod"
	"github.com/cdnpurge/cdnpurge/purge"
)

// checkDagger checks a dagger command against the module (no engine runs
// here): `dagger [-m MODULE] call [constructor flags] FUNCTION [flags]
// [CHAINED FUNCTION [flags]]`. Every function and flag must exist, the
// required arguments be given, secrets be given as a secret provider's
// URI, and the values the library parses (steps, records, classes) parse.
func (w *world) checkDagger(t *testing.T, c command, ws []word) {
	t.Helper()
	if err := checkDaggerCall(vals(ws)); err != nil {
		t.Errorf("%s\n  %v", c, err)
	}
}

func checkDaggerCall(args []string) error {
	mod, err := daggermod.Read(filepath.Join(repo, ".dagger"))
	if err != nil {
		return err
	}
	core, err := daggermod.Bindings(filepath.Join(repo, ".dagger", "internal", "dagger", "dagger.gen.go"))
	if err != nil {
		return err
	}
	if len(args) == 0 || args[0] != "dagger" {
		return fmt.Errorf("not a dagger command")
	}
	args = args[1:]
	for len(args) > 0 && args[0] != "call" {
		switch {
		case args[0] == "-m" || args[0] == "--mod":
			if len(args) < 2 || !strings.HasPrefix(args[1], "github.com/cdnpurge/cdnpurge") {
				return fmt.Errorf("-m: the docs show this module only (github.com/cdnpurge/cdnpurge@TAG)")
			}
			args = args[2:]
		case strings.HasPrefix(args[0], "--progress="):
			args = args[1:]
		default:
			return fmt.Errorf("dagger %s: the docs test checks dagger call only", args[0])
		}
	}
	if len(args) == 0 {
		return fmt.Errorf("dagger: no call")
	}
	args = args[1:]
	// The constructor's flags, then a function of the module's object.
	rest, err := checkArgs("the constructor (New)", mod.Functions["New"], args)
	if err != nil {
		return err
	}
	fns := map[string]*daggermod.Function{}
	for name, fn := range mod.Functions {
		if name != "New" {
			fns[fn.Command()] = fn
		}
	}
	for len(rest) > 0 {
		name := rest[0]
		fn, ok := fns[name]
		if !ok {
			var have []string
			for n := range fns {
				have = append(have, n)
			}
			slices.Sort(have)
			return fmt.Errorf("no function %q here (there are: %s)", name, strings.Join(have, ", "))
		}
		if rest, err = checkArgs(name, fn, rest[1:]); err != nil {
			return err
		}
		// A chained call is a function of what this one returns.
		fns = map[string]*daggermod.Function{}
		if typ, ok := strings.CutPrefix(fn.Returns, "*dagger."); ok {
			for _, m := range core[typ] {
				fns[m.Command()] = m
			}
		}
	}
	return nil
}

// checkArgs checks fn's flags at the head of args and returns the rest.
func checkArgs(name string, fn *daggermod.Function, args []string) ([]string, error) {
	given := map[string]bool{}
	for len(args) > 0 && strings.HasPrefix(args[0], "--") {
		flag, value, eq := strings.Cut(strings.TrimPrefix(args[0], "--"), "=")
		a, ok := fn.Arg(flag)
		if !ok {
			return nil, fmt.Errorf("%s has no argument --%s (it has %s)", name, flag, strings.Join(fn.Flags(), " "))
		}
		args = args[1:]
		if !eq && a.Type != "bool" {
			if len(args) == 0 {
				return nil, fmt.Errorf("%s --%s: no value", name, flag)
			}
			value, args = args[0], args[1:]
		}
		given[flag] = true
		if err := checkValue(name, flag, a, value); err != nil {
			return nil, err
		}
	}
	for _, a := range fn.Args {
		if !a.Optional && !given[a.Flag()] {
			return nil, fmt.Errorf("%s needs --%s", name, a.Flag())
		}
	}
	return args, nil
}

// checkValue checks what can be checked of a value without an engine.
func checkValue(fn, flag string, a daggermod.Arg, v string) error {
	switch a.Type {
	case "*dagger.Secret":
		if !strings.Contains(v, "://") {
			return fmt.Errorf("%s --%s %s: a secret is given as env://NAME, file://PATH or cmd://COMMAND", fn, flag, v)
		}
	case "*dagger.Service":
		if !strings.HasPrefix(v, "tcp://") && !strings.HasPrefix(v, "udp://") {
			return fmt.Errorf("%s --%s %s: a service from the host is tcp://HOST:PORT", fn, flag, v)
		}
	}
	var err error
	switch flag {
	case "verify":
		for _, s := range strings.Split(v, ",") {
			if _, e := purge.ParseExpect(s); e != nil {
				err = e
			}
		}
	case "expect":
		_, err = purge.ParseExpect(v)
	case "record":
		switch v {
		case "aaaa", "a", "srv":
		default:
			err = fmt.Errorf("record %q: aaaa, a or srv", v)
		}
	case "url", "verify-url":
		_, err = purge.ParseURL(v)
	}
	if err != nil {
		return fmt.Errorf("%s --%s %s: %v", fn, flag, v, err)
	}
	return nil
}

func TestDaggerCheckCatches(t *testing.T) {
	for _, bad := range []string{
		"dagger call --dns-nmae cdn.internal purge --url https://example.com/",
		"dagger call --dns-name cdn.internal purge --urll https://example.com/",
		"dagger call --dns-name cdn.internal ban --url https://example.com/",
		"dagger call --token PURGE_TOKEN --dns-name cdn.internal purge --url https://example.com/",
		"dagger call --dns-name cdn.internal purge --url https://example.com/ --verify bogus",
		"dagger call varnish --origin tcp://localhost:8080 up --port 9000:9000",
		"dagger call purgee --url https://example.com/",
	} {
		if err := checkDaggerCall(strings.Fields(bad)); err == nil {
			t.Errorf("%s: passed the check", bad)
		}
	}
	for _, good := range []string{
		"dagger call --dns-name cdn.internal --token env://PURGE_TOKEN purge --url https://example.com/ --verify purged",
		"dagger call varnish --origin tcp://localhost:8080 up --ports 9000:9000",
		"dagger call --insecure --scheme https --instance 10.0.0.7 verify --url https://example.com/",
	} {
		if err := checkDaggerCall(strings.Fields(good)); err != nil {
			t.Errorf("%s: %v", good, err)
		}
	}
}
