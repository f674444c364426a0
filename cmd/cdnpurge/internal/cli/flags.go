package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/report"
)

// flags is a command's flag set, with the help it prints for --help.
type flags struct {
	*flag.FlagSet
	cmd, about, examples string
	// operands names what the command takes besides flags (completion's
	// SHELL); empty: nothing.
	operands string
	args     []string
	// grouped: help lists the flags by flagGroups (commands built on the
	// shared fleet flags); else in one list.
	grouped bool
	// exits is what help says about exit codes; empty: nothing.
	exits string
}

func newFlags(name, about, examples string) *flags {
	fs := flag.NewFlagSet("cdnpurge "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // help is printed once, by parse
	return &flags{FlagSet: fs, cmd: "cdnpurge " + name, about: about, examples: examples, exits: exitCodes}
}

// errProbe: parse stopped before parsing, for App.flagsOf.
var errProbe = errors.New("probe")

// parse parses args as the flag package does (-flag and --flag,
// --flag=value and --flag value, --bool and --bool=false; "--" ends the
// flags), each flag set with FlagSet.Set, so that every error names the
// flag and the fix: an unknown flag gets "did you mean", a value is checked
// against what the flag takes (a duration's unit, a number, one of a fixed
// set), and a step list given after a space gets "--verify=miss,hit".
// --help prints the help on stdout and returns errHelp. Every error is a
// usage error.
func (f *flags) parse(a *App, args []string) error {
	if a.probe != nil {
		a.probe(f)
		return errProbe
	}
	if a.inspect != nil {
		a.inspect(f.FlagSet)
	}
	a.parsed = f
	bare := "" // a flag without a value just before: --verify miss,hit
	for i := 0; i < len(args); i++ {
		s := args[i]
		if s == "--" {
			return f.operand(a, args[i+1:], "")
		}
		if len(s) < 2 || s[0] != '-' {
			return f.operand(a, args[i:], bare)
		}
		bare = ""
		dashes, name := "-", s[1:]
		if name[0] == '-' {
			dashes, name = "--", name[1:]
		}
		if name == "" || name[0] == '-' || name[0] == '=' {
			return usagef("%s: not a flag", s).hint("flags are written --name or --name=value")
		}
		name, value, hasValue := strings.Cut(name, "=")
		fl := f.Lookup(name)
		if fl == nil {
			if name == "help" || name == "h" {
				f.help(a.Stdout)
				return errHelp
			}
			return f.unknown(a, dashes, name)
		}
		switch {
		case isBool(fl) && !hasValue:
			value, bare = "true", "--"+name
		case !hasValue && i+1 == len(args):
			return f.needsValue(fl)
		case !hasValue:
			i++
			value = args[i]
			if n, _, _ := strings.Cut(strings.TrimLeft(value, "-"), "="); len(value) > 1 && value[0] == '-' && f.Lookup(n) != nil {
				return f.needsValue(fl).hint(fmt.Sprintf("%s is a flag: give --%s a value before it", value, name))
			}
		}
		if err := f.setFlag(fl, value, hasValue); err != nil {
			return err
		}
	}
	return nil
}

// operand handles what follows the flags: the command's operands, or an
// error saying where it should go.
func (f *flags) operand(a *App, rest []string, bare string) error {
	if len(rest) == 0 {
		return nil
	}
	if f.operands != "" {
		f.args = rest
		return nil
	}
	arg := rest[0]
	if bare != "" {
		fl := f.Lookup(strings.TrimPrefix(bare, "--"))
		c, isChoice := choiceOf(f.cmd, fl.Name)
		_, isStep := c.check(arg)
		if _, err := strconv.ParseBool(arg); err == nil || isChoice && isStep {
			return usagef("%s %s: %s takes a value only after '=', not after a space", bare, arg, bare).hint(fmt.Sprintf("write %s=%s", bare, arg))
		}
	}
	if strings.Contains(arg, "://") && f.Lookup("url") != nil {
		return usagef("unexpected argument %q", arg).hint("URLs go in --url URL (repeatable) or --urls-file FILE")
	}
	return usagef("unexpected argument %q", arg).hint(fmt.Sprintf("%s takes flags only; run '%s --help' for them", f.cmd, f.cmd))
}

// needsValue is the error for a flag given last without its value.
func (f *flags) needsValue(fl *flag.Flag) *usageError {
	arg, _ := flagArg(fl)
	return usagef("--%s needs a value", fl.Name).hint(fmt.Sprintf("write --%s %s", fl.Name, arg))
}

// unknown is the error for a flag this command does not have: "did you
// mean" among its own, or the command that has it.
func (f *flags) unknown(a *App, dashes, name string) error {
	typed := dashes + name
	switch {
	case name == "token" && f.Lookup("token-file") != nil:
		return usagef("%s: the purge token is never given in a flag (anyone on the machine can read a command line)", typed).
			hint("set PURGE_TOKEN, or give --token-file FILE (Dagger's --token env://PURGE_TOKEN reads the same variable)")
	case name == "fly-token" && f.Lookup("fly-token-file") != nil:
		return usagef("%s: the Fly.io token is never given in a flag (anyone on the machine can read a command line)", typed).
			hint("set FLY_API_TOKEN, or give --fly-token-file FILE")
	}
	err := usagef("unknown flag %s", typed)
	if s := suggest(name, f.names()); len(s) > 0 {
		return err.hint(didYouMean(dashes, s))
	}
	var others []string
	for _, c := range commands() {
		if o := a.flagsOf(c); o != nil && o.cmd != f.cmd && o.Lookup(name) != nil {
			others = append(others, "'"+o.cmd+"'")
		}
	}
	if len(others) > 0 {
		return err.hint(fmt.Sprintf("--%s is a flag of %s, not of '%s'; run '%s --help' for its flags", name, orList(others), f.cmd, f.cmd))
	}
	return err.hint(fmt.Sprintf("run '%s --help' for the flags", f.cmd))
}

// names lists the command's flags.
func (f *flags) names() []string {
	var n []string
	f.VisitAll(func(fl *flag.Flag) { n = append(n, fl.Name) })
	return n
}

// setFlag checks value against what fl takes, then sets it.
func (f *flags) setFlag(fl *flag.Flag, value string, attached bool) error {
	shown := "--" + fl.Name + " " + value
	if isBool(fl) || attached {
		shown = "--" + fl.Name + "=" + value
	}
	if c, ok := choiceOf(f.cmd, fl.Name); ok {
		if bad, ok := c.check(value); !ok {
			if c.list {
				ex := c.values[len(c.values)-2] + "," + c.values[1]
				if slices.Contains(c.values, "miss") && slices.Contains(c.values, "hit") {
					ex = "miss,hit" // the strict check after a purge
				}
				return usagef("%s: %q is not a step; the steps are %s", shown, bad, c.words()).
					hint(fmt.Sprintf("e.g. --%s=%s, or --%s alone", fl.Name, ex, fl.Name))
			}
			err := usagef("%s: use %s", shown, c.words())
			if s := suggest(bad, c.values); len(s) > 0 {
				return err.hint(didYouMean("--"+fl.Name+" ", s))
			}
			return err
		}
	}
	var v any
	if g, ok := fl.Value.(flag.Getter); ok {
		v = g.Get()
	}
	switch v.(type) {
	case time.Duration:
		if _, err := time.ParseDuration(value); err != nil {
			if _, nerr := strconv.ParseFloat(value, 64); nerr == nil {
				return usagef("%s: a duration needs a unit (ms, s, m or h)", shown).hint(fmt.Sprintf("did you mean --%s %ss?", fl.Name, value))
			}
			return usagef("%s: not a duration", shown).hint(fmt.Sprintf("give a number and a unit, e.g. --%s 5s, 500ms or 2m", fl.Name))
		}
	case int, int64:
		if _, err := strconv.ParseInt(value, 10, 64); err != nil {
			return usagef("%s: not a number", shown).hint(fmt.Sprintf("give a whole number, e.g. --%s %s", fl.Name, orDefault(fl.DefValue, "1")))
		}
	case bool:
		if _, err := strconv.ParseBool(value); err != nil {
			return usagef("%s: give true or false, or --%s alone", shown, fl.Name)
		}
	}
	if err := f.Set(fl.Name, value); err != nil {
		return usagef("%s: %v", shown, err)
	}
	return nil
}

func orDefault(s, def string) string {
	if s == "" || s == "0" || s == "[]" {
		return def
	}
	return s
}

// isBool says whether fl takes no value unless one is attached with '='.
func isBool(fl *flag.Flag) bool {
	b, ok := fl.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// set says whether the flag was given.
func (f *flags) set(name string) bool {
	given := false
	f.Visit(func(fl *flag.Flag) { given = given || fl.Name == name })
	return given
}

// positive refuses an explicit zero for flags whose zero would otherwise
// quietly mean the default.
func (f *flags) positive(names ...string) error {
	for _, n := range names {
		if !f.set(n) {
			continue
		}
		switch v := f.Lookup(n).Value.(flag.Getter).Get().(type) {
		case int:
			if v <= 0 {
				return usagef("--%s %d: give a positive number", n, v)
			}
		case time.Duration:
			if v <= 0 {
				return usagef("--%s %s: give a positive duration, e.g. 5s", n, v)
			}
		}
	}
	return nil
}

// list is a repeatable flag; with split, each value is also split on commas.
type list struct {
	v     *[]string
	split bool
}

func (l list) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}

func (l list) Set(s string) error {
	if !l.split {
		*l.v = append(*l.v, s)
		return nil
	}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l.v = append(*l.v, p)
		}
	}
	return nil
}

