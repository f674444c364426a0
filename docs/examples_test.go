package docs

// TestExamples runs every example in README.md and docs/*.md: see
// docs/testing.md, "Every example in these pages is run", for what is run
// and what is only checked. The examples name a production fleet
// (cdn.internal, 10.0.0.7:9000, https://purge.example.com); each name is
// mapped onto a real local one before the command runs, and a command that
// would still reach any address but this machine's loopback is refused.

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/fleet"
	"github.com/cdnpurge/cdnpurge/fleet/fleettest"
	"github.com/cdnpurge/cdnpurge/internal/dnsserver"
	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/report/reporttest"
)

// defaultURLs fill a URL file an example names (changed.txt).
var defaultURLs = []string{"https://example.com/", "https://example.com/feed", "https://example.com/episodes/1"}

// world is what the examples run against.
type world struct {
	t        *testing.T // the page's test
	root     *testing.T // the whole run's: what lives as long as the world is stopped with it
	bin      string     // the directory holding the cdnpurge built from this checkout
	fleet    *fleet.Fleet
	dns      *dnsserver.Server
	names    map[string]bool // DNS names listed so far
	token    string          // the fleet's purge token
	flyToken string
	apiToken string
	flys     map[string]*fleet.FlyEdge // by app
	serve    string                    // the shared serve's HOST:PORT
	work     string                    // the commands' working directory
	tmp      string                    // files the mapping makes
	summary  string                    // $GITHUB_STEP_SUMMARY
	help     map[string]map[string]helpFlag
}

func TestExamples(t *testing.T) {
	fleettest.NeedXkey(t)
	w := newWorld(t)
	for _, p := range pages(t) {
		t.Run(p.path, func(t *testing.T) {
			w.t = t
			for _, b := range p.blocks() {
				w.runBlock(t, b)
			}
		})
	}
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, root: t, names: map[string]bool{}, flys: map[string]*fleet.FlyEdge{},
		token: "docs-purge-token-" + strconv.FormatInt(time.Now().UnixNano(), 36), flyToken: "docs-fly-token-0123456789",
		apiToken: "docs-api-token-0123456789", tmp: t.TempDir(), work: t.TempDir()}
	w.bin = buildCLI(t)
	w.help = helpFlags(t, filepath.Join(w.bin, "cdnpurge"))
	w.fleet = fleettest.Start(t, fleet.Options{N: 3, Mode: fleet.ModeLoopback, Token: w.token, Xkey: true})
	var err error
	w.dns, err = dnsserver.Start("127.0.0.1")
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.dns.Close() })
	w.summary = filepath.Join(w.tmp, "step-summary.md")
	require.NoError(t, os.WriteFile(filepath.Join(w.work, "changed.txt"), []byte(strings.Join(defaultURLs, "\n")+"\n"), 0o644))
	w.gitRepo()
	w.startSharedServe()
	return w
}

// buildCLI builds cmd/cdnpurge into a directory of its own, the PATH the
// examples run with.
func buildCLI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "cdnpurge"), "github.com/cdnpurge/cdnpurge/cmd/cdnpurge").CombinedOutput()
	require.NoError(t, err, "build cdnpurge: %s", out)
	return dir
}

// gitRepo makes the working directory a Git repository whose last commit
// changed two pages under public/, for the examples that purge what a
// commit changed.
func (w *world) gitRepo() {
	run := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-c", "user.name=docs", "-c", "user.email=docs@example.com"}, args...)...)
		cmd.Dir = w.work
		out, err := cmd.CombinedOutput()
		require.NoError(w.t, err, "git %v: %s", args, out)
	}
	write := func(name, content string) {
		p := filepath.Join(w.work, "public", name)
		require.NoError(w.t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(w.t, os.WriteFile(p, []byte(content), 0o644))
	}
	run("init", "-q")
	write("feed", "v1")
	write("episodes/1", "v1")
	run("add", ".")
	run("commit", "-qm", "v1")
	write("feed", "v2")
	write("episodes/1", "v2")
	run("commit", "-qam", "v2")
}

// freeAddr is a loopback address with a port the kernel chose.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// startSharedServe starts the serve that --via, localhost:8090 and
// https://purge.example.com stand for.
func (w *world) startSharedServe() {
	tokens := filepath.Join(w.tmp, "shared-api-tokens")
	require.NoError(w.t, os.WriteFile(tokens, []byte("ci "+w.apiToken+"\n"), 0o600))
	w.serve = freeAddr(w.t)
	args := []string{"serve", "--listen", w.serve, "--api-token-file", tokens, "--journal", filepath.Join(w.tmp, "shared-journal.db"),
		"--port", strconv.Itoa(w.fleet.Port)}
	for _, m := range w.fleet.Members {
		args = append(args, "--instance", m.Instance.Host)
	}
	cmd := exec.Command(filepath.Join(w.bin, "cdnpurge"), args...)
	cmd.Env = append(os.Environ(), "PURGE_TOKEN="+w.token)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	exited, _, err := start(cmd)
	require.NoError(w.t, err)
	w.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	})
	require.NoError(w.t, waitHealthy(w.serve, exited), "the shared serve: %s", out.String())
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitHealthy polls a serve's /healthz until it answers 200, the process
// exits (exited is closed), or 30 s pass.
func waitHealthy(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("serve exited before it was healthy")
		default:
		}
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("serve at %s: no healthy /healthz within 30s", addr)
}

