package cli

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/fleet/fleettest"
)

// candidates runs __complete in-process and returns its answer's
// candidates (without descriptions) and directives.
func candidates(t *testing.T, words ...string) []string {
	t.Helper()
	r := run(t, nil, "", append([]string{completeCmd}, words...)...)
	require.Equal(t, ExitOK, r.code, r.stderr)
	require.Empty(t, r.stderr)
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		if l != "" {
			c, _, _ := strings.Cut(l, "\t")
			out = append(out, c)
		}
	}
	return out
}

func commandNames() []string {
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	return names
}

func TestCompleteWhatComesNext(t *testing.T) {
	names := commandNames()
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{""}, names},
		{[]string{"pu"}, []string{"purge"}},
		{[]string{"-"}, []string{"--help", "--version"}},
		{[]string{"help", ""}, names},
		{[]string{"completion", ""}, []string{"bash", "zsh", "fish"}},
		{[]string{"purge", "--rec"}, []string{"--record"}},
		{[]string{"purge", "-dns"}, []string{"-dns-name", "-dns-timeout"}},
		{[]string{"purge", "--record", ""}, []string{"aaaa", "a", "srv"}},
		{[]string{"purge", "--record", "a"}, []string{"aaaa", "a"}},
		{[]string{"purge", "-record", "s"}, []string{"srv"}},
		{[]string{"purge", "--format", ""}, []string{"text", "json", "markdown"}},
		{[]string{"purge", "--format="}, []string{"--format=text", "--format=json", "--format=markdown"}},
		{[]string{"ban", "--scheme", ""}, []string{"http", "https"}},
		{[]string{"verify", "--expect", ""}, []string{"current", "hit", "fresh", "stale", "miss", "any"}},
		{[]string{"verify", "--expect="}, []string{"--expect=current", "--expect=hit", "--expect=fresh", "--expect=stale", "--expect=miss", "--expect=any"}},
		{[]string{"purge", "--verify="}, []string{"--verify=purged", "--verify=current", "--verify=hit", "--verify=fresh", "--verify=stale", "--verify=miss", "--verify=any"}},
		{[]string{"purge", "--verify=miss,h"}, []string{"--verify=miss,hit"}},
		{[]string{"demo", "--mode", ""}, []string{"auto", "netns", "loopback"}},
		{[]string{"purge", "--urls-file", ""}, []string{directiveFiles}},
		{[]string{"purge", "--token-file="}, []string{directiveFiles}},
		{[]string{"demo", "--varnishd", ""}, []string{directiveFiles}},
		{[]string{"purge", "--url", ""}, nil},
		{[]string{"purge", "--url", "https://e.com/", "--dns-name", "x", "--for"}, []string{"--format"}},
		{[]string{"purge", "--verify", "--dry"}, []string{"--dry-run"}},
		{[]string{"purge", "x"}, nil},
		{[]string{"nonsense", ""}, nil},
		{[]string{"version", ""}, nil},
	} {
		got := candidates(t, tc.words...)
		assert.Equal(t, tc.want, got, "%q", tc.words)
	}
}

// Completion is generated from the commands' flag sets: every flag of
// every command is offered, with its help's first words.
func TestCompleteOffersEveryFlag(t *testing.T) {
	for _, c := range commands() {
		fs := (&App{}).flagsOf(c)
		if fs == nil {
			continue
		}
		got := map[string]bool{}
		for _, cand := range candidates(t, c.name, "--") {
			got[cand] = true
		}
		fs.VisitAll(func(fl *flag.Flag) {
			if _, short := shorthands[fl.Name]; !short {
				assert.True(t, got["--"+fl.Name], "cdnpurge %s --%s is not offered", c.name, fl.Name)
			}
		})
		assert.Len(t, got, countFlags(fs), c.name)
	}
	r := run(t, nil, "", completeCmd, "purge", "--dns-n")
	assert.Equal(t, "--dns-name\tthe internal DNS name whose records list EVERY instance\n", r.stdout)
}

func countFlags(fs *flags) int {
	n := 0
	fs.VisitAll(func(fl *flag.Flag) {
		if _, short := shorthands[fl.Name]; !short {
			n++
		}
	})
	return n
}

// completion writes a script for each shell, a usage error for others.
func TestCompletionCommand(t *testing.T) {
	for shell, first := range map[string]string{"bash": "# bash completion", "zsh": "#compdef cdnpurge", "fish": "# fish completion"} {
		r := run(t, nil, "", "completion", shell)
		assert.Equal(t, ExitOK, r.code, shell)
		assert.True(t, strings.HasPrefix(r.stdout, first), shell)
		assert.Contains(t, r.stdout, completeCmd, "%s asks cdnpurge itself", shell)
	}
}

