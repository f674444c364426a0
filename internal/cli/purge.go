package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/cdnpurge/cdnpurge/purge"
)

const purgeAbout = `Send PURGE (or --method) for each URL to EVERY instance of the fleet, all at
once, with the URL's Host header, and report what each instance answered.

Instances come from a DNS lookup of --dns-name (AAAA by default, as Fly.io's
<app>.internal) or from --instance. Each request goes to http://[ADDR]:PORT
with the URL's path and query, 'Host: <the URL's host>', 'User-Agent:
cdnpurge/<version>', and the purge token header when a token is set.

The token is read from the PURGE_TOKEN environment variable or --token-file
(never from a flag, which other users could see in the process list); it is
never printed. Only 2xx answers count as purged. Redirects are not followed.`

const purgeExamples = `  PURGE_TOKEN=... cdnpurge purge --url https://example.com/podcast/1 --dns-name my-cdn.internal --port 9000
  cdnpurge purge --urls-file changed.txt --dns-name cdn.internal --format markdown >> "$GITHUB_STEP_SUMMARY"
  git diff --name-only | sed 's|^|https://example.com/|' | cdnpurge purge --urls-file - --instance 10.0.0.7:9000 --instance 10.0.0.8:9000
  cdnpurge purge --url https://example.com/ --dns-name _http._tcp.cdn.example --record srv --resolver 10.0.0.2:53
  cdnpurge purge --url https://example.com/ --dns-name cdn.internal --method BAN --header 'X-Ban-Url: ^/assets/'
  cdnpurge purge --url https://example.com/feed --dns-name cdn.internal --verify            # then expect a miss everywhere
  cdnpurge purge --url https://example.com/feed --dns-name cdn.internal --verify=miss,hit   # ... and a hit after that
  cdnpurge purge --url https://example.com/feed --dns-name cdn.internal --dry-run`

func (a *App) purge(ctx context.Context, args []string) int {
	const cmd = "cdnpurge purge"
	fs := a.newFlagSet("purge", purgeAbout, purgeExamples)
	var t targetFlags
	t.register(fs)
	method := fs.String("method", purge.DefaultMethod, "request `method`: PURGE, BAN or any token your VCL handles")
	tokenFile := fs.String("token-file", "", "read the purge token from `FILE` (default: $PURGE_TOKEN; none when neither is set)")
	tokenHeader := fs.String("token-header", purge.DefaultTokenHeader, "`name` of the header that carries the token")
	dryRun := fs.Bool("dry-run", false, "find the instances and print what would be sent; send nothing")
	var verifySteps verifyFlag
	fs.Var(&verifySteps, "verify", "after purging, ask every instance for each URL and expect a miss (the content is gone);\n--verify=miss,hit then asks again and expects a hit (the content came back)")
	if code, ok := a.parse(fs, args); !ok {
		return code
	}
	o, format, err := t.options()
	if err != nil {
		return a.usageErr(cmd, err)
	}
	o.Method, o.TokenHeader = strings.ToUpper(*method), *tokenHeader
	if o.Token, err = a.token(*tokenFile); err != nil {
		return a.usageErr(cmd, err)
	}
	steps, err := parseVerifySteps(string(verifySteps))
	if err != nil {
		return a.usageErr(cmd, err)
	}
	ctx, cancel, urls, instances, code := t.load(ctx, a, cmd)
	if code != ExitOK {
		return code
	}
	defer cancel()
	if *dryRun {
		a.plan(o, instances, urls)
		return ExitOK
	}
	rep, err := purge.Run(ctx, o, instances, urls)
	if err != nil {
		return a.usageErr(cmd, err)
	}
	ok := rep.OK()
	// Verify on every instance, even those whose purge failed: the report
	// then shows what each one still serves.
	vo := o
	vo.Method = purge.DefaultVerifyMethod
	var checks []*purge.VerifyReport
	for _, exp := range steps {
		vrep, err := purge.Verify(ctx, vo, exp, instances, urls)
		if err != nil {
			return a.usageErr(cmd, err)
		}
		checks = append(checks, vrep)
		ok = ok && vrep.OK()
	}
	if err := purge.WriteReports(a.Stdout, format, rep, checks); err != nil {
		return a.fail(cmd, fmt.Errorf("write report: %w", err))
	}
	if !ok {
		return ExitFailed
	}
	return ExitOK
}

// verifyFlag is --verify: bare (miss) or --verify=miss,hit.
type verifyFlag string

func (v *verifyFlag) String() string   { return string(*v) }
func (v *verifyFlag) IsBoolFlag() bool { return true }
func (v *verifyFlag) Set(s string) error {
	switch s {
	case "true":
		s = "miss"
	case "false":
		s = ""
	}
	*v = verifyFlag(s)
	return nil
}

// token reads the purge token from --token-file or $PURGE_TOKEN.
func (a *App) token(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		tok := strings.TrimRight(string(b), "\r\n")
		if tok == "" {
			return "", fmt.Errorf("--token-file %s is empty", file)
		}
		if strings.ContainsAny(tok, "\r\n") {
			return "", errors.New("--token-file: the token must be one line")
		}
		return tok, nil
	}
	return a.Getenv("PURGE_TOKEN"), nil
}

func (a *App) plan(o purge.Options, instances []purge.Instance, urls []*url.URL) {
	w := a.Stdout
	tok := "no token header"
	if o.Token != "" {
		tok = o.TokenHeader + " header set (value hidden)"
	}
	fmt.Fprintf(w, "dry run: would send %d requests (%s to %d instances x %d URLs) over %s, %s:\n", len(instances)*len(urls), o.Method, len(instances), len(urls), o.Scheme, tok)
	fmt.Fprintf(w, "instances:\n")
	for _, in := range instances {
		fmt.Fprintf(w, "  %s\n", in)
	}
	fmt.Fprintf(w, "requests per instance:\n")
	for _, u := range urls {
		fmt.Fprintf(w, "  %s %s  Host: %s\n", o.Method, purge.RequestTarget(u), u.Host)
	}
}
