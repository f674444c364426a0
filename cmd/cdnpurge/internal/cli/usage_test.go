package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/fleet"
	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/report"
	"github.com/cdnpurge/cdnpurge/purge/report/reporttest"
)

// Every usage error is one line saying what is wrong and one line saying
// what to do, on stderr; nothing on stdout, nothing sent, exit 2.
func TestUsageErrorsNameTheFix(t *testing.T) {
	f := startFleet(t, 1, nil)
	for _, tc := range []struct {
		args       string
		err, hint  string
		noHintLine bool // the hint is "Run '... --help'"
	}{
		// Mistyped flags, in either dash style, and commands.
		{"purge --dns-nmae x", "unknown flag --dns-nmae", "did you mean --dns-name?", false},
		{"purge -dns-nmae x", "unknown flag -dns-nmae", "did you mean -dns-name?", false},
		{"purge --verfy", "unknown flag --verfy", "did you mean --verify?", false},
		{"purg --url x", "unknown command \"purg\"", "did you mean 'cdnpurge purge'?", false},
		{"verify --verify-url https://e.com/", "unknown flag --verify-url", "--verify-url is a flag of 'cdnpurge purge' or 'cdnpurge ban', not of 'cdnpurge verify'", false},
		{"help purg", "unknown command \"purg\"", "did you mean 'cdnpurge purge'?", false},
		{"--dns-name x purge", "--dns-name: give the command first", "flags go after it: cdnpurge purge --dns-name ...", false},
		{"https://e.com/x", "unknown command \"https://e.com/x\"", "to purge it: cdnpurge purge --url https://e.com/x", false},
		// Tokens are never flags: the Dagger spelling points to the way.
		{"purge --token X", "--token: the purge token is never given in a flag", "set PURGE_TOKEN, or give --token-file FILE", false},
		{"ban --token=X", "--token: the purge token is never given in a flag", "set PURGE_TOKEN, or give --token-file FILE", false},
		{"purge --fly-token X", "--fly-token: the Fly.io token is never given in a flag", "set FLY_API_TOKEN, or give --fly-token-file FILE", false},
		// Values.
		{"purge --url https://e.com/ --verify miss,hit", "--verify miss,hit: --verify takes a value only after '='", "write --verify=miss,hit", false},
		{"purge --url https://e.com/ --dry-run false", "--dry-run false: --dry-run takes a value only after '='", "write --dry-run=false", false},
		{"purge --url https://e.com/ --verify=bogus", `--verify=bogus: "bogus" is not a step; the steps are purged, current, hit, fresh, stale, miss or any`, "e.g. --verify=miss,hit, or --verify alone", false},
		{"purge --url https://e.com/ --verify=miss,hitt", `"hitt" is not a step`, "", false},
		{"purge --url https://e.com/ --timeout 5", "--timeout 5: a duration needs a unit (ms, s, m or h)", "did you mean --timeout 5s?", false},
		{"purge --url https://e.com/ --dns-timeout 2", "--dns-timeout 2: a duration needs a unit", "did you mean --dns-timeout 2s?", false},
		{"purge --url https://e.com/ --deadline=1.5", "--deadline=1.5: a duration needs a unit", "did you mean --deadline 1.5s?", false},
		{"verify --url https://e.com/ --wait 30", "--wait 30: a duration needs a unit", "did you mean --wait 30s?", false},
		{"purge --url https://e.com/ --timeout soon", "--timeout soon: not a duration", "e.g. --timeout 5s, 500ms or 2m", false},
		{"purge --url https://e.com/ --port http", "--port http: not a number", "give a whole number, e.g. --port 80", false},
		{"purge --url https://e.com/ --record aaa", "--record aaa: use aaaa, a or srv", "did you mean --record aaaa?", false},
		{"purge --url https://e.com/ --format jsn", "--format jsn: use text, json or markdown", "did you mean --format json?", false},
		{"verify --url https://e.com/ --expect bogus", "--expect bogus: use current, hit, fresh, stale, miss or any\n", "", true},
		{"verify --url https://e.com/ --expect hti", "--expect hti: use current, hit, fresh, stale, miss or any", "did you mean --expect hit?", false},
		{"purge --dry-run=yes", "--dry-run=yes: give true or false, or --dry-run alone", "", true},
		{"purge --url", "--url needs a value", "write --url URL", false},
		{"purge --url --dns-name x", "--url needs a value", "--dns-name is a flag: give --url a value before it", false},
		{"purge https://e.com/", `unexpected argument "https://e.com/"`, "URLs go in --url URL (repeatable) or --urls-file FILE", false},
		// A URL without its scheme: the example is the URL meant.
		{"purge --url cdn.example/x", `url "cdn.example/x": not absolute; give the full public URL, e.g. https://cdn.example/x` + "\n", "", true},
		{"purge --raw-url --url cdn.example:8080/x", `url "cdn.example:8080/x": not absolute; give the full public URL, e.g. https://cdn.example:8080/x` + "\n", "", true},
		{"purge --url /feed", `url "/feed": not absolute; give the full public URL, e.g. https://example.com/feed` + "\n", "", true},
		{"purge ---url x", "---url: not a flag", "flags are written --name or --name=value", false},
		// Settings that need another.
		{"verify --url https://e.com/ --interval 1s", "--interval 1s only applies with --wait: without it, each instance is asked once", "e.g. --wait 2m --interval 1s", false},
		{"purge --url https://e.com/ --region iad", "Fly.io settings (regions) only apply to a Fly.io app", "--region only applies with --fly-app APP", false},
		{"purge --url https://e.com/ --connect 1.2.3.4:443 --region iad", "Fly.io settings (regions, connect address) only apply to a Fly.io app", "--region and --connect only apply with --fly-app APP", false},
		{"purge --url https://e.com/ --connect 1.2.3.4:443", "Fly.io settings (connect address) only apply to a Fly.io app", "--connect only applies with --fly-app APP", false},
		{"purge --url https://e.com/ --fly-token-file /dev/null", "--fly-token-file only applies with --fly-app", "give --fly-app APP", false},
		{"purge --url https://e.com/ --tag t1 --verify", "verify after a tag purge", "give the URLs to check with --verify-url URL", false},
		{"ban --url https://e.com/ --regex ^/a --verify=miss", "verify after BAN", "give the URLs to check with --verify-url URL", false},
		{"purge --url https://e.com/ --instance 127.0.0.1:1", "instances from more than one source", "give one of --dns-name, --instance and --fly-app (given: --dns-name, --instance)", false},
		{"purge --url https://e.com/ --summary-file /nonexistent/dir/summary.md", "--summary-file: open /nonexistent/dir/summary.md", "give a file this process can append to", false},
		{"purge --url https://e.com/ --via http://127.0.0.1:1 --summary-file s.md", "--summary-file does not work with --via yet", "--format markdown >> \"$GITHUB_STEP_SUMMARY\"", false},
		{"completion", "give the shell", "source <(cdnpurge completion bash)", false},
		{"completion tcsh", `completion "tcsh": cdnpurge completes in bash, zsh or fish`, "", true},
		{"version extra", `unexpected argument "extra"`, "cdnpurge version takes flags only", false},
	} {
		args := strings.Fields(tc.args)
		if args[0] == "purge" || args[0] == "ban" || args[0] == "verify" {
			args = append(append([]string{args[0]}, f.args()...), args[1:]...)
		}
		r := run(t, nil, "", args...)
		assert.Equal(t, ExitUsage, r.code, tc.args)
		assert.Empty(t, r.stdout, "a usage error writes nothing on stdout: %s", tc.args)
		lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
		if !assert.Len(t, lines, 2, "one line and a hint: %s\n%s", tc.args, r.stderr) {
			continue
		}
		assert.Contains(t, lines[0]+"\n", tc.err, tc.args)
		if tc.noHintLine {
			assert.Regexp(t, `^Run 'cdnpurge [a-z]+ --help' for usage\.$`, lines[1], tc.args)
		} else {
			assert.True(t, strings.HasPrefix(lines[1], "hint: "), "%s: %s", tc.args, lines[1])
			assert.Contains(t, lines[1], tc.hint, tc.args)
		}
		assert.NotContains(t, r.stderr, "Usage:", "never the help: %s", tc.args)
	}
	assert.Empty(t, f.requests(f.addrs[0]), "nothing was sent")
}

