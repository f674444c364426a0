package purge

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/http/httpguts"

	"github.com/cdnpurge/cdnpurge/internal/secret"
)

// Defaults for Job fields left at their zero value. Every front end takes
// its defaults from here.
const (
	DefaultMethod       = "PURGE"
	DefaultTagMethod    = "PURGEKEYS" // vmod xkey's tag purges, as FOSHttpCache's VCL names them
	DefaultTokenHeader  = "Purge-Token"
	DefaultRecord       = RecordAAAA
	DefaultPort         = 80
	DefaultResolvConf   = "/etc/resolv.conf"
	DefaultDNSTimeout   = 3 * time.Second
	DefaultScheme       = "http"
	DefaultEdgeScheme   = "https" // in edge mode (Fly.io)
	DefaultConcurrency  = 1024
	DefaultPerInstance  = 4
	DefaultPipeline     = 64
	DefaultTimeout      = 5 * time.Second
	DefaultAttempts     = 3
	DefaultBackoff      = 100 * time.Millisecond
	DefaultVerifyMethod = http.MethodHead
	DefaultExpect       = ExpectHit // what a verify-only job expects
	DefaultInterval     = 5 * time.Second
	DefaultFlyAPI       = "https://api.machines.dev"

	// MinInterval is the shortest time between verify rounds.
	MinInterval = 100 * time.Millisecond
	// MaxTokenBytes is the longest purge token accepted.
	MaxTokenBytes = 64 << 10
	// BreakerThreshold is how many connection failures in a row, without
	// any answer between them, make an instance unreachable: its remaining
	// URLs then fail at once instead of each waiting for its timeout.
	BreakerThreshold = 3
)