// start starts cmd; the channel is closed when it has exited, and err then
// holds what Wait returned.
func start(cmd *exec.Cmd) (exited chan struct{}, err *error, startErr error) {
	if startErr = cmd.Start(); startErr != nil {
		return nil, nil, startErr
	}
	exited, err = make(chan struct{}), new(error)
	go func() {
		*err = cmd.Wait()
		close(exited)
	}()
	return exited, err, nil
}

// runBlock runs or checks one fenced block.
func (w *world) runBlock(t *testing.T, b block) {
	switch b.lang {
	case "sh":
		prefix := ""
		for _, c := range b.commands() {
			prefix = w.runCommand(t, c, prefix)
		}
	case "go":
		w.runGo(t, b)
	case "dockerfile":
		w.checkDockerfile(t, b)
	case "toml":
		w.runServeLine(t, b, tomlCmd(t, b), nil)
	case "ini":
		args, files := systemdExecStart(t, b)
		w.runServeLine(t, b, args, files)
	case "yaml":
		// GitHub Actions workflows: actionlint checks them (ci/tools/docs).
	case "text":
		// Output as a command prints it, not an example to run.
	case "json":
		checkJSON(t, b)
	default:
		t.Errorf("%s: a code block of kind %q: no test runs or checks it (give it a kind the docs test knows: sh, go, yaml, toml, ini, dockerfile, text, json)", b.where(-1), b.lang)
	}
}

