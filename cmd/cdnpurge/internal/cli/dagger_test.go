package cli

// The Dagger module (.dagger, a module of its own that cannot import this
// package) takes the CLI's settings under the same names: its constructor
// (New) where the fleet is and how each instance is reached, and purge, ban
// and verify their own. These tests read the module's arguments from its
// source as Dagger's codegen reads them (a parameter's +default pragma in
// its comments), check them against the dispatch codegen generated
// (.dagger/dagger.gen.go), and walk every flag of purge, ban and verify.

import (
	"context"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/internal/daggermod"
	"github.com/cdnpurge/cdnpurge/purge"
)

var moduleDir = filepath.Join("..", "..", "..", "..", ".dagger")

// moduleArg is one argument of a module function.
type moduleArg struct {
	def    string // the +default pragma's JSON value
	hasDef bool
}

// moduleFunctions reads New and the methods of the module's object from its
// source (package daggermod, as Dagger's codegen reads them): by function,
// each argument by name.
func moduleFunctions(t *testing.T) map[string]map[string]moduleArg {
	t.Helper()
	mod, err := daggermod.Read(moduleDir)
	require.NoError(t, err)
	out := map[string]map[string]moduleArg{}
	for name, fn := range mod.Functions {
		args := map[string]moduleArg{}
		for _, a := range fn.Args {
			args[a.Name] = moduleArg{def: a.Default, hasDef: a.HasDefault}
		}
		out[name] = args
	}
	require.Contains(t, out, "New", "the module has no constructor")
	return out
}

// dispatched reads, from the generated dispatch, the arguments it passes to
// each function ("New" for the constructor).
func dispatched(t *testing.T) map[string][]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(moduleDir, "dagger.gen.go"), nil, 0)
	require.NoError(t, err)
	out := map[string][]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		cc, ok := n.(*ast.CaseClause)
		if !ok || len(cc.List) != 1 {
			return true
		}
		lit, ok := cc.List[0].(*ast.BasicLit)
		if !ok {
			return true
		}
		fn, _ := strconv.Unquote(lit.Value)
		if fn == "" {
			fn = "New"
		}
		var args []string
		ast.Inspect(cc, func(n ast.Node) bool {
			if ix, ok := n.(*ast.IndexExpr); ok {
				if id, ok := ix.X.(*ast.Ident); ok && id.Name == "inputArgs" {
					if l, ok := ix.Index.(*ast.BasicLit); ok {
						s, _ := strconv.Unquote(l.Value)
						if len(args) == 0 || args[len(args)-1] != s {
							args = append(args, s)
						}
					}
				}
			}
			return true
		})
		if fn != "Cdnpurge" {
			sort.Strings(args)
			out[fn] = args
		}
		return true
	})
	return out
}

// The source and the committed bindings agree: what the tests below read is
// what the engine calls.
func TestModuleSourceMatchesGeneratedDispatch(t *testing.T) {
	gen := dispatched(t)
	for fn, args := range moduleFunctions(t) {
		var names []string
		for n := range args {
			names = append(names, n)
		}
		sort.Strings(names)
		assert.Equal(t, names, gen[fn], "%s: the bindings are stale: run bash ci/dagger-codegen.sh", fn)
	}
}

// commandFlags returns the flag set of cdnpurge cmd.
func commandFlags(t *testing.T, cmd string) *flag.FlagSet {
	t.Helper()
	var fs *flag.FlagSet
	a := &App{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard, inspect: func(f *flag.FlagSet) { fs = f }}
	require.Equal(t, ExitOK, a.Run(context.Background(), []string{cmd, "--help"}))
	require.NotNil(t, fs)
	return fs
}