// Job is one run: find every instance, purge URLs on each (unless
// VerifyOnly), then verify what each one serves. It holds the settings as
// a front end receives them (strings as typed, durations) and checks them
// itself: the CLI and the Dagger module only copy their inputs into a Job.
// The zero value of every field is usable and means the default above.
type Job struct {
	// Where the instances are: exactly one of DNSName, Instances and
	// Fly.App.

	// DNSName is the internal DNS name whose records list EVERY instance,
	// e.g. my-app.internal (never the public host, which reaches one).
	DNSName string
	// Record is the record type of DNSName: aaaa (default), a or srv.
	Record RecordType
	// Resolver is the DNS server, HOST[:PORT]; empty means the nameservers
	// of ResolvConf, each in turn. It also resolves static host names.
	Resolver string
	// ResolvConf is read when Resolver is empty; empty means DefaultResolvConf.
	ResolvConf string
	// DNSTimeout bounds each DNS answer; zero means DefaultDNSTimeout.
	DNSTimeout time.Duration
	// Instances are static instances, ADDR[:PORT] ([IPv6]:PORT for IPv6).
	// A host name stands for every address it has (each is an instance).
	Instances []string
	// Port is the instances' port for aaaa and a records and for Instances
	// without one; zero means DefaultPort.
	Port int
	// Fly lists a Fly.io app's machines and reaches each through the edge.
	Fly Fly

	// What to send.

	// URLs are absolute http(s) URLs as the public sees them.
	URLs []string
	// URLList holds URLs already parsed, compactly: a long list read from a
	// file with ReadURLs (a million URLs take about 40 MB this way), or
	// built with its Add. Its URLs are sent as they are in it, after those
	// of URLs. The job only reads it.
	URLList *URLList
	// RawURLs sends URLs as written (host case, default port, dot segments
	// kept) instead of as a browser requests them.
	RawURLs bool
	// Method is the request method; empty means PURGE. Ban sets BAN.
	Method string
	// Tags invalidates every object tagged with any of them (vmod xkey:
	// DefaultTagMethod with the xkey-purge header) instead of one URL; URLs
	// then only carry the Host.
	Tags []string
	// Soft asks for a soft purge where the VCL supports one: the shipped
	// VCL's Purge-Soft header for URLs, xkey-softpurge for Tags.
	Soft bool
	// Ban, when not empty, sends a BAN that invalidates every object of each
	// URL's host whose path matches this regular expression (in the X-Url
	// header, with the host in X-Host, as FOSHttpCache's VCL and the shipped
	// one read them). The request path is the expression's literal prefix
	// (BAN /p/42/ for ^/p/42/), for VCLs that ban what the request path
	// matches, so that they ban no more than the expression would; the
	// URL's own path is not sent.
	Ban string
	// Broad lets a ban whose expression has no literal prefix (\.css$) be
	// sent, with the path /: a VCL that bans by the request path then bans
	// everything of the host. Without it such a ban is refused.
	Broad bool
	// BanContentType, with Ban, limits the ban to content types matching
	// this regular expression (X-Content-Type); empty sends ".*", any.
	BanContentType string
	// Token is sent in TokenHeader when not empty. It never appears in a
	// result, a report or an error.
	Token string
	// TokenHeader names the token header; empty means DefaultTokenHeader.
	TokenHeader string
	// Headers are extra request headers, "Name: value".
	Headers []string
	// OKStatus lists statuses that count as purged besides 2xx, e.g. 404
	// for VCLs that answer 404 when nothing was cached.
	OKStatus []int

	// How to reach the instances.

	// Scheme is http or https (any case); empty means DefaultScheme, or
	// DefaultEdgeScheme in edge mode. With https, TLS server name and
	// certificate checks use the URL's host.
	Scheme string
	// Insecure skips certificate checks (https only).
	Insecure bool
	// RootCAs, when set, replaces the system's roots for https.
	RootCAs *x509.CertPool
	// Concurrency bounds the connections open at once, over all instances;
	// zero means DefaultConcurrency.
	Concurrency int
	// PerInstance bounds the connections to one instance; zero means
	// DefaultPerInstance.
	PerInstance int
	// Pipeline is how many requests go on one connection before their
	// answers are read (HTTP/1.1 pipelining); 1 sends one at a time, zero
	// means DefaultPipeline. Verification and methods that are not
	// idempotent always send one at a time.
	Pipeline int
	// Timeout bounds each attempt: connect, send, and the whole answer.
	// Zero means DefaultTimeout.
	Timeout time.Duration
	// Attempts is how many times a request is tried when it fails with a
	// connection error, a timeout, a 429 or a 5xx (other than 501 and 505):
	// 1 means no retry; zero means DefaultAttempts.
	Attempts int
	// Backoff is the first delay between attempts; it doubles each time,
	// with jitter, and honours Retry-After. Zero means DefaultBackoff.
	Backoff time.Duration
	// Deadline bounds the whole run, discovery included; zero means none.
	// What is still pending then is reported as not sent.
	Deadline time.Duration
	// UserAgent defaults to cdnpurge/<module version>.
	UserAgent string
	// NoIPv6 says that the caller's network cannot reach IPv6 addresses (a
	// Dagger function's container has none): a run that would connect to
	// one (an instance found by AAAA, say) then fails after discovery with
	// a *DiscoveryError of KindIPv6, before anything is sent, instead of
	// timing out on each instance. A fleet of mixed families fails whole.
	NoIPv6 bool

	// What to verify.

	// Verify lists the checks after the purge, in order, e.g.
	// [ExpectPurged] or [ExpectMiss, ExpectHit].
	Verify []Expect
	// VerifyOnly skips the purge: the job only runs the Verify steps.
	VerifyOnly bool
	// VerifyURLs are the URLs to check; empty means URLs (and URLList).
	// Required when the job bans or purges tags, whose URLs only carry the
	// Host.
	VerifyURLs []string
	// VerifyMethod is HEAD or GET; empty means HEAD, or GET with Origin
	// (to compare bodies when no validator is shared).
	VerifyMethod string
	// CacheName is this fleet's member name in an RFC 9211 Cache-Status
	// list; see package cachestatus.
	CacheName string
	// CacheHeader names a header the application writes to say what its
	// cache did (HIT, MISS, PASS, UNCACHEABLE, STALE, EXPIRED..., any case),
	// read before every other; see package cachestatus. X-Magento-Cache-Debug
	// is always read.
	CacheHeader string
	// Origin, when set, is the origin's base URL: scheme, host and port, e.g.
	// http://10.0.0.5:8080. Before anything is sent, the origin is asked
	// (twice) for its current version of every URL to verify, with the URL's
	// path, query and Host; each check then compares what the instance
	// serves with it: the strong ETag when both send one, else
	// Last-Modified, else the status, length and SHA-256 of the body. A copy
	// equal to the origin's passes ExpectPurged whatever its Age; one that
	// differs fails. It is needed by ExpectCurrent. An origin that cannot be
	// read stops the job before anything is sent (*OriginError).
	Origin string
	// AcceptUncertain lets an ExpectPurged check pass when the evidence
	// cannot tell whether the copy was stored before or after the purge:
	// without the instance's own clock (see FetchTimeHeader), Age in whole
	// seconds cannot order a copy stored within a second of the purge.
	// Without it such a check fails ("cannot tell"); Origin settles it.
	AcceptUncertain bool
	// Wait keeps asking the instances whose check did not match, every
	// Interval, until all match or Wait has passed; zero asks once.
	Wait time.Duration
	// Interval is the time between rounds; zero means DefaultInterval.
	Interval time.Duration

	// Progress, when set, is called about every 200 ms while requests are
	// in flight, and once when each step ends.
	Progress func(Progress)

	// Transport, when set, keeps connections to the instances open, and
	// what they showed of their wire, for later runs (see Transport); nil
	// gives the run a private one, closed when it ends.
	Transport *Transport

	clock *clock // nil: the real one
	given bool   // RunOn: the instances are given, no source is needed
}

// Fly selects Fly.io edge mode: the app's machines are listed through the
// Machines API, and each request goes to the public edge (the URL's own
// host) with fly-force-instance-id, which routes it to that machine. It
// works from anywhere the public site is reachable, with no private
// network.
type Fly struct {
	// App is the Fly.io app whose machines are the fleet.
	App string
	// Token is a Fly API token (what flyctl reads from FLY_API_TOKEN).
	Token string
	// API is the Machines API's base URL; empty means DefaultFlyAPI.
	API string
	// Regions, when not empty, limits the run to machines in these regions.
	Regions []string
	// Connect, HOST:PORT, sends every connection there instead of to the
	// URL's host (a Flycast address, a staging proxy), as curl's
	// --connect-to does. TLS still names the URL's host.
	Connect string
}

// Progress is how far a step is.
type Progress struct {
	Step    string // "purge" or "verify"
	Done    int    // pairs finished
	Total   int    // pairs in the step
	Failed  int    // pairs finished without success
	Elapsed time.Duration
}

// JobError is a setting that cannot work. Nothing was sent.
type JobError struct{ Err error }

func (e *JobError) Error() string { return e.Err.Error() }
func (e *JobError) Unwrap() error { return e.Err }