// assignment reports whether a command only assigns a shell variable (NAME=VALUE,
// export NAME=VALUE) and the name.
func assignment(ws []word) (string, bool) {
	if len(ws) == 2 && ws[0].val == "export" {
		ws = ws[1:]
	}
	if len(ws) != 1 {
		return "", false
	}
	name, _, ok := strings.Cut(ws[0].raw, "=")
	if !ok || !regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`).MatchString(name) {
		return "", false
	}
	return name, true
}

var placeholder = regexp.MustCompile(`^([A-Z_][A-Z0-9_]*)=\.\.\.$`)

// runCommand runs one command of a shell block; prefix holds the block's
// earlier assignments. It returns the prefix for the next command.
func (w *world) runCommand(t *testing.T, c command, prefix string) string {
	t.Helper()
	ws := words(c.text)
	// NAME=... is the token the user has: the world's, in the environment.
	for i, x := range ws {
		if m := placeholder.FindStringSubmatch(x.raw); m != nil {
			ws[i] = word{raw: m[1] + `="$` + m[1] + `"`, val: m[1] + "=$" + m[1]}
		}
	}
	if name, ok := assignment(ws); ok {
		if !strings.Contains(ws[len(ws)-1].raw, "$(") {
			return prefix + ws[len(ws)-1].raw + "\n"
		}
		script, err := w.rewrite(ws)
		if err != nil {
			t.Errorf("%s\n  %v", c, err)
			return prefix
		}
		w.warm(t, c, script)
		out, code := w.bash(prefix + script + "\nrc=$?\nprintf '\\000%s' \"$" + name + "\"\nexit $rc\n")
		if code != 0 {
			t.Errorf("%s\n  ran: %s\n  exit %d, want 0\n%s", c, script, code, indent(out))
			return prefix
		}
		i := strings.LastIndex(out, "\x00")
		return prefix + name + "=" + shellQuote(out[i+1:]) + "\n"
	}
	switch first := firstProgram(ws); first {
	case "dagger":
		w.checkDagger(t, c, ws)
		return prefix
	case "bash":
		w.runScript(t, c, ws)
		return prefix
	case "go":
		w.runGoTool(t, c, ws)
		return prefix
	case "cdnpurge", "curl", "git", "printf", "source":
	default:
		t.Errorf("%s\n  %q: the docs test cannot run or check this command: an example must be runnable here (see docs/testing.md)", c, first)
		return prefix
	}
	script, err := w.rewrite(ws)
	if err != nil {
		t.Errorf("%s\n  %v", c, err)
		return prefix
	}
	if sub := subcommand(ws); sub == "serve" {
		w.runServe(t, c.String(), prefix, script)
		return prefix
	} else if sub == "demo" && slices.ContainsFunc(ws, func(x word) bool { return x.val == "--keep" }) {
		t.Errorf("%s\n  demo --keep runs until Ctrl-C: show it in prose (its printed commands are tested by the cli package)", c)
		return prefix
	}
	w.warm(t, c, script)
	began := time.Now()
	out, code := w.bash(prefix + script)
	if code != 0 {
		t.Errorf("%s\n  ran: %s\n  exit %d, want 0\n%s", c, script, code, indent(out))
	} else {
		t.Logf("%s:%d: ok in %v", c.block.page.path, c.line, time.Since(began).Round(time.Millisecond))
	}
	return prefix
}

func indent(s string) string {
	if len(s) > 6000 {
		s = s[:3000] + "\n...\n" + s[len(s)-3000:]
	}
	return "    | " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    | ")
}

// firstProgram is the first word that is not an assignment.
func firstProgram(ws []word) string {
	for _, x := range ws {
		if !strings.Contains(x.raw, "=") || strings.HasPrefix(x.raw, "-") {
			return x.val
		}
	}
	return ""
}

// subcommand is the cdnpurge command the words run, if any.
func subcommand(ws []word) string {
	for i, x := range ws {
		if x.val == "cdnpurge" && i+1 < len(ws) {
			return ws[i+1].val
		}
	}
	return ""
}

// bash runs a script the way a user's shell would (pipefail, so that a
// pipe into cdnpurge fails when cdnpurge does), in the working directory,
// with cdnpurge on PATH and the tokens in the environment; it returns the
// combined output and the exit code.
func (w *world) bash(script string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", script)
	cmd.Dir = w.work
	cmd.Env = w.environ()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		return string(out) + err.Error(), -1
	}
	return string(out), 0
}

func (w *world) environ() []string {
	return append(os.Environ(),
		"PATH="+w.bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"PURGE_TOKEN="+w.token, "FLY_API_TOKEN="+w.flyToken, "CDNPURGE_API_TOKEN="+w.apiToken,
		"GITHUB_STEP_SUMMARY="+w.summary)
}

// flagValue is one flag of a cdnpurge command as the example gives it.
type flagValue struct {
	name, value string
	hasValue    bool
	raw         []string // as written
}

// rewrite maps the example's names onto the local fleet and returns the
// script to run.
func (w *world) rewrite(ws []word) (string, error) {
	var out []string
	for i := 0; i < len(ws); i++ {
		x := ws[i]
		switch {
		case x.val == "cdnpurge" && i+1 < len(ws):
			sub := ws[i+1].val
			j := i + 2
			for j < len(ws) && !isOperator(ws[j].val) {
				j++
			}
			args, err := w.rewriteArgs(sub, ws[i+2:j])
			if err != nil {
				return "", fmt.Errorf("cdnpurge %s: %w", sub, err)
			}
			out = append(out, "cdnpurge", ws[i+1].raw)
			out = append(out, args...)
			i = j - 1
		case x.val == "curl":
			out = append(out, "curl", "--fail-with-body", "-sS")
		default:
			raw := strings.ReplaceAll(x.raw, "$(curl ", "$(curl --fail-with-body -sS ")
			out = append(out, raw)
		}
	}
	script := strings.Join(out, " ")
	script = strings.ReplaceAll(script, "localhost:8090", w.serve)
	script = strings.ReplaceAll(script, "https://purge.example.com", "http://"+w.serve)
	return script, w.guard(script)
}

func isOperator(s string) bool {
	switch s {
	case "|", "||", "&&", ";", ">", ">>", "2>&1", "<":
		return true
	}
	return false
}

// rewriteArgs maps one cdnpurge command's flags.
func (w *world) rewriteArgs(sub string, ws []word) ([]string, error) {
	flags := w.help[sub]
	var fs []flagValue
	var rest []string // words that are no flag: kept as written
	for i := 0; i < len(ws); i++ {
		x := ws[i]
		if !strings.HasPrefix(x.val, "-") || x.val == "-" {
			rest = append(rest, x.raw)
			continue
		}
		name, value, eq := strings.Cut(strings.TrimLeft(x.val, "-"), "=")
		f := flagValue{name: name, value: value, hasValue: eq, raw: []string{x.raw}}
		if hf, ok := flags[name]; ok && hf.takesValue && !eq && i+1 < len(ws) {
			f.value, f.hasValue = ws[i+1].val, true
			f.raw = append(f.raw, ws[i+1].raw)
			i++
		}
		fs = append(fs, f)
	}
	has := func(name string) (flagValue, bool) {
		i := slices.IndexFunc(fs, func(f flagValue) bool { return f.name == name })
		if i < 0 {
			return flagValue{}, false
		}
		return fs[i], true
	}
	set := func(name, value string) { // replace every occurrence, or add one
		found := false
		for i := range fs {
			if fs[i].name == name {
				fs[i].value, fs[i].hasValue, fs[i].raw, found = value, true, nil, true
			}
		}
		if !found {
			fs = append(fs, flagValue{name: name, value: value, hasValue: true})
		}
	}
	file := func(name, content string) string {
		p := filepath.Join(w.tmp, name)
		require.NoError(w.t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	port := strconv.Itoa(w.fleet.Port)
	instanceAddrs := map[string]string{}
	if _, via := has("via"); !via && (sub == "purge" || sub == "ban" || sub == "verify" || sub == "serve") {
		if f, ok := has("fly-app"); ok {
			edge, err := w.fly(f.value)
			if err != nil {
				return nil, err
			}
			set("fly-api", edge.API)
			set("connect", edge.Addr)
			set("scheme", "http")
		}
		if f, ok := has("dns-name"); ok {
			rec, _ := has("record")
			if err := w.list(f.value, rec.value == "srv"); err != nil {
				return nil, err
			}
			set("resolver", w.dns.Addr)
			if rec.value != "srv" {
				set("record", "a")
			}
			if rec.value != "srv" || slices.ContainsFunc(fs, func(f flagValue) bool { return f.name == "port" }) {
				set("port", port)
			}
		}
		for i := range fs {
			if fs[i].name != "instance" {
				continue
			}
			host := fs[i].value
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			if _, ok := instanceAddrs[host]; !ok {
				instanceAddrs[host] = w.fleet.Members[len(instanceAddrs)%len(w.fleet.Members)].Instance.Host
			}
			fs[i].value, fs[i].raw = net.JoinHostPort(instanceAddrs[host], port), nil
		}
		if _, ok := has("port"); ok {
			set("port", port)
		}
		if _, ok := has("origin"); ok {
			set("origin", "http://"+w.fleet.Origin.Addr)
		}
	}
	for i := range fs {
		f := &fs[i]
		switch f.name {
		case "via":
			f.value, f.raw = "http://"+w.serve, nil
		case "token-file":
			f.value, f.raw = file("purge-token", w.token+"\n"), nil
		case "fly-token-file":
			f.value, f.raw = file("fly-token", w.flyToken+"\n"), nil
		case "api-token-file":
			content := w.apiToken + "\n"
			if sub == "serve" {
				content = "ci " + content
			}
			f.value, f.raw = file("api-tokens", content), nil
		case "listen":
			f.value, f.raw = freeAddr(w.t), nil
		case "journal":
			f.value, f.raw = filepath.Join(w.t.TempDir(), "journal.db"), nil
		case "urls-file":
			if f.value != "-" && !filepath.IsAbs(f.value) {
				p := filepath.Join(w.work, f.value)
				if _, err := os.Stat(p); err != nil {
					require.NoError(w.t, os.WriteFile(p, []byte(strings.Join(defaultURLs, "\n")+"\n"), 0o644))
				}
			}
		}
	}
	var out []string
	for _, f := range fs {
		if f.raw != nil {
			out = append(out, f.raw...)
			continue
		}
		if f.hasValue {
			out = append(out, "--"+f.name, shellQuote(f.value))
		} else {
			out = append(out, "--"+f.name)
		}
	}
	return append(out, rest...), nil
}

// list lists the fleet's instances under name in the test's DNS server:
// A records, or SRV records whose targets have A records.
func (w *world) list(name string, srv bool) error {
	name = strings.TrimSuffix(name, ".")
	if w.names[name] {
		return nil
	}
	w.names[name] = true
	for i, m := range w.fleet.Members {
		if !srv {
			if err := w.dns.Add(fmt.Sprintf("%s. 5 IN A %s", name, m.Instance.Host)); err != nil {
				return err
			}
			continue
		}
		target := fmt.Sprintf("member-%d.%s.", i+1, name)
		if err := w.dns.Add(fmt.Sprintf("%s 5 IN A %s", target, m.Instance.Host),
			fmt.Sprintf("%s. 5 IN SRV 0 0 %d %s", name, m.Instance.Port, target)); err != nil {
			return err
		}
	}
	return nil
}

// fly is the Fly.io stand-in for app, started once.
func (w *world) fly(app string) (*fleet.FlyEdge, error) {
	if e, ok := w.flys[app]; ok {
		return e, nil
	}
	e, err := w.fleet.StartFly(fleet.FlyOptions{App: app, Token: w.flyToken})
	if err != nil {
		return nil, err
	}
	w.root.Cleanup(func() { _ = e.Close() })
	w.flys[app] = e
	return e, nil
}

// connecting are the flags whose values cdnpurge connects to.
var connecting = []string{"instance", "resolver", "origin", "connect", "via", "fly-api", "listen"}

var urlHost = regexp.MustCompile(`https?://(\[[^\]]+\]|[^/:'"\s]+)`)

// guard refuses a script that would reach any address but loopback: the
// examples name production addresses, which the mapping must have
// replaced.
func (w *world) guard(script string) error {
	ws := expand(words(script))
	for i, x := range ws {
		name := strings.TrimLeft(x.val, "-")
		if !strings.HasPrefix(x.val, "--") || !slices.Contains(connecting, strings.SplitN(name, "=", 2)[0]) {
			continue
		}
		v := ""
		if _, after, ok := strings.Cut(name, "="); ok {
			v = after
		} else if i+1 < len(ws) {
			v = ws[i+1].val
		}
		if !loopback(v) {
			return fmt.Errorf("--%s %s is not on this machine: the docs test does not know how to map it onto the local fleet", strings.SplitN(name, "=", 2)[0], v)
		}
	}
	inCurl := false
	for i, x := range ws {
		if x.val == "curl" {
			inCurl = true
		}
		if isOperator(x.val) {
			inCurl = false
		}
		if !inCurl {
			continue
		}
		prev := ""
		if i > 0 {
			prev = ws[i-1].val
		}
		if prev == "-d" || prev == "-H" {
			continue
		}
		for _, m := range urlHost.FindAllStringSubmatch(x.val, -1) {
			if !loopback(m[1]) {
				return fmt.Errorf("curl to %s: not on this machine", m[0])
			}
		}
	}
	return nil
}

// expand replaces each word that holds a command substitution, NAME=$(...)
// or "$(...)", by the words inside it.
func expand(ws []word) []word {
	var out []word
	for _, x := range ws {
		i := strings.Index(x.raw, "$(")
		j := strings.LastIndex(x.raw, ")")
		if i < 0 || j < i {
			out = append(out, x)
			continue
		}
		out = append(out, expand(words(x.raw[i+2:j]))...)
	}
	return out
}

// loopback reports whether v (an address, HOST:PORT or URL) is this
// machine's loopback.
func loopback(v string) bool {
	if u, err := url.Parse(v); err == nil && u.Host != "" {
		v = u.Host
	}
	if h, _, err := net.SplitHostPort(v); err == nil {
		v = h
	}
	v = strings.Trim(v, "[]")
	if v == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(v)
	return err == nil && a.IsLoopback()
}

var exampleURL = regexp.MustCompile(`https?://[A-Za-z0-9.-]+\.[a-z]+(/[^\s'"\]\\,]*)?`)

// warm asks every instance for every URL the command names (and those of
// the URL file it reads), as visitors would before it runs: a purge then
// has copies to purge and a check for hits finds them. A URL checked after
// a tag purge is tagged first at the origin.
func (w *world) warm(t *testing.T, c command, script string) {
	t.Helper()
	urls := exampleURL.FindAllString(script, -1)
	if strings.Contains(script, "--urls-file") || strings.Contains(script, "changed.txt") {
		urls = append(urls, defaultURLs...)
	}
	ws := words(script)
	var tags []string
	for i, x := range ws {
		if x.val == "--tag" && i+1 < len(ws) {
			tags = append(tags, ws[i+1].val)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 10 * time.Second}
	for _, raw := range urls {
		u, err := purge.ParseURL(raw)
		if err != nil || loopback(raw) {
			continue
		}
		if len(tags) > 0 {
			require.NoError(t, w.fleet.Origin.Tag(ctx, u.Host, u.Target, tags...), c.String())
		}
		for _, m := range w.fleet.Members {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.Instance.String()+u.Target, nil)
			require.NoError(t, err)
			req.Host = u.Host
			req.Header.Set("Accept-Encoding", purge.DefaultVerifyAcceptEncoding)
			req.Header.Set("User-Agent", purge.DefaultVerifyUserAgent)
			resp, err := client.Do(req)
			require.NoError(t, err, "%s: warm %s on %s", c, raw, m.Instance)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
}

// runServe starts a serve an example gives, waits until it is healthy,
// sends one purge through it, and stops it with SIGTERM: it must exit 0.
func (w *world) runServe(t *testing.T, where, prefix, script string) {
	t.Helper()
	ws := words(script)
	listen, tokens := "", ""
	for i, x := range ws {
		switch x.val {
		case "--listen":
			listen = ws[i+1].val
		case "--api-token-file":
			tokens = ws[i+1].val
		}
	}
	if listen == "" {
		listen = "127.0.0.1:8090"
		t.Errorf("%s\n  serve without --listen listens on 127.0.0.1:8090, a fixed port the docs test does not use: give --listen", where)
		return
	}
	// Leading assignments stay before exec: NAME=VALUE exec PROGRAM.
	var assign, program []string
	for _, x := range ws {
		if len(program) == 0 && strings.Contains(x.raw, "=") && !strings.HasPrefix(x.raw, "-") {
			assign = append(assign, x.raw)
		} else {
			program = append(program, x.raw)
		}
	}
	cmd := exec.Command("bash", "-c", prefix+strings.Join(append(assign, "exec"), " ")+" "+strings.Join(program, " "))
	cmd.Dir, cmd.Env = w.work, w.environ()
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	exited, waitErr, err := start(cmd)
	require.NoError(t, err)
	defer func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	if err := waitHealthy(listen, exited); err != nil {
		t.Errorf("%s\n  ran: %s\n  %v\n%s", where, script, err, indent(out.String()))
		return
	}
	// One purge through it, with an API token when it has some (its
	// --allow may leave out this machine), else in transparent mode.
	var req *http.Request
	if tokens != "" {
		req, _ = http.NewRequest(http.MethodPost, "http://"+listen+"/v1/purge", strings.NewReader(`{"urls": ["https://example.com/feed"]}`))
		req.Header.Set("Authorization", "Bearer "+w.apiToken)
	} else {
		req, _ = http.NewRequest("PURGE", "http://"+listen+"/feed", nil)
		req.Host = "example.com"
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("%s\n  ran: %s\n  a purge through it: %v\n%s", where, script, err, indent(out.String()))
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("%s\n  ran: %s\n  a purge through it answered %s: %s\n%s", where, script, resp.Status, body, indent(out.String()))
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if *waitErr != nil {
			t.Errorf("%s\n  ran: %s\n  on SIGTERM: %v, want exit 0\n%s", where, script, *waitErr, indent(out.String()))
		} else {
			t.Logf("%s: serve started, healthy, purged through, stopped by SIGTERM with exit 0", where)
		}
	case <-time.After(45 * time.Second):
		t.Errorf("%s\n  ran: %s\n  still running 45s after SIGTERM\n%s", where, script, indent(out.String()))
	}
}

// runServeLine runs a serve command line a deployment file gives (fly.toml's
// cmd, a systemd unit's ExecStart), with the files it names made.
func (w *world) runServeLine(t *testing.T, b block, args []string, files map[string]string) {
	t.Helper()
	if len(args) == 0 {
		return
	}
	if args[0] != "serve" {
		t.Errorf("%s: the command line is cdnpurge %s; the docs test runs serve command lines only", b.where(-1), args[0])
		return
	}
	var ws []word
	for _, a := range append([]string{"cdnpurge"}, args...) {
		for k, v := range files {
			a = strings.ReplaceAll(a, k, v)
		}
		ws = append(ws, word{raw: shellQuote(a), val: a})
	}
	script, err := w.rewrite(ws)
	if err != nil {
		t.Errorf("%s: %v", b.where(-1), err)
		return
	}
	w.runServe(t, b.where(-1)+": "+strings.Join(args, " "), "", script)
}

// tomlCmd is the cmd array of a fly.toml block.
func tomlCmd(t *testing.T, b block) []string {
	t.Helper()
	text := strings.Join(b.text, "\n")
	m := regexp.MustCompile(`(?m)^\s*cmd\s*=\s*\[`).FindStringIndex(text)
	if m == nil {
		t.Errorf("%s: a toml block without a cmd = [...] line: the docs test checks fly.toml's serve command line", b.where(-1))
		return nil
	}
	// The array runs to its closing bracket outside a string ("[::]:8090"
	// has brackets of its own).
	start, end, inStr := m[1]-1, -1, false
	for i := start; i < len(text) && end < 0; i++ {
		switch c := text[i]; {
		case c == '"' && text[i-1] != '\\':
			inStr = !inStr
		case c == ']' && !inStr:
			end = i + 1
		}
	}
	var args []string
	if err := json.Unmarshal([]byte(text[start:max(end, start)]), &args); err != nil {
		t.Errorf("%s: fly.toml's cmd is not a list of strings: %v", b.where(-1), err)
		return nil
	}
	return args
}

// systemdExecStart is the cdnpurge command line of a systemd unit and the
// files it reads: %d/NAME (a LoadCredential) made in a directory of its own.
func systemdExecStart(t *testing.T, b block) ([]string, map[string]string) {
	t.Helper()
	var line string
	for i := 0; i < len(b.text); i++ {
		l := strings.TrimSpace(b.text[i])
		if !strings.HasPrefix(l, "ExecStart=") {
			continue
		}
		line = strings.TrimPrefix(l, "ExecStart=")
		for strings.HasSuffix(line, "\\") && i+1 < len(b.text) {
			i++
			line = strings.TrimSuffix(line, "\\") + " " + strings.TrimSpace(b.text[i])
		}
	}
	ws := words(line)
	if len(ws) == 0 || filepath.Base(ws[0].val) != "cdnpurge" {
		t.Errorf("%s: an ini block without ExecStart=.../cdnpurge ...: the docs test checks the unit's serve command line", b.where(-1))
		return nil, nil
	}
	creds := t.TempDir()
	files := map[string]string{}
	for _, l := range b.text {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "LoadCredential="); ok {
			name, _, _ := strings.Cut(v, ":")
			files["%d/"+name] = filepath.Join(creds, name)
			require.NoError(t, os.WriteFile(filepath.Join(creds, name), nil, 0o600)) // filled by the mapping
		}
	}
	var args []string
	for _, x := range ws[1:] {
		args = append(args, x.val)
	}
	return args, files
}

// runScript runs or checks a `bash ci/...` command: the README's two.
func (w *world) runScript(t *testing.T, c command, ws []word) {
	t.Helper()
	if len(ws) < 2 || !strings.HasPrefix(ws[1].val, "ci/") {
		t.Errorf("%s\n  bash runs only the project's scripts here (ci/...)", c)
		return
	}
	script := filepath.Join(repo, ws[1].val)
	if out, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
		t.Errorf("%s\n  bash -n %s: %v\n%s", c, ws[1].val, err, indent(string(out)))
		return
	}
	switch ws[1].val {
	case "ci/demo.sh":
		cmd := exec.Command("bash", append([]string{filepath.Base(script)}, vals(ws[2:])...)...)
		cmd.Dir = filepath.Dir(script)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%s\n  %v\n%s", c, err, indent(string(out)))
		}
	case "ci/test.sh":
		// The suite itself: CI runs exactly this command (TestQuickStart).
	case "ci/bench.sh", "ci/verify-memory.sh":
		// Measurements that take minutes on a quiet machine: checked to
		// exist and parse (above), run by hand.
	default:
		t.Errorf("%s\n  the docs test does not know how to run %s", c, ws[1].val)
	}
}

