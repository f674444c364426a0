package docs

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/fleet/containers"
	"github.com/cdnpurge/cdnpurge/internal/daggermod"
)

// commands are the cdnpurge commands whose flags the pages document.
var commands = []string{"purge", "ban", "verify", "serve", "demo", "completion"}

// helpFlag is a flag as a command's --help shows it.
type helpFlag struct {
	takesValue bool
	def        string // what "(default X)" says; empty when it says none
}

var (
	helpLine    = regexp.MustCompile(`^  (?:-(\w), )?--([a-z0-9-]+)(\[=[A-Z]+\])?( \S.*)?$`)
	helpDefault = regexp.MustCompile(`\(default:? ([^);]*)[^)]*\)\s*$`)
)

// helpFlags reads every command's flags from its --help.
func helpFlags(t *testing.T, bin string) map[string]map[string]helpFlag {
	t.Helper()
	out := map[string]map[string]helpFlag{}
	for _, cmd := range commands {
		text, err := exec.Command(bin, cmd, "--help").CombinedOutput()
		require.NoError(t, err, "cdnpurge %s --help: %s", cmd, text)
		flags := map[string]helpFlag{}
		var name, desc string
		flush := func() {
			if name == "" {
				return
			}
			f := flags[name]
			if m := helpDefault.FindStringSubmatch(strings.Join(strings.Fields(desc), " ")); m != nil {
				f.def = m[1]
			}
			flags[name] = f
			name, desc = "", ""
		}
		for _, l := range strings.Split(string(text), "\n") {
			if m := helpLine.FindStringSubmatch(l); m != nil {
				flush()
				name = m[2]
				flags[name] = helpFlag{takesValue: m[3] == "" && strings.TrimSpace(m[4]) != ""}
				if m[1] != "" {
					flags[m[1]] = helpFlag{}
				}
				continue
			}
			if strings.HasPrefix(l, "      ") && name != "" {
				desc += " " + l
				continue
			}
			flush()
		}
		flush()
		out[cmd] = flags
	}
	return out
}

// foreignFlags are other programs' flags the pages name (curl's, git's,
// Magento's ...), which cdnpurge does not have.
var foreignFlags = []string{
	"connect-to",       // curl
	"fail-with-body",   // curl
	"name-only",        // git
	"http-cache-hosts", // Magento's bin/magento
	"progress",         // dagger
	"drop",             // capsh
	"check",            // ci/dagger-codegen.sh
	"version",          // cdnpurge --version (top level)
	"help",             // every command's --help
	"ports", "random",  // a Dagger Service's up
	"from",     // a Dockerfile's COPY --from
	"dns-nmae", // a mistyped flag, on purpose (cli.md: "did you mean")
}

var flagMention = regexp.MustCompile("(?:^|[\\s`(\\[|'\"])--([a-z][a-z0-9-]*[a-z0-9])")

// Every flag the pages name exists (in a command's --help, the Dagger
// module, or another program the pages show); every flag of every command
// is documented; a default a flag table gives is the one --help gives.
func TestFlagsMatchTheCode(t *testing.T) {
	bin := buildCLI(t)
	help := helpFlags(t, filepath.Join(bin, "cdnpurge"))
	mod, err := daggermod.Read(filepath.Join(repo, ".dagger"))
	require.NoError(t, err)
	known := map[string]bool{}
	for _, fs := range help {
		for f := range fs {
			known[f] = true
		}
	}
	for _, fn := range mod.Functions {
		for _, a := range fn.Args {
			known[a.Flag()] = true
		}
	}
	for _, f := range foreignFlags {
		known[f] = true
	}
	documented := map[string]string{} // flag -> pages that document it in a table
	for _, p := range pages(t) {
		for i, l := range p.lines {
			for _, m := range flagMention.FindAllStringSubmatch(l, -1) {
				if !known[m[1]] {
					t.Errorf("%s:%d: --%s is no flag of cdnpurge (nor of the Dagger module): %s", p.path, i+1, m[1], strings.TrimSpace(l))
				}
			}
			cells := strings.Split(l, "|")
			if !strings.HasPrefix(l, "| `-") || len(cells) < 4 {
				continue
			}
			names := regexp.MustCompile("`-{1,2}([a-z0-9-]+)").FindAllStringSubmatch(cells[1], -1)
			def := strings.TrimSpace(cells[2])
			if strings.Contains(cells[1], "\\|") { // a | inside the first cell
				continue
			}
			for _, n := range names {
				documented[n[1]] += p.path + " "
			}
			if len(names) == 0 || !regexp.MustCompile("^`[^`]*`$").MatchString(def) {
				continue // no default, or one said in words
			}
			def = strings.Trim(def, "`")
			name := names[len(names)-1][1]
			var defs []string
			for _, cmd := range commands {
				if f, ok := help[cmd][name]; ok {
					defs = append(defs, f.def)
				}
			}
			if len(defs) > 0 && !slices.Contains(defs, def) {
				t.Errorf("%s:%d: the table says --%s defaults to %q; --help says %q", p.path, i+1, name, def, defs)
			}
		}
	}
	for _, cmd := range commands {
		for f := range help[cmd] {
			if len(f) == 1 || f == "help" {
				continue
			}
			want := "docs/cli.md"
			if cmd == "serve" {
				want = "docs/serve.md"
			}
			if !strings.Contains(documented[f], "docs/cli.md") && !strings.Contains(documented[f], want) {
				t.Errorf("cdnpurge %s --%s is in no flag table of %s", cmd, f, want)
			}
		}
	}
}