func jobErr(format string, a ...any) error { return &JobError{fmt.Errorf(format, a...)} }

// Reasons a JobError wraps, for front ends that word the remedy in their
// own terms (errors.Is).
var (
	// ErrNoInstances: the job does not say where the instances are (no DNS
	// name, static instances or Fly.io app).
	ErrNoInstances = errors.New("no instances")
	// ErrManySources: more than one of DNS name, static instances and
	// Fly.io app.
	ErrManySources = errors.New("instances from more than one source")
	// ErrNeedsFlyApp: a Fly.io setting (regions, connect address, token)
	// without a Fly.io app.
	ErrNeedsFlyApp = errors.New("only apply to a Fly.io app")
	// ErrNeedsVerifyURLs: a verify step after a ban, a tag purge or another
	// method whose URLs only carry the Host, without VerifyURLs.
	ErrNeedsVerifyURLs = errors.New("give the URLs to verify")
)

// plan is a checked job: every default applied, every string parsed.
type plan struct {
	Job
	urls       *URLList
	verifyURLs *URLList
	static     []Instance
	header     []string // extra header lines, "Name: value", canonical names
	okStatus   [600]bool
	connect    string
	banTarget  string // a ban's request path: its expression's literal prefix
	origin     *url.URL
	versions   []originVersion // per verify URL, with Origin
	secrets    *secret.Set     // the purge token and the Fly.io token: never shown
	tr         *Transport      // the job's, or the run's own
}

