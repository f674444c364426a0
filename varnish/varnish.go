// Package varnish ships cdnpurge's Varnish configuration (a VCL that accepts
// PURGE, soft PURGE, BAN by regular-expression headers and, with vmod xkey,
// tag purges, all guarded by an optional token, and sends an RFC 9211
// Cache-Status header) and runs it in a native varnishd process, for
// end-to-end tests and the local demo fleet. The contract is documented at the
// top of the template (VCLTemplate).
//
// Start can also run any other VCL template (Config.Template).
// testdata/styles holds templates configured the way other projects' fleets
// are (FOSHttpCache, kube-httpcache, the Varnish users guide, vmod purge's
// manual, the X-Cache VCL, pipely...), so that cdnpurge's verification can
// be tested against the cache evidence real fleets send.
package varnish

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/cdnpurge/cdnpurge/internal/proc"
	"github.com/cdnpurge/cdnpurge/internal/syncbuf"
)

//go:embed cdnpurge.vcl.tmpl
var vclTemplate string

// VCLTemplate returns the shipped VCL template, for users who render it
// with their own tools.
func VCLTemplate() string { return vclTemplate }

// VCL describes one instance's configuration.
type VCL struct {
	// Name identifies the instance in Cache-Status (a token: letters,
	// digits, '-', '_', '.'; starting with a letter). Default "varnish".
	Name string
	// Origin is the backend as HOST:PORT (an IP address or a host name).
	Origin string
	// TokenHeader is the header carrying the purge token; default Purge-Token.
	TokenHeader string
	// Grace is how long an expired object may still be served stale while it
	// is fetched again, in whole seconds; zero means 10s.
	Grace time.Duration
	// Xkey renders the VCL with vmod xkey: tag purges (xkey-purge and
	// xkey-softpurge headers) then work, and varnishd must have the vmod (see
	// HasVmod). When false, a tag purge is answered 501.
	Xkey bool
}

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]{0,62}$`)
	headerRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
)

// Render returns the shipped VCL for v.
func Render(v VCL) (string, error) { return RenderTemplate(vclTemplate, v) }

// RenderTemplate renders text, a Go text/template of a VCL, for v, with the
// same defaults and validation as Render. The template sees these fields:
//
//	{{.Name}}        the instance name (a token)
//	{{.OriginHost}}  the origin's host, without brackets for IPv6
//	{{.OriginPort}}  the origin's port
//	{{.TokenHeader}} the header that carries the purge token
//	{{.Grace}}       the grace in whole seconds (an integer)
//	{{.Xkey}}        whether the VCL may import vmod xkey (a bool)
//
// Referring to any other field is an error.
func RenderTemplate(text string, v VCL) (string, error) {
	if v.Name == "" {
		v.Name = "varnish"
	}
	if !nameRE.MatchString(v.Name) {
		return "", fmt.Errorf("vcl: instance name %q: use letters, digits, '-', '_' or '.', starting with a letter", v.Name)
	}
	if v.TokenHeader == "" {
		v.TokenHeader = "Purge-Token"
	}
	if !headerRE.MatchString(v.TokenHeader) {
		return "", fmt.Errorf("vcl: token header %q: use letters, digits and '-'", v.TokenHeader)
	}
	if v.Grace < 0 {
		return "", fmt.Errorf("vcl: grace %s: give a duration of zero (the default) or more", v.Grace)
	}
	if v.Grace == 0 {
		v.Grace = 10 * time.Second
	}
	host, port, err := net.SplitHostPort(v.Origin)
	if err != nil {
		return "", fmt.Errorf("vcl: origin %q: give HOST:PORT: %w", v.Origin, err)
	}
	if host == "" || strings.ContainsAny(host, "\"{}\\ ") {
		return "", fmt.Errorf("vcl: origin %q: bad host", v.Origin)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("vcl: origin %q: bad port", v.Origin)
	}
	t, err := template.New("vcl").Option("missingkey=error").Parse(text)
	if err != nil {
		return "", fmt.Errorf("vcl: template: %w", err)
	}
	var b bytes.Buffer
	err = t.Execute(&b, map[string]any{
		"Name": v.Name, "OriginHost": host, "OriginPort": port,
		"TokenHeader": v.TokenHeader, "Grace": int(v.Grace.Seconds()),
		"Xkey": v.Xkey,
	})
	if err != nil {
		return "", fmt.Errorf("vcl: render: %w", err)
	}
	return b.String(), nil
}

// Config is one varnishd process.
type Config struct {
	VCL
	// Template, when not empty, is rendered (see RenderTemplate) instead of
	// the shipped VCL, e.g. to run a fleet configured like another project's.
	Template string
	// Listen is the address varnishd serves on, HOST:PORT.
	Listen string
	// Token, when set, is passed to varnishd as PURGE_TOKEN.
	Token string
	// Storage is varnishd's -s argument; default DefaultStorage.
	Storage string
	// Varnishd is the program; default "varnishd" from PATH.
	Varnishd string
	// Wrap runs varnishd through another command, e.g.
	// ["ip", "netns", "exec", "ns1"] to start it in a network namespace.
	Wrap []string
	// Dir is the directory in which the instance's own directory (VCL,
	// varnishd's working files) is made; default os.TempDir().
	Dir string
	// StartTimeout bounds the wait for varnishd to answer; default 30s.
	StartTimeout time.Duration
}

// DefaultStorage is the cache storage of an instance (varnishd -s).
const DefaultStorage = "malloc,32m"

// Argv is what varnishd is started with, besides the VCL's content.
type Argv struct {
	// Listen is the address to serve HTTP on: HOST:PORT, or :PORT for
	// every address (a container's).
	Listen string
	// VCLFile is the VCL's path.
	VCLFile string
	// WorkDir is varnishd's working directory (-n); empty leaves it to
	// varnishd's default, for a process alone on its filesystem.
	WorkDir string
	// Storage is the cache storage (-s); empty means DefaultStorage.
	Storage string
}

// Args returns varnishd's arguments (the program not included) for a: in
// the foreground, without a management interface, with the parameters the
// shipped VCL relies on. The native runner (Start) and the Dagger module's
// Varnish service both start varnishd with these.
func Args(a Argv) []string {
	if a.Storage == "" {
		a.Storage = DefaultStorage
	}
	args := []string{"-F"}
	if a.WorkDir != "" {
		args = append(args, "-n", a.WorkDir)
	}
	return append(args, "-a", a.Listen, "-f", a.VCLFile, "-s", a.Storage, "-T", "none",
		"-p", "http_gzip_support=off", // the origin's encodings are the variants (see the VCL)
		"-p", "ban_lurker_sleep=0.01", // let BAN lurk quickly
		"-p", "thread_pool_min=10", "-p", "thread_pools=1")
}

// ErrNotInstalled says that varnishd is not on this machine.
var ErrNotInstalled = errors.New("varnishd is not installed: on Debian or Ubuntu run 'sudo apt-get install -y varnish'")

// Lookup returns the varnishd program's path or ErrNotInstalled.
func Lookup(path string) (string, error) {
	if path == "" {
		path = "varnishd"
	}
	p, err := exec.LookPath(path)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
			if _, serr := os.Stat(filepath.Join(dir, path)); serr == nil && !strings.Contains(path, "/") {
				return filepath.Join(dir, path), nil
			}
		}
		return "", ErrNotInstalled
	}
	return p, nil
}

// PidFile, in an instance's directory, records its varnishd (the leader
// of its own process group) as "PID START": pid and start time (see package
// internal/proc).
const PidFile = "varnishd.pid"

// Process is a running varnishd.
type Process struct {
	Addr string // the address it serves on
	Name string
	Pid  int // varnishd's manager process, the leader of its process group

	cmd    *exec.Cmd
	dir    string
	out    *syncbuf.Buffer
	exited chan struct{}
	err    error // exit status, once exited is closed
}

// Start renders the VCL into a new directory, starts varnishd in the
// foreground (-F) and returns once it accepts connections on cfg.Listen.
// When varnishd fails or does not come up in time, the error includes what
// it printed. Call Stop when done.
func Start(ctx context.Context, cfg Config) (*Process, error) {
	bin, err := Lookup(cfg.Varnishd)
	if err != nil {
		return nil, err
	}
	tmpl := cfg.Template
	if tmpl == "" {
		tmpl = vclTemplate
	}
	vcl, err := RenderTemplate(tmpl, cfg.VCL)
	if err != nil {
		return nil, err
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return nil, fmt.Errorf("varnish: listen %q: give HOST:PORT: %w", cfg.Listen, err)
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	dir, err := os.MkdirTemp(cfg.Dir, "cdnpurge-varnish-")
	if err != nil {
		return nil, fmt.Errorf("varnish: %w", err)
	}
	// varnishd's worker process runs as an unprivileged user and must reach
	// its working directory.
	_ = os.Chmod(dir, 0o755)
	vclPath := filepath.Join(dir, "cdnpurge.vcl")
	if err := os.WriteFile(vclPath, []byte(vcl), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("varnish: write vcl: %w", err)
	}
	args := append(append(append([]string{}, cfg.Wrap...), bin),
		Args(Argv{Listen: cfg.Listen, VCLFile: vclPath, WorkDir: filepath.Join(dir, "work"), Storage: cfg.Storage})...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "PURGE_TOKEN="+cfg.Token)
	out := &syncbuf.Buffer{Limit: 1 << 20}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("varnish: start %s: %w", bin, err)
	}
	// Recorded at once, pid and start time: a sweep after this process's
	// owner was killed stops exactly this varnishd and its group (it leads
	// one: Setpgid), and nothing that gets its pid later.
	if id, err := proc.Of(cmd.Process.Pid); err == nil {
		_ = os.WriteFile(filepath.Join(dir, PidFile), []byte(id.String()+"\n"), 0o644)
	}
	p := &Process{Addr: cfg.Listen, Name: cfg.Name, Pid: cmd.Process.Pid, cmd: cmd, dir: dir, out: out, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitReady(ctx, cfg); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// waitReady polls until varnishd accepts a connection, it exits, or the
// deadline passes.
func (p *Process) waitReady(ctx context.Context, cfg Config) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	dial := func() error {
		d := net.Dialer{Timeout: 200 * time.Millisecond}
		c, err := d.DialContext(ctx, "tcp", cfg.Listen)
		if err == nil {
			c.Close()
		}
		return err
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := dial(); err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("varnish %s: varnishd exited (%v) before serving on %s:\n%s", p.Name, p.err, cfg.Listen, p.Output())
		case <-ctx.Done():
			return fmt.Errorf("varnish %s: not serving on %s after %s:\n%s", p.Name, cfg.Listen, cfg.StartTimeout, p.Output())
		case <-tick.C:
		}
	}
}

// Output returns what varnishd has printed so far.
func (p *Process) Output() string { return p.out.String() }

// WorkDir is varnishd's working directory (its -n), which varnishlog,
// varnishncsa and varnishstat read to see what it received.
func (p *Process) WorkDir() string { return filepath.Join(p.dir, "work") }

// Stop stops varnishd (SIGTERM, then SIGKILL after 5s) and removes its
// directory. It is safe to call more than once.
func (p *Process) Stop() error {
	select {
	case <-p.exited:
	default:
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
	}
	return os.RemoveAll(p.dir)
}

// Running says whether varnishd is still running.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}