// A URL file's line without its scheme: the line, and the URL meant.
func TestURLsFileNotAbsoluteSuggestsTheURLMeant(t *testing.T) {
	f := startFleet(t, 1, nil)
	r := run(t, nil, "https://cdn.example/a\ncdn.example/x\n", append([]string{"purge", "--urls-file", "-"}, f.args()...)...)
	assert.Equal(t, ExitUsage, r.code)
	assert.Equal(t, `cdnpurge purge: --urls-file: stdin line 2: url "cdn.example/x": not absolute; give the full public URL, e.g. https://cdn.example/x`+"\n"+
		"Run 'cdnpurge purge --help' for usage.\n", r.stderr)
	assert.Empty(t, f.requests(f.addrs[0]), "nothing was sent")
}

// Every flag of every command still parses as the flag package parses it:
// -flag and --flag, -flag=value, --flag value, and bools with =false.
func TestFlagSpellingsKeepWorking(t *testing.T) {
	f := startFleet(t, 2, nil)
	for _, args := range [][]string{
		{"purge", "-url", "https://example.com/a", "-dns-name", "cdn.test", "-record=a", "-resolver", f.dns.Addr, "-port", f.portString(), "-dry-run"},
		{"purge", "--url=https://example.com/a", "--dns-name=cdn.test", "--record", "A", "--resolver=" + f.dns.Addr, "--port=" + f.portString(), "--dry-run=true", "--verify=false"},
		{"purge", "--url", "https://example.com/a", "--dns-name", "cdn.test", "--record", "a", "--resolver", f.dns.Addr, "--port", f.portString(), "--dry-run", "--format", "MD", "--timeout", "2s", "-v", "--"},
	} {
		r := run(t, nil, "", args...)
		assert.Equal(t, ExitOK, r.code, "%v: %s", args, r.stderr)
		assert.Contains(t, r.stdout, "would send PURGE to 2 instances", args)
	}
}