// check validates the job and applies its defaults.
func (j Job) check() (*plan, error) {
	p := &plan{Job: j}
	sources := 0
	for _, set := range []bool{j.DNSName != "", len(j.Instances) > 0, j.Fly.App != ""} {
		if set {
			sources++
		}
	}
	switch {
	case sources == 0 && !j.given:
		return nil, jobErr("%w: give the internal DNS name that lists every instance, static instances, or a Fly.io app", ErrNoInstances)
	case sources > 1:
		return nil, jobErr("%w: give a DNS name, static instances or a Fly.io app, not more than one", ErrManySources)
	}
	if p.Record == "" {
		p.Record = DefaultRecord
	}
	rt, err := ParseRecordType(string(p.Record))
	if err != nil {
		return nil, &JobError{err}
	}
	p.Record = rt
	if p.Port == 0 {
		p.Port = DefaultPort
	}
	if p.Port < 1 || p.Port > 65535 {
		return nil, jobErr("port %d: give a port from 1 to 65535", p.Port)
	}
	if p.DNSTimeout < 0 || p.Timeout < 0 || p.Backoff < 0 || p.Deadline < 0 || p.Wait < 0 || p.Interval < 0 {
		return nil, jobErr("durations must not be negative (DNS timeout %s, timeout %s, backoff %s, deadline %s, wait %s, interval %s)",
			p.DNSTimeout, p.Timeout, p.Backoff, p.Deadline, p.Wait, p.Interval)
	}
	if p.Concurrency < 0 || p.PerInstance < 0 || p.Pipeline < 0 || p.Attempts < 0 {
		return nil, jobErr("concurrency %d, per-instance %d, pipeline %d and attempts %d must not be negative", p.Concurrency, p.PerInstance, p.Pipeline, p.Attempts)
	}
	setDefault(&p.DNSTimeout, DefaultDNSTimeout)
	setDefault(&p.Timeout, DefaultTimeout)
	setDefault(&p.Backoff, DefaultBackoff)
	setDefault(&p.Interval, DefaultInterval)
	setDefault(&p.Concurrency, DefaultConcurrency)
	setDefault(&p.PerInstance, DefaultPerInstance)
	setDefault(&p.Pipeline, DefaultPipeline)
	setDefault(&p.Attempts, DefaultAttempts)
	if p.Attempts > 100 {
		return nil, jobErr("attempts %d: give at most 100", p.Attempts)
	}
	if p.Wait > 0 && p.Interval < MinInterval {
		return nil, jobErr("interval %s: give at least %s between verify rounds", p.Interval, MinInterval)
	}
	if p.UserAgent == "" {
		p.UserAgent = "cdnpurge/" + Version()
	}
	p.secrets = secret.New(p.Token, p.Fly.Token)

	if err := p.checkInstances(); err != nil {
		return nil, err
	}
	if err := p.checkRequest(); err != nil {
		return nil, err
	}
	if err := p.checkVerify(); err != nil {
		return nil, err
	}
	return p, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

func (p *plan) checkInstances() error {
	for _, s := range p.Instances {
		in, err := ParseInstance(s, p.Port)
		if err != nil {
			return &JobError{err}
		}
		p.static = append(p.static, in)
	}
	if p.Fly.App == "" {
		var set []string
		for _, s := range []struct {
			name string
			set  bool
		}{{"regions", len(p.Fly.Regions) > 0}, {"connect address", p.Fly.Connect != ""}, {"token", p.Fly.Token != ""}} {
			if s.set {
				set = append(set, s.name)
			}
		}
		if len(set) > 0 {
			return jobErr("Fly.io settings (%s) %w", strings.Join(set, ", "), ErrNeedsFlyApp)
		}
		return nil
	}
	if !validHostname(p.Fly.App) || strings.Contains(p.Fly.App, ".") {
		return jobErr("Fly.io app %q: give the app's name, e.g. my-cdn", p.Fly.App)
	}
	if p.Fly.Token == "" {
		return jobErr("Fly.io app %s: no API token; the Machines API needs one (flyctl tokens create readonly)", p.Fly.App)
	}
	if strings.ContainsFunc(p.Fly.Token, isCtl) {
		return jobErr("Fly.io token: contains control characters or line breaks; check where it is read from")
	}
	if p.Fly.API == "" {
		p.Fly.API = DefaultFlyAPI
	}
	if u, err := checkURL(p.Fly.API); err != nil || u.Path != "" && u.Path != "/" {
		return jobErr("Fly.io API %q: give a base URL such as %s", p.Fly.API, DefaultFlyAPI)
	}
	for _, r := range p.Fly.Regions {
		if len(r) < 3 || !validHostname(r) || strings.Contains(r, ".") {
			return jobErr("region %q: give a Fly.io region code such as iad", r)
		}
	}
	if c := p.Fly.Connect; c != "" {
		h, port, err := net.SplitHostPort(c)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 || h == "" || !(isIP(h) || validHostname(h)) {
			return jobErr("connect address %q: give HOST:PORT, e.g. 203.0.113.7:443 or [fdaa::3]:80", c)
		}
		p.connect = c
	}
	return nil
}

// ownHeader says whether cdnpurge writes header k (canonical) itself, so
// that no other setting may set it. The invalidation headers are its own
// only when the job asks for what they do (tags, a soft purge, a ban);
// otherwise they pass as given, as a broadcaster forwards an app's PURGE.
func (p *plan) ownHeader(k string) bool {
	switch k {
	case "Host", "Content-Length", "Transfer-Encoding", "Connection", "Te", "Trailer", "Upgrade", "Fly-Force-Instance-Id":
		return true
	case "Xkey-Purge", "Xkey-Softpurge":
		return len(p.Tags) > 0
	case "Purge-Soft":
		return p.Soft
	case "X-Url", "X-Host", "X-Content-Type":
		return p.Ban != ""
	}
	return false
}

func (p *plan) checkRequest() error {
	if p.Ban != "" {
		if p.Method == "" {
			p.Method = "BAN" // or the method the VCL bans on, e.g. varnish/toolbox's PURGEDIR
		}
		if p.Soft {
			return jobErr("a ban cannot be soft: Varnish bans invalidate; use a soft purge of URLs or tags instead")
		}
		if len(p.Tags) > 0 {
			return jobErr("give a ban or tags, not both")
		}
		for _, re := range []string{p.Ban, p.BanContentType} {
			if strings.ContainsFunc(re, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
				return jobErr("ban expression %q: Varnish splits ban expressions on white space; write \\s for a space", re)
			}
		}
		target, err := banTarget(p.Ban, p.Broad)
		if err != nil {
			return &JobError{err}
		}
		p.banTarget = target
	} else if p.BanContentType != "" {
		return jobErr("a content type limits a ban: give the ban's path expression too")
	} else if p.Broad {
		return jobErr("broad applies to a ban: there is no ban expression")
	}
	if p.Method == "" {
		p.Method = DefaultMethod
		if len(p.Tags) > 0 {
			p.Method = DefaultTagMethod
		}
	}
	p.Method = strings.ToUpper(p.Method)
	if !httpguts.ValidHeaderFieldName(p.Method) {
		return jobErr("method %q: not a valid HTTP method", p.Method)
	}
	for _, t := range p.Tags {
		if t == "" || strings.ContainsFunc(t, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return jobErr("tag %q: a tag is one word, without spaces or control characters", t)
		}
		if p.Method != DefaultMethod && p.Method != DefaultTagMethod {
			return jobErr("tags are purged with %s (or PURGE), not %s", DefaultTagMethod, p.Method)
		}
	}
	if p.Soft && p.Method != DefaultMethod && p.Method != DefaultTagMethod {
		return jobErr("a soft purge sends PURGE, not %s", p.Method)
	}
	if p.TokenHeader == "" {
		p.TokenHeader = DefaultTokenHeader
	}
	if !httpguts.ValidHeaderFieldName(p.TokenHeader) {
		return jobErr("token header %q: not a valid header name", p.TokenHeader)
	}
	p.TokenHeader = textproto.CanonicalMIMEHeaderKey(p.TokenHeader)
	if p.ownHeader(p.TokenHeader) || p.TokenHeader == "User-Agent" {
		return jobErr("token header %s: cdnpurge sets that header itself; name another", p.TokenHeader)
	}
	switch tok := p.Token; {
	case len(tok) > MaxTokenBytes:
		return jobErr("token: longer than %d KiB; check where it is read from", MaxTokenBytes>>10)
	case strings.ContainsFunc(tok, isCtl):
		return jobErr("token: contains control characters or line breaks, and cannot be sent as given; check where it is read from")
	case tok != strings.TrimSpace(tok):
		return jobErr("token: starts or ends with white space, which cannot be sent as given; check where it is read from")
	}
	for _, h := range p.Headers {
		k, v, err := ParseHeader(h)
		if err != nil {
			return &JobError{err}
		}
		if p.ownHeader(k) || k == p.TokenHeader {
			what := "cdnpurge sets it itself"
			if k == p.TokenHeader {
				what = "it carries the token; give the token instead"
			}
			return jobErr("header %s: %s", k, what)
		}
		p.header = append(p.header, k+": "+v)
	}
	for _, s := range p.OKStatus {
		if s < 200 || s > 599 {
			return jobErr("ok status %d: give a final status from 200 to 599", s)
		}
		p.okStatus[s] = true
	}
	for i := 200; i < 300; i++ {
		p.okStatus[i] = true
	}
	switch p.Scheme = strings.ToLower(p.Scheme); p.Scheme {
	case "":
		p.Scheme = DefaultScheme
		if p.Fly.App != "" {
			p.Scheme = DefaultEdgeScheme
		}
	case "http", "https":
	default:
		return jobErr("scheme %q: use http or https", p.Scheme)
	}
	if p.Insecure && p.Scheme != "https" {
		return jobErr("skipping certificate checks only applies to https")
	}
	if len(p.URLs) == 0 && p.URLList.Len() == 0 {
		if !p.VerifyOnly || len(p.VerifyURLs) == 0 {
			return jobErr("no URL given: give at least one absolute URL, e.g. https://example.com/feed")
		}
	}
	var err error
	if p.urls, err = parseURLs(p.URLs, p.URLList, p.RawURLs); err != nil {
		return err
	}
	if p.banTarget != "" {
		// The request path is the ban's literal prefix, whatever the URL's.
		ban := &URLList{}
		for _, u := range p.urls.All() {
			u.Target = p.banTarget
			if err := ban.Append(u); err != nil {
				return &JobError{err}
			}
		}
		p.urls = ban
	}
	return nil
}

// parseURLs makes one list of list's strings and more's URLs; more alone
// is used as it is.
func parseURLs(list []string, more *URLList, raw bool) (*URLList, error) {
	if len(list) == 0 && more != nil {
		return more, nil
	}
	out := &URLList{}
	for _, s := range list {
		add := out.Add
		if raw {
			add = out.AddRaw
		}
		if err := add(s); err != nil {
			return nil, &JobError{err}
		}
	}
	if more != nil {
		out.appendList(more)
	}
	return out, nil
}

func (p *plan) checkVerify() error {
	if p.VerifyOnly && len(p.Verify) == 0 {
		p.Verify = []Expect{DefaultExpect}
	}
	p.Verify = slices.Clone(p.Verify)
	for i, e := range p.Verify {
		e, err := ParseExpect(string(e))
		if err != nil {
			return &JobError{err}
		}
		if e == ExpectPurged && p.VerifyOnly {
			return jobErr("expect purged: needs a purge in the same run; to check an earlier purge, expect miss (or current, with the origin)")
		}
		if e == ExpectCurrent && p.Origin == "" {
			return jobErr("expect current: needs the origin's address to compare with")
		}
		p.Verify[i] = e
	}
	if p.CacheHeader != "" && !httpguts.ValidHeaderFieldName(p.CacheHeader) {
		return jobErr("cache header %q: not a valid header name", p.CacheHeader)
	}
	if p.Origin != "" {
		u, err := url.Parse(p.Origin)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return jobErr("origin %q: give the origin's base URL (scheme, host and port), e.g. http://10.0.0.5:8080; each URL's path, query and Host are added", p.Origin)
		}
		if len(p.Verify) == 0 {
			return jobErr("origin %s: there is no verify step to compare with it", p.Origin)
		}
		p.origin = u
	}
	switch p.VerifyMethod = strings.ToUpper(p.VerifyMethod); p.VerifyMethod {
	case "":
		p.VerifyMethod = DefaultVerifyMethod
		if p.Origin != "" {
			p.VerifyMethod = http.MethodGet // bodies are compared when no validator is shared
		}
	case http.MethodHead, http.MethodGet:
	default:
		return jobErr("verify method %q: verification sends HEAD or GET", p.VerifyMethod)
	}
	if len(p.Verify) == 0 {
		if len(p.VerifyURLs) > 0 {
			return jobErr("URLs to verify were given, but no verify step")
		}
		return nil
	}
	if len(p.VerifyURLs) == 0 {
		if !p.VerifyOnly && (p.Method != DefaultMethod || len(p.Tags) > 0 || p.Ban != "") {
			what := p.Method
			if len(p.Tags) > 0 {
				what = "a tag purge"
			}
			return jobErr("verify after %s: its URLs only carry the Host, so checking them proves nothing; %w", what, ErrNeedsVerifyURLs)
		}
		p.verifyURLs = p.urls
		return nil
	}
	var err error
	p.verifyURLs, err = parseURLs(p.VerifyURLs, nil, p.RawURLs)
	return err
}

