package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
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
}

func newFlags(name, about, examples string) *flags {
	fs := flag.NewFlagSet("cdnpurge "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // help is printed once, by parse
	return &flags{FlagSet: fs, cmd: "cdnpurge " + name, about: about, examples: examples}
}

// parse parses args. --help prints the help on stdout and returns errHelp;
// a bad flag is a usage error.
func (f *flags) parse(a *App, args []string) error {
	if a.inspect != nil {
		a.inspect(f.FlagSet)
	}
	err := f.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		f.help(a.Stdout)
		return errHelp
	case err != nil:
		return &usageError{err}
	case f.NArg() > 0:
		return usagef("unexpected argument %q (URLs go in --url or --urls-file)", f.Arg(0))
	}
	return nil
}

func (f *flags) help(w io.Writer) {
	fmt.Fprintf(w, "%s\n\nUsage:\n  %s [flags]\n\nFlags:\n", strings.TrimSpace(f.about), f.cmd)
	var names []string
	f.VisitAll(func(fl *flag.Flag) { names = append(names, fl.Name) })
	sort.Strings(names)
	for _, n := range names {
		fl := f.Lookup(n)
		arg, text := flag.UnquoteUsage(fl)
		if arg != "" {
			arg = " " + arg
		}
		def := ""
		if v := fl.DefValue; v != "" && v != "false" && v != "0" && v != "0s" && v != "[]" {
			def = fmt.Sprintf(" (default %s)", v)
		}
		dash := "--"
		if len(n) == 1 {
			dash = "-"
		}
		fmt.Fprintf(w, "  %s%s%s\n      %s%s\n", dash, n, arg, strings.ReplaceAll(text, "\n", "\n      "), def)
	}
	fmt.Fprintf(w, "\nExamples:\n%s\n\n%s", f.examples, exitCodes)
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
		return fmt.Errorf("%q is not a number", s)
	}
	*l.v = append(*l.v, n)
	return nil
}

// target holds the flags every command that sends shares (purge, ban and
// verify), mapped straight into the job: where the instances are and how
// each is reached (what the Dagger module's constructor takes), the URLs,
// and how to report. A flag only some commands use is theirs.
type target struct {
	f        *flags
	job      purge.Job
	urlsFile string
	retries  int
	flyToken string
	format   string
	verbose  bool
	// fleetOnly registers only where the instances are and how to reach
	// them (serve takes what to send from its clients).
	fleetOnly bool
	via       viaFlags
}

func (t *target) register(f *flags) {
	t.f = f
	j := &t.job
	f.StringVar(&j.DNSName, "dns-name", "", "the internal DNS `name` whose records list EVERY instance, e.g. my-cdn.internal\n(never the public host: that reaches one instance)")
	f.Func("record", "record `type` listing the instances: aaaa (Fly.io's <app>.internal), a, or srv\n(srv: each record's port is used) (default "+string(purge.DefaultRecord)+")", func(s string) error {
		j.Record = purge.RecordType(s)
		return nil
	})
	f.IntVar(&j.Port, "port", purge.DefaultPort, "the instances' `port` (for aaaa, a and --instance without a port)")
	f.StringVar(&j.Resolver, "resolver", "", "DNS server as `HOST:PORT` (default: the nameservers in /etc/resolv.conf, each in turn)")
	f.DurationVar(&j.DNSTimeout, "dns-timeout", purge.DefaultDNSTimeout, "how long to wait for each DNS answer")
	f.Var(list{v: &j.Instances}, "instance", "an instance as `ADDR[:PORT]` ([IPv6]:PORT for IPv6); repeatable; skips DNS.\nA host name stands for every address it has: each is an instance")
	f.StringVar(&j.Fly.App, "fly-app", "", "Fly.io edge mode: purge every started machine of this `app`, listed by the Machines API\n(token from FLY_API_TOKEN or --fly-token-file) and reached through the public edge\nwith fly-force-instance-id; works from anywhere, no private network needed")
	f.StringVar(&t.flyToken, "fly-token-file", "", "read the Fly.io API token from `FILE` (default: $FLY_API_TOKEN)")
	f.StringVar(&j.Fly.API, "fly-api", purge.DefaultFlyAPI, "the Machines API's base `URL`")
	f.Var(list{v: &j.Fly.Regions, split: true}, "region", "with --fly-app: only machines in these `regions`, e.g. iad,sjc; repeatable")
	f.StringVar(&j.Fly.Connect, "connect", "", "with --fly-app: connect to `HOST:PORT` instead of the URL's host (a Flycast address,\na staging proxy), as curl's --connect-to; TLS still names the URL's host")
	if !t.fleetOnly {
		f.Var(list{v: &j.URLs}, "url", "an absolute `URL` as the public sees it, e.g. https://example.com/feed; repeatable")
		f.StringVar(&t.urlsFile, "urls-file", "", "read URLs from `FILE`, one a line ('-' = stdin); blank lines and # comments skipped")
		t.via.register(f)
	}
	f.BoolVar(&j.RawURLs, "raw-url", false, "send URLs as written (host case, default port, ./ and ../ kept) instead of as a\nbrowser requests them, for a VCL that keys objects on the raw request")
	f.Var(list{v: &j.Headers}, "header", "extra request header as `'Name: value'`; repeatable")
	f.StringVar(&j.Scheme, "scheme", "", "how instances are reached, `http|https` (https checks the certificate against the URL's\nhost) (default http; https with --fly-app)")
	f.BoolVar(&j.Insecure, "insecure", false, "with --scheme https: do not check certificates")
	f.IntVar(&j.Concurrency, "concurrency", purge.DefaultConcurrency, "most connections open at once, over all instances")
	f.IntVar(&j.PerInstance, "per-instance", purge.DefaultPerInstance, "most connections to one instance (with many URLs)")
	f.DurationVar(&j.Timeout, "timeout", purge.DefaultTimeout, "limit for each attempt: connect, send and the whole answer")
	f.IntVar(&t.retries, "retries", purge.DefaultAttempts-1, "more attempts after a connection error, timeout, 429 or 5xx, with backoff (0 = none)")
	f.StringVar(&j.CacheName, "cache-name", "", "the fleet's `name` in RFC 9211 Cache-Status lists, to tell its member from others'")
	f.DurationVar(&j.Deadline, "deadline", 0, "limit for the whole run, discovery included (0 = none); what is pending then is\nreported as not sent")
	if !t.fleetOnly {
		f.StringVar(&t.format, "format", string(report.DefaultFormat), "report `format`: text, json or markdown (a table for $GITHUB_STEP_SUMMARY)")
		f.BoolVar(&t.verbose, "verbose", false, "show every result, also in large runs (which otherwise show one line per instance\nand the failures)")
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
		return &usageError{err}
	}
	return t.via.finish(a, t.f)
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