func vals(ws []word) []string {
	var out []string
	for _, x := range ws {
		out = append(out, x.val)
	}
	return out
}

// runGoTool runs `go install ./cmd/cdnpurge` (into a directory of its own)
// and checks `go test` commands: the tests and benchmarks they select exist.
func (w *world) runGoTool(t *testing.T, c command, ws []word) {
	t.Helper()
	args := vals(ws[1:])
	switch {
	case len(args) >= 2 && args[0] == "install":
		gobin := t.TempDir()
		cmd := exec.Command("go", args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GOBIN="+gobin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%s\n  %v\n%s", c, err, indent(string(out)))
			return
		}
		bin := filepath.Join(gobin, "cdnpurge")
		if out, err := exec.Command(bin, "version").CombinedOutput(); err != nil {
			t.Errorf("%s\n  the installed cdnpurge: %v\n%s", c, err, indent(string(out)))
		}
	case len(args) >= 1 && args[0] == "test":
		pattern, pkgs := "", []string(nil)
		for i := 1; i < len(args); i++ {
			switch a := args[i]; {
			case a == "-run" || a == "-bench":
				if a == "-bench" || pattern == "" {
					pattern = args[i+1]
				}
				i++
			case a == "-benchtime" || a == "-count" || a == "-timeout":
				i++
			case strings.HasPrefix(a, "./"):
				pkgs = append(pkgs, a)
			}
		}
		if pattern == "" || len(pkgs) == 0 {
			t.Errorf("%s\n  the docs test checks go test commands that select tests (-run or -bench) in packages", c)
			return
		}
		// -list matches top-level names: Serve/Latency is listed as BenchmarkServe.
		pattern = strings.SplitN(pattern, "/", 2)[0]
		cmd := exec.Command("go", append([]string{"test", "-list", pattern}, pkgs...)...)
		cmd.Dir = repo
		out, err := cmd.CombinedOutput()
		listed := 0
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "Test") || strings.HasPrefix(l, "Benchmark") || strings.HasPrefix(l, "Example") {
				listed++
			}
		}
		if err != nil || listed == 0 {
			t.Errorf("%s\n  go test -list %s %v: no test or benchmark matches (%v)\n%s", c, pattern, pkgs, err, indent(string(out)))
		}
	default:
		t.Errorf("%s\n  the docs test runs go install and checks go test; not this", c)
	}
}