// ParseHeader parses "Name: value". The name must be a valid header name
// and the value free of control characters (tabs aside).
func ParseHeader(s string) (name, value string, err error) {
	k, v, ok := strings.Cut(s, ":")
	k = strings.TrimSpace(k)
	if !ok || !httpguts.ValidHeaderFieldName(k) {
		return "", "", fmt.Errorf("header %q: write it as 'Name: value'", s)
	}
	v = strings.TrimSpace(v)
	if !httpguts.ValidHeaderFieldValue(v) || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
		return "", "", fmt.Errorf("header %s: the value contains control characters or line breaks", k)
	}
	return textproto.CanonicalMIMEHeaderKey(k), v, nil
}

func isCtl(r rune) bool { return r < ' ' || r == 0x7f }

// Outcome is what a job did: the instances found, the purge report and the
// verify reports, in order.
type Outcome struct {
	// Instances are the instances found, in report order.
	Instances []Instance
	// Skipped are machines the platform lists but that were not sent
	// anything (not started), with the reason.
	Skipped []Skipped
	// Purge is nil for a verify-only job.
	Purge *Report
	// Verify has one report per verify step.
	Verify []*Report
	// Warnings say what limited the run (the open-file limit, say).
	Warnings []string

	secrets *secret.Set
}