var link = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// Every relative link points at a file that exists, and every #fragment at
// a heading of that page.
func TestLinks(t *testing.T) {
	all := pages(t)
	byPath := map[string]*page{}
	for _, p := range all {
		byPath[p.path] = p
	}
	for _, p := range all {
		for i, l := range p.lines {
			for _, m := range link.FindAllStringSubmatch(l, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				file, frag, _ := strings.Cut(target, "#")
				path := p.path
				if file != "" {
					path = filepath.Clean(filepath.Join(filepath.Dir(p.path), file))
				}
				if _, err := os.Stat(filepath.Join(repo, path)); err != nil {
					t.Errorf("%s:%d: link to %s: no such file", p.path, i+1, target)
					continue
				}
				if frag != "" {
					tp := byPath[path]
					if tp == nil {
						t.Errorf("%s:%d: link to %s: a fragment of a file that is no page", p.path, i+1, target)
					} else if !tp.anchors()[frag] {
						t.Errorf("%s:%d: link to %s: %s has no heading #%s", p.path, i+1, target, path, frag)
					}
				}
			}
		}
	}
}

// The README's quick start is two commands: the demo, and the whole test
// suite, which is what CI runs (.ci/run and the Dagger module's test
// function).
func TestQuickStart(t *testing.T) {
	readme := pages(t)[0]
	require.Equal(t, "README.md", readme.path)
	var quick []command
	for _, b := range readme.blocks() {
		if b.lang == "sh" && readme.heading(b.line) == "Quick start" {
			quick = append(quick, b.commands()...)
		}
	}
	require.Len(t, quick, 2, "README.md's quick start has two commands: the demo and the test suite")
	var demo, test string
	for _, c := range quick {
		cmd := strings.TrimSpace(stripComment(c.text))
		switch {
		case strings.Contains(cmd, "demo"):
			demo = cmd
		case strings.Contains(cmd, "test"):
			test = cmd
		}
	}
	require.NotEmpty(t, demo, "README.md's quick start: no demo command")
	require.NotEmpty(t, test, "README.md's quick start: no test command")

	ci, err := os.ReadFile(filepath.Join(repo, ".ci", "run"))
	require.NoError(t, err)
	var lines []string
	for _, l := range strings.Split(string(ci), "\n") {
		lines = append(lines, strings.TrimSpace(l))
	}
	assert.Contains(t, lines, test, ".ci/run must run the README's test command, %q, as a line of its own", test)
	assert.Equal(t, test, strings.Join(containers.Test().Args, " "), "the Dagger module's test function must run the README's test command")

	// The Go the README asks for is the one go.mod needs.
	mod, err := os.ReadFile(filepath.Join(repo, "go.mod"))
	require.NoError(t, err)
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	require.NotNil(t, goVersion)
	text := strings.Join(readme.lines, "\n")
	assert.Contains(t, text, "Go "+string(goVersion[1])+" or newer", "README.md must ask for the Go go.mod needs")
}