func (f *httpFleet) portString() string { return fmt.Sprint(f.port) }

// The library's errors say which setting is at fault without naming a
// flag: the CLI's hint names it.
func TestLibraryReasonsHaveNoFlagNames(t *testing.T) {
	for _, j := range []purge.Job{
		{URLs: []string{"https://e.com/"}},
		{URLs: []string{"https://e.com/"}, DNSName: "a", Instances: []string{"1.2.3.4"}},
		{URLs: []string{"https://e.com/"}, Instances: []string{"1.2.3.4"}, Fly: purge.Fly{Regions: []string{"iad"}}},
		{URLs: []string{"https://e.com/"}, Instances: []string{"1.2.3.4"}, Tags: []string{"t"}, Verify: []purge.Expect{purge.ExpectPurged}},
	} {
		_, err := j.Plan(context.Background())
		var je *purge.JobError
		require.ErrorAs(t, err, &je)
		assert.NotContains(t, err.Error(), "--", "the library states reasons, not flags")
		assert.True(t, slices.ContainsFunc([]error{purge.ErrNoInstances, purge.ErrManySources, purge.ErrNeedsFlyApp, purge.ErrNeedsVerifyURLs},
			func(s error) bool { return errors.Is(err, s) }), "a sentinel says what is at fault: %v", err)
	}
}