// Reveals says whether s shows a secret of the job (see Report.Reveals).
func (o *Outcome) Reveals(s string) bool { return o.secrets.Shows(s) }

// Skipped is an instance that was not sent anything, and why.
type Skipped struct {
	Instance Instance `json:"instance"`
	State    string   `json:"state"`
}

// Reports returns the purge report (if any) and the verify reports.
func (o *Outcome) Reports() []*Report {
	var out []*Report
	if o.Purge != nil {
		out = append(out, o.Purge)
	}
	return append(out, o.Verify...)
}

// OK says whether every step succeeded on every instance.
func (o *Outcome) OK() bool { return o.Err() == nil }

// Err is nil when every step succeeded; otherwise it says which steps
// failed and how many results each, e.g. "verify purged: 1 of 3 checks
// did not match".
func (o *Outcome) Err() error {
	var fails []string
	for _, r := range o.Reports() {
		if !r.OK() {
			fails = append(fails, r.failure())
		}
	}
	if len(fails) == 0 {
		return nil
	}
	return &StepError{Steps: fails}
}

// StepError says which steps of a job failed.
type StepError struct{ Steps []string }

func (e *StepError) Error() string { return strings.Join(e.Steps, "; ") }

// Run runs the job: find the instances, read the origin (with Origin),
// purge (unless VerifyOnly), then each verify step. Errors are *JobError
// (a setting that cannot work), *DiscoveryError (no instances found) or
// *OriginError (the origin could not be read); in each case nothing was
// sent to any instance.
// Failures of instances are in the Outcome (see Outcome.Err): a partial
// failure still reports every instance that succeeded.
//
// Run is Find then RunOn, with one deadline over both.
func (j Job) Run(ctx context.Context) (*Outcome, error) {
	p, err := j.check()
	if err != nil {
		return nil, err
	}
	ctx, cancel := p.withDeadline(ctx)
	defer cancel()
	var t Targets
	if t.Instances, t.Skipped, err = p.find(ctx); err != nil {
		return nil, err
	}
	return p.run(ctx, t)
}

// Targets are the instances a job sends to, and the machines its source
// listed that are sent nothing (not started), with the reason.
type Targets struct {
	Instances []Instance
	Skipped   []Skipped
}

// Check says whether the job's settings can work, finding and sending
// nothing: nil, or a *JobError. Run, Find and RunOn check them too.
func (j Job) Check() error {
	_, err := j.check()
	return err
}

// Find finds the instances the job would send to, sending nothing: the
// first half of Run. A caller that must record where a job goes before
// it sends (a broadcaster's journal) calls Find, then RunOn with what it
// found. Errors are *JobError or *DiscoveryError.
func (j Job) Find(ctx context.Context) (Targets, error) {
	p, err := j.check()
	if err != nil {
		return Targets{}, err
	}
	ctx, cancel := p.withDeadline(ctx)
	defer cancel()
	var t Targets
	t.Instances, t.Skipped, err = p.find(ctx)
	return t, err
}

// RunOn runs the job on the given instances instead of finding them: the
// second half of Run. The job's own source of instances (DNSName,
// Instances, Fly.App) is not used and may be empty; the instances must
// come from Find (or Outcome.Instances) of a job with the same source, so
// that edge-mode instances carry their machine IDs. The reports list the
// instances in the order given. With no instance it returns a *JobError,
// and an *OriginError when the origin (Origin) cannot be read; either way
// nothing is sent.
func (j Job) RunOn(ctx context.Context, t Targets) (*Outcome, error) {
	if len(t.Instances) == 0 {
		return nil, jobErr("no instances to send to")
	}
	if t.Instances[0].MachineID != "" && j.Fly.App == "" {
		return nil, jobErr("edge-mode instances need the job's Fly.io settings")
	}
	j.given = true
	p, err := j.check()
	if err != nil {
		return nil, err
	}
	ctx, cancel := p.withDeadline(ctx)
	defer cancel()
	return p.run(ctx, t)
}

// run sends the job to the targets: the purge (unless VerifyOnly), then
// each verify step. It refuses (sending nothing) what NoIPv6 forbids.
func (p *plan) run(ctx context.Context, t Targets) (*Outcome, error) {
	out := &Outcome{Instances: t.Instances, Skipped: t.Skipped, secrets: p.secrets}
	if p.tr = p.Transport; p.tr == nil {
		p.tr = &Transport{}
		defer p.tr.Close()
	}
	if err := p.refuseIPv6(out.Instances); err != nil {
		return nil, err
	}
	if p.origin != nil {
		versions, err := p.readOrigin(ctx, p.verifyHeaders())
		if err != nil {
			return nil, err
		}
		p.versions = versions
	}
	warnings := p.sourceWarnings(out.Instances)
	warnings = append(warnings, p.regionWarnings(out.Instances, out.Skipped)...)
	budget := p.tr.budget()
	var pw *purgeWindow
	if !p.VerifyOnly {
		p.lastStep(len(p.Verify) == 0)
		clk := p.clock()
		pw = &purgeWindow{start: clk.now()}
		out.Purge = p.purge(ctx, out.Instances, budget)
		pw.end, pw.rep = clk.now(), out.Purge
		if len(p.Verify) > 0 {
			pw.link(p.urls, p.verifyURLs)
		}
		out.Purge.Warnings = append(out.Purge.Warnings, out.Purge.objectsWarnings(p.objectsWhat())...)
	}
	for i, e := range p.Verify {
		p.lastStep(i == len(p.Verify)-1)
		out.Verify = append(out.Verify, p.verify(ctx, e, out.Instances, budget, pw))
	}
	if rs := out.Reports(); len(rs) > 0 && len(warnings) > 0 {
		// The first step's report carries them too (its JSON has no other
		// place for them).
		rs[0].Warnings = append(warnings, rs[0].Warnings...)
	}
	for _, r := range out.Reports() {
		r.Skipped, r.secrets = out.Skipped, p.secrets
		for _, w := range r.Warnings {
			if !slices.Contains(out.Warnings, w) {
				out.Warnings = append(out.Warnings, w)
			}
		}
	}
	return out, nil
}