// ints is a repeatable integer flag.
type ints struct{ v *[]int }

func (l ints) String() string { return "" }
func (l ints) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not a number")
	}
	*l.v = append(*l.v, n)
	return nil
}

// target holds the flags every command that sends shares (purge, ban and
// verify), mapped straight into the job: where the instances are and how
// each is reached (what the Dagger module's constructor takes), the URLs,
// and how to report. A flag only some commands use is theirs. Texts are
// the same for every command: they say nothing only one of them does.
type target struct {
	f           *flags
	job         purge.Job
	urlsFile    string
	retries     int
	flyToken    string
	format      string
	verbose     bool
	summaryFile string
	summary     *os.File // --summary-file, opened before anything is sent
	// fleetOnly registers only where the instances are and how to reach
	// them (serve takes what to send from its clients).
	fleetOnly bool
	via       viaFlags
}

func (t *target) register(f *flags) {
	t.f = f
	f.grouped = true
	j := &t.job
	f.StringVar(&j.DNSName, "dns-name", "", "the internal DNS `name` whose records list EVERY instance, e.g. my-cdn.internal (never the public host: that reaches one instance)")
	f.Func("record", "record `type` listing the instances: aaaa (Fly.io's <app>.internal), a, or srv (each record's port is used) (default "+string(purge.DefaultRecord)+")", func(s string) error {
		j.Record = purge.RecordType(s)
		return nil
	})
	f.IntVar(&j.Port, "port", purge.DefaultPort, "the instances' `port` (for aaaa, a and --instance without a port)")
	f.StringVar(&j.Resolver, "resolver", "", "DNS server as `HOST:PORT` (default: the nameservers in /etc/resolv.conf, each in turn)")
	f.DurationVar(&j.DNSTimeout, "dns-timeout", purge.DefaultDNSTimeout, "how long to wait for each DNS answer")
	f.Var(list{v: &j.Instances}, "instance", "an instance as `ADDR[:PORT]` ([IPv6]:PORT for IPv6), instead of DNS; repeatable. A host name stands for every address it has: each is an instance")
	f.StringVar(&j.Fly.App, "fly-app", "", "Fly.io edge mode: the instances are every started machine of this `app`, listed by the Machines API (token from FLY_API_TOKEN or --fly-token-file) and each reached through the public edge with fly-force-instance-id; works from anywhere, no private network needed")
	f.StringVar(&t.flyToken, "fly-token-file", "", "with --fly-app: read the Fly.io API token from `FILE` (default: $FLY_API_TOKEN)")
	f.StringVar(&j.Fly.API, "fly-api", purge.DefaultFlyAPI, "with --fly-app: the Machines API's base `URL`")
	f.Var(list{v: &j.Fly.Regions, split: true}, "region", "with --fly-app: only machines in these `regions`, e.g. iad,sjc; repeatable")
	f.StringVar(&j.Fly.Connect, "connect", "", "with --fly-app: connect to `HOST:PORT` instead of the URL's host (a Flycast address, a staging proxy), as curl's --connect-to; TLS still names the URL's host")
	if !t.fleetOnly {
		f.Var(list{v: &j.URLs}, "url", "an absolute `URL` as the public sees it, e.g. https://example.com/feed; repeatable")
		f.StringVar(&t.urlsFile, "urls-file", "", "read URLs from `FILE`, one a line ('-' = stdin); blank lines and # comments skipped")
		t.via.register(f)
	}
	f.BoolVar(&j.RawURLs, "raw-url", false, "send URLs as written (host case, default port, ./ and ../ kept) instead of as a browser requests them, for a VCL that keys objects on the raw request")
	f.Var(list{v: &j.Headers}, "header", "extra request header as `'Name: value'`; repeatable")
	f.StringVar(&j.Scheme, "scheme", "", "how instances are reached, `http|https` (https checks the certificate against the URL's host) (default http; https with --fly-app)")
	f.BoolVar(&j.Insecure, "insecure", false, "with --scheme https: do not check certificates")
	f.IntVar(&j.Concurrency, "concurrency", purge.DefaultConcurrency, "most connections open at once, over all instances")
	f.IntVar(&j.PerInstance, "per-instance", purge.DefaultPerInstance, "most connections to one instance (with many URLs)")
	f.DurationVar(&j.Timeout, "timeout", purge.DefaultTimeout, "limit for each attempt: connect, send and the whole answer")
	f.IntVar(&t.retries, "retries", purge.DefaultAttempts-1, "more attempts after a connection error, timeout, 429 or 5xx, with backoff (0 = none)")
	f.StringVar(&j.CacheName, "cache-name", "", "the fleet's `name` in RFC 9211 Cache-Status lists, to tell its member from others'")
	f.StringVar(&j.CacheHeader, "cache-header", "", "also read this `header`, which the application sets to HIT, MISS, PASS, UNCACHEABLE, STALE... (X-Magento-Cache-Debug is always read)")
	f.DurationVar(&j.Deadline, "deadline", 0, "limit for the whole run, discovery included (0 = none); what is pending then is reported as not sent")
	if !t.fleetOnly {
		f.StringVar(&t.format, "format", string(report.DefaultFormat), "report `format` on stdout: text, json or markdown")
		f.StringVar(&t.summaryFile, "summary-file", "", "also append the report in Markdown to `FILE` (e.g. $GITHUB_STEP_SUMMARY), whatever --format writes on stdout")
		f.BoolVar(&t.verbose, "verbose", false, "show every result, also in large runs (which otherwise show one line per instance and the failures)")
		f.BoolVar(&t.verbose, "v", false, "short for --verbose")
	}
}