// runGo builds a Go program a page gives, with the fleet's name, resolver
// and port in its purge.Job, and runs it against the fleet.
func (w *world) runGo(t *testing.T, b block) {
	t.Helper()
	src := strings.Join(b.text, "\n")
	if !strings.Contains(src, "package main") {
		t.Errorf("%s: a go block that is no program (package main): the docs test builds and runs each", b.where(-1))
		return
	}
	dns := regexp.MustCompile(`DNSName:\s*"([^"]+)",`)
	for _, m := range dns.FindAllStringSubmatch(src, -1) {
		require.NoError(t, w.list(m[1], false))
	}
	src = dns.ReplaceAllString(src, fmt.Sprintf(`DNSName: "$1", Resolver: %q, Record: purge.RecordA,`, w.dns.Addr))
	src = regexp.MustCompile(`Port:\s*\d+`).ReplaceAllString(src, "Port: "+strconv.Itoa(w.fleet.Port))
	dir := t.TempDir()
	main := filepath.Join(dir, "main.go")
	require.NoError(t, os.WriteFile(main, []byte(src), 0o644))
	abs, err := filepath.Abs(filepath.Join(repo, "docs", "internal", "goexample", "main.go"))
	require.NoError(t, err)
	overlay, err := json.Marshal(map[string]map[string]string{"Replace": {abs: main}})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "overlay.json"), overlay, 0o644))
	bin := filepath.Join(dir, "example")
	build := exec.Command("go", "build", "-overlay", filepath.Join(dir, "overlay.json"), "-o", bin, "./docs/internal/goexample")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Errorf("%s: the program does not build: %v\n%s", b.where(-1), err, indent(string(out)))
		return
	}
	w.warm(t, command{block: b, line: b.line, text: "go program"}, src)
	cmd := exec.Command(bin)
	cmd.Env = w.environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("%s: the program against the local fleet: %v, want exit 0\n%s", b.where(-1), err, indent(string(out)))
	}
}