// lastStep, before the run's last step, drains the run's own transport:
// nothing will take the connections that step leaves.
func (p *plan) lastStep(last bool) {
	if last && p.Transport == nil {
		p.tr.drain()
	}
}

// Plan finds the instances and says what Run would send, sending nothing.
func (j Job) Plan(ctx context.Context) (*Plan, error) {
	p, err := j.check()
	if err != nil {
		return nil, err
	}
	ctx, cancel := p.withDeadline(ctx)
	defer cancel()
	ins, skipped, err := p.find(ctx)
	if err != nil {
		return nil, err
	}
	if err := p.refuseIPv6(ins); err != nil {
		return nil, err
	}
	pl := &Plan{Instances: ins, Skipped: skipped, Method: p.Method, Scheme: p.Scheme, URLs: p.urls, Verify: p.Verify, secrets: p.secrets}
	pl.Warnings = append(p.sourceWarnings(ins), p.regionWarnings(ins, skipped)...)
	pl.Header = append(pl.Header, p.requestHeaders(true)...)
	if len(p.Verify) > 0 {
		pl.VerifyMethod, pl.VerifyURLs, pl.VerifyHeaders = p.VerifyMethod, p.verifyURLs, p.verifyHeaders()
		if p.origin != nil {
			pl.Origin = p.Origin
		}
	}
	if p.VerifyOnly {
		pl.Method = ""
	}
	return pl, nil
}

// sourceWarnings says when the DNS name looks like the wrong one: it is a
// URL's own (public) host, which usually reaches one instance, or it lists
// exactly one instance.
func (p *plan) sourceWarnings(ins []Instance) []string {
	if p.DNSName == "" {
		return nil
	}
	var w []string
	name := strings.TrimSuffix(strings.ToLower(p.DNSName), ".")
	var hosts []urlHost
	for _, l := range []*URLList{p.urls, p.verifyURLs} {
		if l != nil {
			hosts = append(hosts, l.hosts...)
		}
	}
	for _, u := range hosts {
		if strings.EqualFold(u.hostname, name) {
			w = append(w, fmt.Sprintf("the DNS name %s is the URLs' public host, which usually reaches one instance, not every one: give the internal name that lists them all (on Fly.io, <app>.internal)", p.DNSName))
			break
		}
	}
	if len(ins) == 1 {
		w = append(w, fmt.Sprintf("%s lists one instance (%s): if the fleet has more, the name does not list them all", p.DNSName, ins[0]))
	}
	return w
}

// regionWarnings says which Fly.io regions asked for have no machine at
// all (none started, none skipped), when others have: a typo beside right
// names, or a region the app left, would otherwise pass unnoticed.
func (p *plan) regionWarnings(ins []Instance, skipped []Skipped) []string {
	if len(p.Fly.Regions) < 2 {
		return nil // one region without machines fails discovery
	}
	var found []string
	for _, in := range ins {
		found = append(found, in.Region)
	}
	for _, s := range skipped {
		found = append(found, s.Instance.Region)
	}
	slices.Sort(found)
	found = slices.Compact(found)
	var w []string
	for _, r := range p.Fly.Regions {
		if !slices.Contains(found, r) {
			w = append(w, fmt.Sprintf("the app has no machine in %s, a region asked for: check its name (the machines found are in %s)", r, andList(found)))
		}
	}
	return w
}

// withDeadline bounds ctx by the job's Deadline, when it has one.
func (p *plan) withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if p.Deadline > 0 {
		return context.WithTimeoutCause(ctx, p.Deadline, ErrDeadline)
	}
	return ctx, func() {}
}

// ErrDeadline is why a run stopped when the job's Deadline passed
// (errors.Is also matches context.DeadlineExceeded). A run stopped by its
// caller says the caller's cause (context.WithCancelCause): a front end
// can name a signal that way.
var ErrDeadline error = deadlineError{}

type deadlineError struct{}

func (deadlineError) Error() string        { return "the job's deadline passed" }
func (deadlineError) Is(target error) bool { return target == context.DeadlineExceeded }

// Plan is what a job would send.
type Plan struct {
	Instances []Instance
	Skipped   []Skipped
	Method    string // empty for a verify-only job
	Scheme    string
	URLs      *URLList
	// Header lists the request's headers besides Host, the token's value
	// hidden.
	Header []string
	Verify []Expect
	// What each verify step would send: its method, its URLs (the job's
	// VerifyURLs, or URLs) and headers besides Host, and the origin it
	// would compare copies with (empty: none).
	VerifyMethod  string
	VerifyURLs    *URLList
	VerifyHeaders []string
	Origin        string
	// Warnings are what Run would warn of before sending anything: the
	// DNS name looks like the wrong one, a region asked for has no
	// machine.
	Warnings []string

	secrets *secret.Set
}