// completionEnv builds cdnpurge and returns its path and a PATH with it
// first, so that the scripts find it as "cdnpurge".
func completionEnv(t *testing.T) (bin string, env []string) {
	t.Helper()
	bin = binary(t)
	env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"), "HOME="+t.TempDir())
	return bin, env
}

// needShell finds shell, or skips (fails when CDNPURGE_E2E=require: ci/deps.sh
// installs zsh and fish).
func needShell(t *testing.T, shell string) string {
	t.Helper()
	p, err := exec.LookPath(shell)
	if err != nil {
		if fleettest.Required() {
			t.Fatalf("CDNPURGE_E2E=require: %s is not installed (bash ci/deps.sh)", shell)
		}
		t.Skipf("%s is not installed (bash ci/deps.sh installs it)", shell)
	}
	return p
}

// The bash script, sourced in a real bash, completes as COMP_WORDS says:
// the words as bash splits them (at '=' too, as COMP_WORDBREAKS says).
func TestCompletionBash(t *testing.T) {
	bash := needShell(t, "bash")
	bin, env := completionEnv(t)
	dir := t.TempDir()
	for _, name := range []string{"changed.txt", "changes.md", "other"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), nil, 0o644))
	}
	for _, tc := range []struct {
		words []string // COMP_WORDS after the command; the last is completed
		want  []string
	}{
		{[]string{"pu"}, []string{"purge"}},
		{[]string{""}, sortedLines(strings.Join(commandNames(), "\n"))},
		{[]string{"purge", "--rec"}, []string{"--record"}},
		{[]string{"purge", "--record", ""}, []string{"a", "aaaa", "srv"}},
		{[]string{"verify", "--expect", ""}, []string{"any", "current", "fresh", "hit", "miss", "stale"}},
		{[]string{"purge", "--format", "="}, []string{"json", "markdown", "text"}},
		{[]string{"purge", "--format", "=", "m"}, []string{"markdown"}},
		{[]string{"purge", "--verify", "=", "miss,h"}, []string{"miss,hit"}},
		{[]string{"purge", "--scheme", "http"}, []string{"http", "https"}},
		{[]string{"demo", "--mode", "l"}, []string{"loopback"}},
		{[]string{"completion", "z"}, []string{"zsh"}},
		{[]string{"purge", "--urls-file", filepath.Join(dir, "chan")}, []string{filepath.Join(dir, "changed.txt"), filepath.Join(dir, "changes.md")}},
		{[]string{"purge", "--url", ""}, nil},
	} {
		words := append([]string{"cdnpurge"}, tc.words...)
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + w + "'"
		}
		script := `source <(cdnpurge completion bash) || exit 9
complete -p cdnpurge >/dev/null || exit 8
COMP_WORDS=(` + strings.Join(quoted, " ") + `)
COMP_CWORD=` + strconv.Itoa(len(words)-1) + `
COMP_LINE="${COMP_WORDS[*]}"
COMP_POINT=${#COMP_LINE}
_cdnpurge
printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.Command(bash, "--norc", "--noprofile", "-c", script)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s\n%s", bin, out)
		assert.Equal(t, tc.want, sortedLines(string(out)), "%q", tc.words)
	}
}

// The zsh script, sourced after compinit in a real zsh, hands what
// cdnpurge answers to zsh's completion functions (_describe and _files
// stand in for the completion widget, which needs a terminal).
func TestCompletionZsh(t *testing.T) {
	zsh := needShell(t, "zsh")
	_, env := completionEnv(t)
	out, err := exec.Command(zsh, "-n", "-c", run(t, nil, "", "completion", "zsh").stdout).CombinedOutput()
	require.NoError(t, err, "zsh -n: %s", out)
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{"pu"}, []string{"purge:send PURGE for URLs (or tags) to every instance and report each"}},
		{[]string{"purge", "--rec"}, []string{"--record:record type listing the instances"}},
		{[]string{"purge", "--record", ""}, []string{"a", "aaaa", "srv"}},
		{[]string{"purge", "--verify=miss,"}, []string{"--verify=miss,any", "--verify=miss,current", "--verify=miss,fresh", "--verify=miss,hit", "--verify=miss,miss", "--verify=miss,purged", "--verify=miss,stale"}},
		{[]string{"verify", "--expect", "s"}, []string{"stale"}},
		{[]string{"purge", "--urls-file", ""}, []string{"_files"}},
	} {
		words := append([]string{"cdnpurge"}, tc.words...)
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + w + "'"
		}
		script := `autoload -U compinit && compinit -u -D || exit 9