// finish maps what needs more than a copy: the URL file, the retries, the
// Fly token, and explicit zeros that would read as defaults.
func (t *target) finish(a *App) error {
	if err := t.f.positive("port", "dns-timeout", "concurrency", "per-instance", "pipeline", "timeout", "interval"); err != nil {
		return err
	}
	if t.retries < 0 {
		return usagef("--retries %d: give 0 or more", t.retries)
	}
	t.job.Attempts = t.retries + 1
	for _, n := range []string{"fly-token-file", "fly-api"} {
		if t.f.set(n) && t.job.Fly.App == "" {
			return usagef("--%s only applies with --fly-app", n).hint("give --fly-app APP (Fly.io edge mode), or leave --" + n + " out")
		}
	}
	if t.urlsFile != "" {
		urls, err := a.readURLs(t.urlsFile, t.job.RawURLs)
		if err != nil {
			return err
		}
		t.job.URLList = urls
	}
	if t.job.Fly.App != "" {
		tok, err := a.secret(t.flyToken, "FLY_API_TOKEN", "--fly-token-file")
		if err != nil {
			return err
		}
		t.job.Fly.Token = tok
		a.secrets.Add(tok)
	}
	if _, err := report.ParseFormat(t.format); err != nil {
		return &usageError{err: err}
	}
	if t.via.url != "" && t.summaryFile != "" {
		return usagef("--summary-file does not work with --via yet: the serve sends one report, in --format").
			hint("with --via, write the Markdown with --format markdown >> \"$GITHUB_STEP_SUMMARY\"")
	}
	return t.via.finish(a, t.f)
}