// Reveals says whether s shows a secret of the job (see Report.Reveals).
func (p *Plan) Reveals(s string) bool { return p.secrets.Shows(s) }

// find lists the instances from the job's one source.
func (p *plan) find(ctx context.Context) ([]Instance, []Skipped, error) {
	switch {
	case p.Fly.App != "":
		return listMachines(ctx, p.Fly, p.Timeout)
	case len(p.static) > 0:
		ins, err := expandStatic(ctx, p.static, p.lookupHost)
		if err != nil {
			return nil, nil, &DiscoveryError{Kind: KindBadAnswer, Name: strings.Join(p.Instances, ", "), Err: err}
		}
		return ins, nil, nil
	}
	ins, err := Discover(ctx, Discovery{Name: p.DNSName, Record: p.Record, Port: p.Port, Resolver: p.Resolver, ResolvConf: p.ResolvConf, Timeout: p.DNSTimeout})
	return ins, nil, err
}

// KindIPv6 is a discovery whose instances a job that cannot reach IPv6
// (Job.NoIPv6) would connect to over IPv6.
const KindIPv6 ErrorKind = "ipv6"

// refuseIPv6 fails a NoIPv6 job whose connections would go to IPv6
// addresses: the instances' own, or in edge mode the connect address (or
// the URLs' hosts), which is where edge mode connects.
func (p *plan) refuseIPv6(ins []Instance) error {
	if !p.NoIPv6 {
		return nil
	}
	var v6 []string
	isV6 := func(host string) bool {
		a, err := netip.ParseAddr(strings.Trim(host, "[]"))
		return err == nil && a.Unmap().Is6()
	}
	total := len(ins)
	switch {
	case p.Fly.App != "" && p.connect != "":
		total = 1
		if h, _, err := net.SplitHostPort(p.connect); err == nil && isV6(h) {
			v6 = append(v6, p.connect)
		}
	case p.Fly.App != "":
		total = p.urls.Len()
		for _, u := range p.urls.All() {
			if isV6(u.Hostname) {
				v6 = append(v6, u.Host)
			}
		}
	default:
		for _, in := range ins {
			if isV6(in.Host) {
				v6 = append(v6, in.String())
			}
		}
	}
	if len(v6) == 0 {
		return nil
	}
	shown := v6
	if len(shown) > 3 {
		shown = append(shown[:3:3], fmt.Sprintf("and %d more", len(v6)-3))
	}
	what := fmt.Sprintf("%d of %d instances have IPv6 addresses (%s)", len(v6), total, strings.Join(shown, ", "))
	name := p.DNSName
	if p.Fly.App != "" {
		what = fmt.Sprintf("edge mode would connect to IPv6 addresses (%s)", strings.Join(shown, ", "))
		name = "Fly.io app " + p.Fly.App
	} else if name == "" {
		name = strings.Join(p.Instances, ", ")
	}
	de := &DiscoveryError{Kind: KindIPv6, Name: name, Err: fmt.Errorf("%s, and the network this job runs in has no IPv6", what)}
	if p.DNSName != "" && p.Fly.App == "" {
		de.Record, de.Resolver = p.Record, p.Resolver
	}
	return de
}

// lookupHost resolves a static instance's name with the job's resolver
// when one is set (its errors then name it), else the system's (which
// reads /etc/hosts too).
func (p *plan) lookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	if p.Resolver == "" {
		ctx, cancel := context.WithTimeout(ctx, p.DNSTimeout)
		defer cancel()
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}
	servers, err := resolverAddrs(p.Resolver, "")
	if err != nil {
		return nil, err
	}
	r := &resolver{servers: servers, timeout: p.DNSTimeout}
	var found []netip.Addr
	var lastErr error
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		a, err := r.addrs(ctx, host, qt)
		if err != nil && kindOf(err) != KindNoRecords {
			lastErr = err
		}
		found = append(found, a...)
	}
	if len(found) == 0 && lastErr != nil {
		return nil, fmt.Errorf("%w (resolver %s)", lastErr, p.Resolver)
	}
	return found, nil
}

// requestHeaders lists the header lines every request of the purge step
// carries besides Host, in order; with hide, the token's value is hidden.
func (p *plan) requestHeaders(hide bool) []string {
	var h []string
	ua := true
	for _, l := range p.header {
		if strings.HasPrefix(l, "User-Agent:") {
			ua = false
		}
	}
	if ua {
		h = append(h, "User-Agent: "+p.UserAgent)
	}
	h = append(h, p.header...)
	if p.Token != "" {
		v := p.Token
		if hide {
			v = "(hidden)"
		}
		h = append(h, p.TokenHeader+": "+v)
	}
	switch {
	case len(p.Tags) > 0 && p.Soft:
		h = append(h, "xkey-softpurge: "+strings.Join(p.Tags, " "))
	case len(p.Tags) > 0:
		h = append(h, "xkey-purge: "+strings.Join(p.Tags, " "))
	case p.Soft:
		h = append(h, "Purge-Soft: 1")
	}
	if p.Ban != "" {
		// FOSHttpCache's VCL needs all three ban headers (without one it
		// answers 200 and bans nothing); ".*" is "any content type".
		ct := p.BanContentType
		if ct == "" {
			ct = ".*"
		}
		h = append(h, "X-Url: "+p.Ban, "X-Content-Type: "+ct)
	}
	return h
}

// errNotSent is why a pair was never sent when the run stopped first.
var errNotSent = errors.New("not sent: the run was stopped first")