source <(cdnpurge completion zsh) || exit 8
[[ $_comps[cdnpurge] == _cdnpurge ]] || exit 7
_describe() { print -rl -- "${(@P)4}" }
_files() { print -r -- _files }
words=(` + strings.Join(quoted, " ") + `)
CURRENT=${#words}
_cdnpurge`
		cmd := exec.Command(zsh, "-f", "-c", script)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Equal(t, tc.want, sortedLines(string(out)), "%q", tc.words)
	}
}

// The fish script, sourced in a real fish, completes through fish's own
// engine (complete -C).
func TestCompletionFish(t *testing.T) {
	fish := needShell(t, "fish")
	_, env := completionEnv(t)
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"cdnpurge pu", []string{"purge\tsend PURGE for URLs (or tags) to every instance and report each"}},
		{"cdnpurge purge --rec", []string{"--record\trecord type listing the instances"}},
		{"cdnpurge purge --record ", []string{"a", "aaaa", "srv"}},
		{"cdnpurge purge --format=j", []string{"--format=json"}},
		{"cdnpurge verify --expect f", []string{"fresh"}},
		{"cdnpurge demo --mode n", []string{"netns"}},
		{"cdnpurge purge --verify=miss,hi", []string{"--verify=miss,hit"}},
	} {
		cmd := exec.Command(fish, "--no-config", "-c", `cdnpurge completion fish | source; complete -C "$argv[1]"`, tc.line)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Equal(t, tc.want, sortedLines(string(out)), "%q", tc.line)
	}
}

func sortedLines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// zshTerminal drives an interactive zsh in a pseudo-terminal (zsh/zpty):
// it loads the script after compinit and, for each line given, types the
// line and TAB and prints the line as zsh's own completion left it (TAB
// runs expand-or-complete, its usual widget, then writes the line to a
// file and clears it). Each step waits for the file, with a deadline.
const zshTerminal = `zmodload zsh/zpty
dir=$(mktemp -d)
zpty z 'zsh -f -i'
zpty -w z "PS1=''; autoload -U compinit; compinit -u -D; source <(cdnpurge completion zsh)
__tab() { zle expand-or-complete; print -r -- \"\$BUFFER\" > $dir/buffer; BUFFER= }; zle -N __tab; bindkey '^I' __tab
: > $dir/ready"
wait_for() { for i in {1..600}; do [[ -s $dir/$1 ]] || [[ $1 == ready && -e $dir/$1 ]] && return; sleep 0.05; done; print "timed out waiting for $1" >&2; zpty -d z; exit 1 }
wait_for ready
for line in "$@"; do
  rm -f $dir/buffer
  zpty -w -n z "$line"$'\t'
  wait_for buffer
  cat $dir/buffer
done
zpty -d z
rm -rf $dir
`

// In a terminal, zsh's completion system (compinit, _describe, _files)
// completes with the script as a user's shell would.
func TestCompletionZshInATerminal(t *testing.T) {
	zsh := needShell(t, "zsh")
	_, env := completionEnv(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "changed-urls.txt"), nil, 0o644))
	driver := filepath.Join(t.TempDir(), "drive.zsh")
	require.NoError(t, os.WriteFile(driver, []byte(zshTerminal), 0o644))
	var lines, want []string
	for _, tc := range []struct{ line, want string }{
		{"cdnpurge pu", "cdnpurge purge "},
		{"cdnpurge purge --rec", "cdnpurge purge --record "},
		{"cdnpurge purge --record s", "cdnpurge purge --record srv "},
		{"cdnpurge purge --record ", "cdnpurge purge --record "}, // aaaa, a, srv: nothing to insert
		{"cdnpurge verify --expect st", "cdnpurge verify --expect stale "},
		{"cdnpurge purge --verify=miss,h", "cdnpurge purge --verify=miss,hit "},
		{"cdnpurge purge --format=ma", "cdnpurge purge --format=markdown "},
		{"cdnpurge demo --mode lo", "cdnpurge demo --mode loopback "},
		{"cdnpurge ban --scheme https", "cdnpurge ban --scheme https "},
		{"cdnpurge purge --urls-file " + dir + "/cha", "cdnpurge purge --urls-file " + dir + "/changed-urls.txt "},
	} {
		lines = append(lines, tc.line)
		want = append(want, tc.want)
	}
	cmd := exec.Command(zsh, "-f", driver)
	cmd.Args = append(cmd.Args, lines...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, strings.Join(want, "\n")+"\n", string(out))
}