// openSummary opens --summary-file, if given, before anything is sent:
// a file that cannot be appended to is a usage error. close closes it.
func (t *target) openSummary() error {
	if t.summaryFile == "" {
		return nil
	}
	f, err := os.OpenFile(t.summaryFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return usagef("--summary-file: %v", err).hint("give a file this process can append to, e.g. \"$GITHUB_STEP_SUMMARY\"")
	}
	t.summary = f
	return nil
}

// close closes the summary file, if one was opened.
func (t *target) close() error {
	if t.summary == nil {
		return nil
	}
	return t.summary.Close()
}

func (t *target) reportFormat() report.Format {
	f, _ := report.ParseFormat(t.format)
	return f
}

// readURLs reads --urls-file into a compact list, one line at a time;
// every URL is checked before anything is sent.
func (a *App) readURLs(name string, raw bool) (*purge.URLList, error) {
	r, source := a.Stdin, "stdin"
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, usagef("--urls-file: %v", err)
		}
		defer f.Close()
		r, source = f, name
	}
	urls, err := purge.ReadURLs(r, source, raw)
	if err != nil {
		return nil, usagef("--urls-file: %v", err)
	}
	if urls.Len() == 0 {
		return nil, usagef("--urls-file %s: no URLs in it", source)
	}
	return urls, nil
}

// secret reads a secret from a file flag, else from an environment
// variable. The file's final line break is dropped; a file larger than a
// token can be is refused.
func (a *App) secret(file, env, flagName string) (string, error) {
	if file == "" {
		return a.Getenv(env), nil
	}
	f, err := os.Open(file)
	if err != nil {
		return "", usagef("%s: %v", flagName, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, purge.MaxTokenBytes+3))
	if err != nil {
		return "", usagef("%s: %v", flagName, err)
	}
	tok := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	switch {
	case len(tok) > purge.MaxTokenBytes:
		return "", usagef("%s %s: larger than %d KiB; give a file that holds only the token", flagName, file, purge.MaxTokenBytes>>10)
	case tok == "":
		return "", usagef("%s %s is empty", flagName, file)
	}
	return tok, nil
}