// checkDockerfile runs the image's go build (its output in a directory of
// its own), and checks that what it copies exists and, on a static base
// image (distroless/static, scratch), is statically linked.
func (w *world) checkDockerfile(t *testing.T, b block) {
	t.Helper()
	out := t.TempDir()
	var lastFrom string
	built := map[string]string{}
	for i, l := range b.text {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			lastFrom = f[1]
			if v, ok := strings.CutPrefix(f[1], "golang:"); ok {
				w.checkGoImage(t, b.where(i), v)
			}
		case "RUN":
			run := strings.TrimSpace(strings.TrimPrefix(l, f[0]))
			m := regexp.MustCompile(`-o (/\S+)`).FindStringSubmatch(run)
			if !strings.Contains(run, "go build") || m == nil {
				t.Errorf("%s: RUN %s: the docs test runs a go build -o /PATH only", b.where(i), run)
				continue
			}
			built[m[1]] = filepath.Join(out, filepath.Base(m[1]))
			run = strings.Replace(run, m[0], "-o "+built[m[1]], 1)
			cmd := exec.Command("bash", "-c", run)
			cmd.Dir = repo
			if o, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s: RUN %s: %v\n%s", b.where(i), run, err, indent(string(o)))
			}
		case "COPY":
			if len(f) >= 4 && strings.HasPrefix(f[1], "--from=") {
				p, ok := built[f[2]]
				if !ok {
					t.Errorf("%s: COPY %s: nothing built it", b.where(i), f[2])
					continue
				}
				if strings.Contains(lastFrom, "static") || lastFrom == "scratch" {
					checkStatic(t, b.where(i), p)
				}
			}
		}
	}
}