// argName is the module argument a flag maps to: the flag in camel case,
// or the argument that takes what a file flag reads.
func argName(flag string) string {
	switch flag {
	case "token-file":
		return "token" // a secret: --token env://PURGE_TOKEN
	case "fly-token-file":
		return "flyToken"
	case "api-token-file":
		return "apiToken" // a secret: --api-token env://CDNPURGE_API_TOKEN
	}
	parts := strings.Split(flag, "-")
	for i := 1; i < len(parts); i++ {
		parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
	}
	return strings.Join(parts, "")
}

// notJob are flags that configure nothing the module needs, and why.
var notJob = map[string]string{
	"v":            "short for --verbose",
	"summary-file": "a file on the machine that runs the CLI; the module returns the report, and its caller writes it where it wants",
}

// libraryDefault overrides a flag's shown default where it is not the
// value the job gets.
var libraryDefault = map[string]string{
	"record":        string(purge.DefaultRecord), // a Func flag: no DefValue
	"purge/method":  "",                          // the job chooses: PURGE, or PURGEKEYS for --tag
	"ban/method":    "",                          // the job chooses: BAN
	"verify/method": "",                          // the job chooses: HEAD, or GET with --origin
}

// Every flag of purge, ban and verify has a module argument, in New or in
// the function, and their defaults agree; every argument of those has a
// flag.
func TestEveryFlagHasAModuleArgument(t *testing.T) {
	mod := moduleFunctions(t)
	usedInNew := map[string]bool{}
	for _, cmd := range []string{"purge", "ban", "verify"} {
		fn := strings.ToUpper(cmd[:1]) + cmd[1:]
		own, ok := mod[fn]
		require.True(t, ok, "the module has no %s function", fn)
		mapped := map[string]bool{}
		commandFlags(t, cmd).VisitAll(func(fl *flag.Flag) {
			if _, skip := notJob[fl.Name]; skip {
				return
			}
			name := argName(fl.Name)
			arg, inFn := own[name]
			where := fn
			if !inFn {
				if arg, ok = mod["New"][name]; !ok {
					t.Errorf("cdnpurge %s --%s has no module argument %q (in New or %s): add one, or say in notJob why none", cmd, fl.Name, name, fn)
					return
				}
				where = "New"
				usedInNew[name] = true
			}
			mapped[name] = true
			checkDefault(t, cmd, fl, where, name, arg)
		})
		for name := range own {
			assert.True(t, mapped[name], "%s's argument %q is no flag of cdnpurge %s", fn, name, cmd)
		}
	}
	for name := range mod["New"] {
		assert.True(t, usedInNew[name], "New's argument %q is no flag of purge, ban or verify", name)
	}
}

// checkDefault compares an argument's +default with its flag's default,
// which the CLI takes from the library.
func checkDefault(t *testing.T, cmd string, fl *flag.Flag, fn, name string, arg moduleArg) {
	t.Helper()
	want, override := libraryDefault[cmd+"/"+fl.Name]
	if !override {
		want, override = libraryDefault[fl.Name]
	}
	if !override {
		want = fl.DefValue
		switch want {
		case "false", "0", "0s", "[]":
			want = ""
		}
	}
	got := arg.def
	if s, err := strconv.Unquote(got); err == nil {
		got = s
	}
	if d, err := time.ParseDuration(want); err == nil && want != "" {
		gd, gerr := time.ParseDuration(got)
		assert.True(t, gerr == nil && gd == d, "cdnpurge %s --%s defaults to %s, %s's %s to %q", cmd, fl.Name, want, fn, name, arg.def)
		return
	}
	assert.Equal(t, want, got, "cdnpurge %s --%s defaults to %q, %s's %s to %s (the library's default is the flag's)", cmd, fl.Name, want, fn, name, arg.def)
}

// verify sends one request at a time: it has no --pipeline.
func TestVerifyHasNoPipelineFlag(t *testing.T) {
	assert.Nil(t, commandFlags(t, "verify").Lookup("pipeline"))
	for _, cmd := range []string{"purge", "ban"} {
		assert.NotNil(t, commandFlags(t, cmd).Lookup("pipeline"), cmd)
	}
}