// Connection refused: the hint names --port.
func TestConnectionRefusedHintNamesPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now
	r := run(t, nil, "", "purge", "--url", "https://example.com/", "--instance", addr, "--retries", "0")
	assert.Equal(t, ExitFailed, r.code, r.stderr)
	assert.Contains(t, r.stdout, "connection refused")
	assert.Contains(t, r.stderr, "\nhint: connection refused: is the cache listening on that port? Give the instances' port with --port N (or ADDR:PORT in --instance)\n")
}

// A hit check right after a purge fails on misses: the hint says the
// check's own request filled the caches, and that --wait exists.
func TestVerifyHitOnMissesHintsWarmingAndWait(t *testing.T) {
	f := cacheFleet(t, 2, nil)
	r := run(t, nil, "", append([]string{"verify", "--url", "https://example.com/cold", "--expect", "hit"}, f.args()...)...)
	assert.Equal(t, ExitFailed, r.code)
	assert.Contains(t, r.stderr, "hint: a miss can mean the URL was not cached yet: this check's own request has now filled each cache, so the next run finds hits; --wait 2m keeps asking until every instance matches\n")
	r = run(t, nil, "", append([]string{"verify", "--url", "https://example.com/cold", "--expect", "hit"}, f.args()...)...)
	assert.Equal(t, ExitOK, r.code, "as the hint says, the next run finds hits: %s", r.stdout)
	// A failure that is no miss gets no such hint.
	g := startFleet(t, 1, func(_ string, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Status", "edge; fwd=miss") // a miss, but an error page
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	r = run(t, nil, "", append([]string{"verify", "--url", "https://example.com/down", "--expect", "hit"}, g.args()...)...)
	assert.Equal(t, ExitFailed, r.code)
	assert.NotContains(t, r.stderr, "not cached yet")
}

// The DNS name is the URL's own host, or lists one instance: a warning
// in the report, in every format.
func TestWarningsForASuspectDNSName(t *testing.T) {
	f := startFleet(t, 1, nil)
	require.NoError(t, f.dns.Add("example.test. IN A "+f.addrs[0]))
	for _, format := range []string{"text", "markdown", "json"} {
		r := run(t, nil, "", "purge", "--url", "https://Example.test/x", "--dns-name", "example.test.", "--record", "a", "--resolver", f.dns.Addr, "--port", f.portString(), "--format", format)
		assert.Equal(t, ExitOK, r.code, r.stderr)
		assert.Contains(t, r.stdout, "the DNS name example.test. is the URLs' public host, which usually reaches one instance", format)
		assert.Contains(t, r.stdout, "example.test. lists one instance ("+f.addrs[0]+":", format)
		if format == "json" {
			rep := reporttest.Require(t, r.stdout)
			require.Len(t, rep.Warnings, 2, "the run's warnings, in one place")
			assert.True(t, strings.HasPrefix(rep.Warnings[0], "the DNS name example.test. is the URLs' public host"))
		}
	}
	g := startFleet(t, 2, nil)
	r := run(t, nil, "", append([]string{"purge", "--url", "https://example.com/x"}, g.args()...)...)
	assert.Equal(t, ExitOK, r.code)
	assert.NotContains(t, r.stdout, "warning")
}

// A dry run says the same warnings about the DNS name as the run would:
// checking the settings is what a dry run is for.
func TestDryRunSaysTheWarnings(t *testing.T) {
	f := startFleet(t, 1, nil)
	require.NoError(t, f.dns.Add("example.test. IN A "+f.addrs[0]))
	for _, format := range []string{"text", "markdown", "json"} {
		r := run(t, nil, "", "purge", "--url", "https://Example.test/x", "--dns-name", "example.test.", "--record", "a", "--resolver", f.dns.Addr,
			"--port", f.portString(), "--dry-run", "--format", format)
		assert.Equal(t, ExitOK, r.code, r.stderr)
		assert.Contains(t, r.stdout, "the DNS name example.test. is the URLs' public host, which usually reaches one instance", format)
		assert.Contains(t, r.stdout, "example.test. lists one instance ("+f.addrs[0]+":", format)
		if format == "json" {
			rep := reporttest.Require(t, r.stdout)
			assert.True(t, rep.DryRun)
			require.Len(t, rep.Warnings, 2, "the run's warnings, in one place")
			assert.True(t, strings.HasPrefix(rep.Warnings[0], "the DNS name example.test. is the URLs' public host"))
		}
	}
}

// A --summary-file that cannot be written fails the run (exit 1, stderr
// says why) after the purge was sent: the JSON report on stdout says ok,
// as every instance did what was asked. docs/json.md and the schema name
// this one case where ok and the exit code part.
func TestSummaryFileWriteFailureExits1WithTheReportOK(t *testing.T) {
	f := startFleet(t, 1, nil)
	r := run(t, nil, "", append([]string{"purge", "--url", "https://example.com/a", "--format", "json", "--summary-file", "/dev/full"}, f.args()...)...)
	assert.Equal(t, ExitFailed, r.code)
	assert.Contains(t, r.stderr, "--summary-file: write the report")
	assert.True(t, reporttest.Require(t, r.stdout).OK, "every instance took the purge")
	assert.Len(t, f.requests(f.addrs[0]), 1, "the purge was sent")
}

// --summary-file appends the Markdown report while stdout has the chosen
// format: a CI log and a job summary from one run.
func TestSummaryFile(t *testing.T) {
	f := cacheFleet(t, 2, nil)
	file := filepath.Join(t.TempDir(), "summary.md")
	require.NoError(t, os.WriteFile(file, []byte("# Deploy\n\n"), 0o644))
	r := run(t, nil, "", append([]string{"purge", "--url", "https://example.com/a", "--verify", "--format", "json", "--summary-file", file}, f.args()...)...)
	require.Equal(t, ExitOK, r.code, r.stderr)
	reporttest.Require(t, r.stdout) // stdout is the JSON report
	r = run(t, nil, "", append([]string{"verify", "--url", "https://example.com/a", "--expect", "any", "--summary-file", file}, f.args()...)...)
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "verified 1 URL on 2/2 instances", "stdout is text")
	r = run(t, nil, "", append([]string{"ban", "--url", "https://example.com/", "--regex", "^/a", "--summary-file", file, "--dry-run"}, f.args()...)...)
	require.Equal(t, ExitOK, r.code, r.stderr)

	b, err := os.ReadFile(file)
	require.NoError(t, err)
	md := string(b)
	assert.True(t, strings.HasPrefix(md, "# Deploy\n\n### cdnpurge purge\n"), "appended, after what was there: %s", md)
	assert.Equal(t, 1, strings.Count(md, "### cdnpurge verify: expect purged"), md)
	assert.Equal(t, 1, strings.Count(md, "### cdnpurge verify: expect any"), md)
	assert.Contains(t, md, "### cdnpurge dry run")
	assert.Contains(t, md, "| Url | Instance |")
	assert.NotContains(t, md, "{", "no JSON in the summary")

	// A failed run writes its summary too, and still fails.
	broken := cacheFleet(t, 2, map[int]bool{1: true})
	require.Equal(t, ExitOK, run(t, nil, "", append([]string{"verify", "--url", "https://example.com/b", "--expect", "any"}, broken.args()...)...).code)
	r = run(t, nil, "", append([]string{"purge", "--url", "https://example.com/b", "--verify", "--summary-file", file}, broken.args()...)...)
	assert.Equal(t, ExitFailed, r.code)
	b, err = os.ReadFile(file)
	require.NoError(t, err)
	assert.Contains(t, string(b), "FAILED: verified 1 URL on 1/2 instances")
}

// Every --help, and the top-level usage, fits 80 columns; -v and --verbose
// show once, on one line; --verify shows [=STEPS].
func TestHelpFits80Columns(t *testing.T) {
	helps := map[string]string{}
	for _, args := range [][]string{{"--help"}, {"help"}, {}} {
		r := run(t, nil, "", args...)
		helps[strings.Join(args, " ")+"|"] = r.stdout + r.stderr
	}
	for _, c := range commands() {
		r := run(t, nil, "", c.name, "--help")
		require.Equal(t, ExitOK, r.code, c.name)
		assert.Empty(t, r.stderr, c.name)
		helps[c.name] = r.stdout
		h := run(t, nil, "", "help", c.name)
		assert.Equal(t, r.stdout, h.stdout, "cdnpurge help %s shows %s's help", c.name, c.name)
	}
	for name, h := range helps {
		for i, line := range strings.Split(h, "\n") {
			assert.LessOrEqual(t, len([]rune(line)), 80, "%s line %d: %q", name, i+1, line)
		}
	}
	for _, cmd := range []string{"purge", "ban", "verify"} {
		h := helps[cmd]
		assert.Equal(t, 1, strings.Count(h, "--verbose"), "%s: --verbose once", cmd)
		assert.Contains(t, h, "\n  -v, --verbose\n", cmd)
		assert.NotContains(t, h, "short for --verbose", cmd)
		assert.NotContains(t, h, "\n  -v\n", cmd)
		assert.Contains(t, h, "\n  --summary-file FILE\n", cmd)
	}
	assert.Contains(t, helps["purge"], "\n  --verify[=STEPS]\n")
	assert.Contains(t, helps["ban"], "\n  --verify[=STEPS]\n")
	assert.Contains(t, helps["verify"], "\n  --expect current|hit|fresh|stale|miss|any\n")
	// Shared texts say nothing only one command does.
	for _, flag := range []string{"--fly-app APP", "--fly-token-file FILE", "--region REGIONS", "--connect HOST:PORT", "--url URL", "--format FORMAT", "--deadline DURATION"} {
		text := flagText(helps["verify"], flag)
		require.NotEmpty(t, text, flag)
		assert.NotRegexp(t, `(?i)\bpurge`, text, "verify --help, %s: %s", flag, text)
	}
	// Plain cdnpurge: a few lines, on stderr, exit 2.
	r := run(t, nil, "")
	assert.Equal(t, ExitUsage, r.code)
	assert.Empty(t, r.stdout)
	assert.LessOrEqual(t, strings.Count(r.stderr, "\n"), 8, r.stderr)
	assert.Contains(t, r.stderr, "cdnpurge <command> [flags]")
	assert.Contains(t, r.stderr, "cdnpurge demo")
	assert.NotContains(t, r.stderr, "Exit codes", "not the whole help")
}

// -v is --verbose on every command; alone it prints the version, and
// before a command it is that command's.
func TestVerboseAndVersion(t *testing.T) {
	for _, args := range [][]string{{"-v"}, {"--version"}, {"version"}} {
		r := run(t, nil, "", args...)
		assert.Equal(t, ExitOK, r.code, args)
		assert.Equal(t, "cdnpurge test\n", r.stdout, args)
		assert.Empty(t, r.stderr, args)
	}
	f := startFleet(t, 1, nil)
	var urls []string
	for i := range report.DefaultRows + 1 {
		urls = append(urls, "--url", "https://example.com/"+strings.Repeat("p", i+1))
	}
	quiet := run(t, nil, "", append(append([]string{"purge"}, urls...), f.args()...)...)
	require.Equal(t, ExitOK, quiet.code, quiet.stderr)
	assert.NotContains(t, quiet.stdout, "https://example.com/p ", "a large run shows one line per instance")
	for _, args := range [][]string{
		append(append([]string{"purge", "-v"}, urls...), f.args()...),
		append(append([]string{"purge", "--verbose"}, urls...), f.args()...),
		append(append([]string{"-v", "purge"}, urls...), f.args()...),
	} {
		r := run(t, nil, "", args...)
		require.Equal(t, ExitOK, r.code, r.stderr)
		assert.Contains(t, r.stdout, "https://example.com/p ", "every result: %v", args[:2])
	}
}

// The values a flag takes (choices) are the ones the library's parser
// accepts, no more and no fewer: each parses, and the parser's own error
// lists the same set.
func TestChoicesAreTheLibrarys(t *testing.T) {
	listed := func(err error) []string {
		require.Error(t, err)
		_, words, ok := strings.Cut(err.Error(), ": use ")
		require.True(t, ok, err)
		return strings.Split(strings.NewReplacer(" or ", ", ").Replace(words), ", ")
	}
	_, err := purge.ParseRecordType("bogus")
	assert.Equal(t, listed(err), choices["record"].values)
	_, err = report.ParseFormat("bogus")
	assert.Equal(t, listed(err), choices["format"].values)
	_, err = purge.ParseExpect("bogus")
	assert.Equal(t, listed(err), choices["verify"].values)
	var verifyOnly []string
	for _, e := range listed(err) {
		if e != string(purge.ExpectPurged) {
			verifyOnly = append(verifyOnly, e)
		}
	}
	assert.Equal(t, verifyOnly, choices["verify/expect"].values, "verify takes every expectation but purged")
	_, err = fleet.ParseMode("bogus")
	var modes []string
	for _, m := range listed(err) {
		if m != string(fleet.ModeExternal) { // the demo starts its instances itself
			modes = append(modes, m)
		}
	}
	assert.Equal(t, modes, choices["mode"].values)
	_, err = purge.Job{Instances: []string{"127.0.0.1"}, URLs: []string{"https://e.com/"}, Scheme: "bogus"}.Plan(context.Background())
	assert.Equal(t, listed(err), choices["scheme"].values)
	for _, aliases := range choices["format"].also {
		_, err := report.ParseFormat(aliases)
		assert.NoError(t, err)
	}
	// Every choice is a flag of some command.
	for key := range choices {
		name := key[strings.LastIndex(key, "/")+1:]
		found := false
		for _, c := range commands() {
			if fs := (&App{}).flagsOf(c); fs != nil && fs.Lookup(name) != nil {
				found = true
			}
		}
		assert.True(t, found, "choices[%q] is no flag", key)
	}
	// Every flag named in a help group or shorthand is a flag of some command.
	all := map[string]bool{}
	for _, c := range commands() {
		if fs := (&App{}).flagsOf(c); fs != nil {
			fs.VisitAll(func(fl *flag.Flag) { all[fl.Name] = true })
		}
	}
	for _, g := range flagGroups {
		for _, n := range g.flags {
			if cmd, name, ok := strings.Cut(n, "/"); ok {
				c := slices.IndexFunc(commands(), func(c command) bool { return c.name == cmd })
				require.GreaterOrEqual(t, c, 0, "flagGroups: %q names no command", n)
				fs := (&App{}).flagsOf(commands()[c])
				assert.True(t, fs != nil && fs.Lookup(name) != nil, "flagGroups lists %q, which %s does not have", n, cmd)
				continue
			}
			assert.True(t, all[n], "flagGroups lists %q, which no command has", n)
		}
	}
}

// flagText is the text help shows for a flag (its line "  --name ARG"),
// up to the next flag.
func flagText(help, flag string) string {
	_, rest, ok := strings.Cut(help, "\n  "+flag+"\n")
	if !ok {
		return ""
	}
	var text []string
	for _, l := range strings.Split(rest, "\n") {
		if !strings.HasPrefix(l, "      ") {
			break
		}
		text = append(text, strings.TrimSpace(l))
	}
	return strings.Join(text, " ")
}