// checkStatic fails unless the ELF file at p needs no dynamic loader.
func checkStatic(t *testing.T, where, p string) {
	t.Helper()
	f, err := elf.Open(p)
	if err != nil {
		t.Errorf("%s: %v", where, err)
		return
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Errorf("%s: %s is linked dynamically: a static base image cannot run it", where, p)
		}
	}
}

// checkGoImage fails when a golang image's version cannot build the module
// (go.mod's go directive).
func (w *world) checkGoImage(t *testing.T, where, tag string) {
	t.Helper()
	mod, err := os.ReadFile(filepath.Join(repo, "go.mod"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^go (\d+)\.(\d+)`).FindSubmatch(mod)
	require.NotNil(t, m)
	v := regexp.MustCompile(`^(\d+)\.(\d+)`).FindStringSubmatch(tag)
	if v == nil {
		t.Errorf("%s: golang:%s: give the image's Go version (golang:%s.%s)", where, tag, m[1], m[2])
		return
	}
	if v[1] != string(m[1]) || atoi(v[2]) < atoi(string(m[2])) {
		t.Errorf("%s: golang:%s cannot build a module that says go %s.%s", where, tag, m[1], m[2])
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// checkJSON checks a JSON block: it parses, and a report (it has a
// format_version) is valid against the schema, as the program writes it.
func checkJSON(t *testing.T, b block) {
	text := []byte(strings.Join(b.text, "\n"))
	var probe struct {
		FormatVersion *int `json:"format_version"`
	}
	if err := json.Unmarshal(text, &probe); err != nil {
		t.Errorf("%s: not JSON: %v", b.where(0), err)
		return
	}
	if probe.FormatVersion == nil {
		return
	}
	if err := reporttest.Validate(text); err != nil {
		t.Errorf("%s: a JSON report the schema refuses: %v", b.where(0), err)
	}
}
