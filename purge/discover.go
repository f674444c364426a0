package purge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// RecordType selects the DNS records that list a fleet's instances.
type RecordType string

// The record types Discover understands.
const (
	RecordAAAA RecordType = "aaaa" // IPv6 addresses, as Fly.io's <app>.internal
	RecordA    RecordType = "a"    // IPv4 addresses
	RecordSRV  RecordType = "srv"  // targets and ports; targets resolved to addresses
)

// ParseRecordType accepts aaaa, a or srv in any case.
func ParseRecordType(s string) (RecordType, error) {
	switch t := RecordType(strings.ToLower(strings.TrimSpace(s))); t {
	case RecordAAAA, RecordA, RecordSRV:
		return t, nil
	}
	return "", fmt.Errorf("record type %q: use aaaa, a or srv", s)
}

func (t RecordType) qtype() uint16 {
	switch t {
	case RecordA:
		return dns.TypeA
	case RecordSRV:
		return dns.TypeSRV
	}
	return dns.TypeAAAA
}

// Discovery says how to find a fleet's instances in DNS. Zero fields take
// the defaults Job documents.
type Discovery struct {
	// Name is the DNS name whose records list every instance (never the
	// public host, which reaches one instance only).
	Name string
	// Record is the record type to ask for; empty means AAAA.
	Record RecordType
	// Port is the instances' port for A and AAAA records (SRV records carry
	// their own). Zero means DefaultPort.
	Port int
	// Resolver is the DNS server as HOST:PORT (or HOST, port 53). Empty means
	// the nameservers of ResolvConf, each tried in turn when one does not
	// answer.
	Resolver string
	// ResolvConf is the resolver configuration read when Resolver is empty;
	// empty means DefaultResolvConf.
	ResolvConf string
	// Timeout bounds each DNS exchange; zero means DefaultDNSTimeout.
	Timeout time.Duration
}

// ErrorKind tells discovery failures apart.
type ErrorKind string

// The ways discovery can fail.
const (
	KindConfig      ErrorKind = "config"      // bad name, record type or resolver setting
	KindNXDomain    ErrorKind = "nxdomain"    // the name does not exist
	KindNoRecords   ErrorKind = "no-records"  // the name exists, without records of that type
	KindServerError ErrorKind = "server"      // SERVFAIL, REFUSED or another error code
	KindTimeout     ErrorKind = "timeout"     // the resolver did not answer in time
	KindUnreachable ErrorKind = "unreachable" // the resolver could not be reached at all
	KindBadAnswer   ErrorKind = "bad-answer"  // the answer cannot be used (CNAME loop, SRV port 0, ...)
	KindAPI         ErrorKind = "api"         // a platform API (Fly Machines) failed or refused
	KindStopped     ErrorKind = "stopped"     // the run was stopped (its deadline, its caller) before an answer came
)

// DiscoveryError is the error finding the instances returns. Kind says what
// went wrong and the message says why; Hint says what to check, apart, so
// that a front end can word the remedy in its own terms, once.
type DiscoveryError struct {
	Kind     ErrorKind
	Name     string     // the DNS name (or app) looked up
	Record   RecordType // the record type asked for (DNS only)
	Resolver string     // the resolvers asked (DNS only)
	// Suggest, with KindNoRecords, is a record type the name does have.
	Suggest RecordType
	// Status, with KindAPI, is the HTTP status the platform API answered:
	// 401 and 403 refuse the token, 429 is a rate limit, 5xx a failure on
	// the platform's side. RetryAfter is how long it asked to wait, if it
	// said.
	Status     int
	RetryAfter time.Duration
	// Regions, with KindNoRecords from a platform API asked for machines
	// in some regions only, are the regions its machines are in.
	Regions []string
	Err     error
}

func (e *DiscoveryError) Error() string {
	var b strings.Builder
	if e.Record != "" {
		fmt.Fprintf(&b, "discover %s %s", strings.ToUpper(string(e.Record)), e.Name)
	} else {
		fmt.Fprintf(&b, "discover %s", e.Name)
	}
	if e.Resolver != "" {
		fmt.Fprintf(&b, " via %s", e.Resolver)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Hint says what to check, in terms of the job's settings; empty when the
// error says it already. DNS advice only for DNS lookups; a platform API's
// rate limit and failures say when to try again.
func (e *DiscoveryError) Hint() string {
	if e.Kind == KindAPI {
		return e.apiHint()
	}
	if e.Record == "" {
		return ""
	}
	switch e.Kind {
	case KindNXDomain:
		return "check the name; on Fly.io it is <app>.internal"
	case KindNoRecords:
		if e.Suggest != "" {
			return fmt.Sprintf("it has %s records: use record type %s", strings.ToUpper(string(e.Suggest)), e.Suggest)
		}
		return "it has no AAAA, A or SRV records either: check the name and that instances are running"
	case KindServerError:
		return "the resolver failed or refused the query: check that it serves this name"
	case KindTimeout:
		return "check the resolver address, or give DNS more time"
	case KindUnreachable:
		return "check the resolver address and that a DNS server listens there"
	}
	return ""
}

// apiHint says when to ask a platform API again after a rate limit or a
// failure on its side (nothing for what a new try would not change).
func (e *DiscoveryError) apiHint() string {
	again := "try again later"
	switch {
	case e.RetryAfter > 0:
		again = fmt.Sprintf("try again in %s, as the API asks", e.RetryAfter)
	case e.Status == 429:
		again = "try again in a minute"
	}
	switch {
	case e.Status == 429:
		return again
	case e.Status >= 500:
		return again + "; https://status.flyio.net shows Fly.io's incidents"
	}
	return ""
}

func (e *DiscoveryError) Unwrap() error { return e.Err }

// dnsError is a failure inside discovery; Discover turns it into a
// DiscoveryError once, with the name, resolver and hint.
type dnsError struct {
	kind ErrorKind
	err  error
}

func (e *dnsError) Error() string { return e.err.Error() }
func (e *dnsError) Unwrap() error { return e.err }

func kindOf(err error) ErrorKind {
	var de *dnsError
	if errors.As(err, &de) {
		return de.kind
	}
	return KindBadAnswer
}

const maxCNAMEHops = 8

// Discover looks up d.Name and returns every instance it lists,
// de-duplicated and in a stable order. Answers too large for UDP are fetched
// again over TCP, so fleets of thousands of instances are found whole.
// Zero instances is an error. Errors are *DiscoveryError.
func Discover(ctx context.Context, d Discovery) ([]Instance, error) {
	if d.Record == "" {
		d.Record = RecordAAAA
	}
	if d.Port == 0 {
		d.Port = DefaultPort
	}
	if d.Timeout <= 0 {
		d.Timeout = DefaultDNSTimeout
	}
	fail := func(kind ErrorKind, err error) *DiscoveryError {
		return &DiscoveryError{Kind: kind, Name: d.Name, Record: d.Record, Resolver: d.Resolver, Err: err}
	}
	if _, err := ParseRecordType(string(d.Record)); err != nil {
		return nil, fail(KindConfig, err)
	}
	name := strings.TrimSpace(d.Name)
	if name == "" {
		return nil, fail(KindConfig, errors.New("no DNS name: give the internal name that lists every instance, e.g. my-app.internal"))
	}
	if _, ok := dns.IsDomainName(name); !ok || strings.ContainsAny(name, "/: ") {
		return nil, fail(KindConfig, fmt.Errorf("%q is not a DNS name: give one such as my-app.internal, not a URL", name))
	}
	if d.Port < 1 || d.Port > 65535 {
		return nil, fail(KindConfig, fmt.Errorf("port %d is out of range 1-65535", d.Port))
	}
	servers, err := resolverAddrs(d.Resolver, d.ResolvConf)
	if err != nil {
		return nil, fail(KindConfig, err)
	}
	d.Resolver = strings.Join(servers, ", ")
	r := &resolver{servers: servers, timeout: d.Timeout}

	var out []Instance
	switch d.Record {
	case RecordSRV:
		out, err = r.srv(ctx, name)
	default:
		var addrs []netip.Addr
		if addrs, err = r.addrs(ctx, name, d.Record.qtype()); err == nil {
			for _, a := range addrs {
				if why := badAddr(a); why != "" {
					err = &dnsError{KindBadAnswer, fmt.Errorf("the name lists %s, %s, which cannot be an instance's", a.Unmap(), why)}
					break
				}
				out = append(out, Instance{Host: a.String(), Port: d.Port})
			}
		}
	}
	if err == nil && len(out) == 0 {
		err = &dnsError{KindNoRecords, errors.New("no instances found")}
	}
	if err != nil {
		de := fail(kindOf(err), err)
		if de.Kind == KindNoRecords {
			de.Suggest = r.suggest(ctx, name, d.Record)
		}
		return nil, de
	}
	return dedupe(out), nil
}

// resolverAddrs returns the DNS servers to ask: resolver alone when set,
// else the nameservers of conf.
func resolverAddrs(resolver, conf string) ([]string, error) {
	if resolver != "" {
		if h, p, err := net.SplitHostPort(resolver); err == nil {
			if n, err := strconv.Atoi(p); err == nil && n > 0 && n < 65536 && (validHostname(h) || isIP(h)) {
				return []string{resolver}, nil
			}
		}
		if a, err := netip.ParseAddr(strings.Trim(resolver, "[]")); err == nil {
			return []string{net.JoinHostPort(a.String(), "53")}, nil
		}
		if validHostname(resolver) {
			return []string{net.JoinHostPort(resolver, "53")}, nil
		}
		return nil, fmt.Errorf("resolver %q: give HOST:PORT, e.g. 127.0.0.1:53 or [fdaa::3]:53", resolver)
	}
	if conf == "" {
		conf = DefaultResolvConf
	}
	cc, err := dns.ClientConfigFromFile(conf)
	if err != nil {
		return nil, fmt.Errorf("read the system's resolver from %s: %w; give a resolver address", conf, err)
	}
	if len(cc.Servers) == 0 {
		return nil, fmt.Errorf("no nameserver in %s; give a resolver address", conf)
	}
	port := cc.Port
	if port == "" {
		port = "53"
	}
	out := make([]string, len(cc.Servers))
	for i, s := range cc.Servers {
		out[i] = net.JoinHostPort(s, port)
	}
	return out, nil
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

type resolver struct {
	servers []string
	timeout time.Duration
}

// query asks each server in turn until one answers (whatever its answer).
func (r *resolver) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	var errs []error
	for _, s := range r.servers {
		resp, err := r.queryServer(ctx, s, name, qtype)
		if err == nil {
			return resp, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	return nil, &dnsError{kindOf(errs[len(errs)-1]), fmt.Errorf("no resolver answered: %w", errors.Join(errs...))}
}

// queryServer sends one query to server with EDNS0 over UDP. It asks again
// over TCP when the answer is truncated or does not fit a datagram, and
// without EDNS0 when the server does not understand it (FORMERR).
func (r *resolver) queryServer(ctx context.Context, server, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.SetEdns0(dns.DefaultMsgSize, false)

	udp := &dns.Client{Net: "udp", Timeout: r.timeout, UDPSize: dns.MaxMsgSize}
	resp, err := exchange(ctx, udp, m, server)
	if err == nil && resp.Rcode == dns.RcodeFormatError && resp.IsEdns0() == nil {
		// An old server that does not speak EDNS0: ask plainly (and over
		// TCP below if the answer is then truncated).
		m.Extra = nil
		resp, err = exchange(ctx, udp, m, server)
	}
	var ne net.Error
	switch {
	case err == nil && !resp.Truncated:
		return resp, nil
	case err != nil && (ctx.Err() != nil || errors.As(err, &ne) && ne.Timeout() || isRefused(err)):
		return nil, classifyNetErr(ctx, err, server, r.timeout)
	}
	// Truncated, or an answer that could not be read (too big for a
	// datagram, say): TCP has no size limit.
	tcp := &dns.Client{Net: "tcp", Timeout: r.timeout}
	resp, terr := exchange(ctx, tcp, m, server)
	if terr != nil {
		why := "the answer was truncated over UDP"
		if err != nil {
			why = fmt.Sprintf("the UDP answer could not be read (%v)", err)
		}
		return nil, classifyNetErr(ctx, fmt.Errorf("%s, and TCP failed: %w", why, terr), server, r.timeout)
	}
	return resp, nil
}

// exchange sends m to server and reads its answer, as ExchangeContext does,
// but a stop (ctx cancelled: a signal, the job's deadline) ends the wait at
// once: miekg/dns only takes the context's deadline into account, so a
// cancelled lookup would go on waiting for the DNS timeout.
func exchange(ctx context.Context, c *dns.Client, m *dns.Msg, server string) (*dns.Msg, error) {
	conn, err := c.DialContext(ctx, server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	resp, _, err := c.ExchangeWithConnContext(ctx, m, conn)
	return resp, err
}

func isRefused(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && strings.Contains(oe.Err.Error(), "refused")
}

func classifyNetErr(ctx context.Context, err error, server string, timeout time.Duration) error {
	var ne net.Error
	switch {
	case stoppedBy(ctx):
		// The run was stopped (its deadline, its caller): say by what.
		return &dnsError{KindStopped, fmt.Errorf("stopped waiting for resolver %s: %w", server, context.Cause(ctx))}
	case errors.As(err, &ne) && ne.Timeout():
		return &dnsError{KindTimeout, fmt.Errorf("resolver %s did not answer within %s", server, timeout)}
	default:
		return &dnsError{KindUnreachable, fmt.Errorf("resolver %s unreachable: %w", server, err)}
	}
}

// stoppedBy says whether ctx ended the exchange: it is done, or its
// deadline has passed (the DNS client reads until ctx's deadline, and its
// timeout can come a moment before ctx says it is done).
func stoppedBy(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		<-ctx.Done() // due now: its cause is set with it
		return true
	}
	return false
}

func rcodeErr(resp *dns.Msg, name string, qtype uint16) error {
	switch resp.Rcode {
	case dns.RcodeSuccess:
		return nil
	case dns.RcodeNameError:
		return &dnsError{KindNXDomain, fmt.Errorf("name %s does not exist (NXDOMAIN)", name)}
	default:
		rc := dns.RcodeToString[resp.Rcode]
		if rc == "" {
			rc = "rcode " + strconv.Itoa(resp.Rcode)
		}
		return &dnsError{KindServerError, fmt.Errorf("the resolver answered %s for %s %s", rc, dns.TypeToString[qtype], name)}
	}
}

// lookup asks for qtype records of name, following CNAMEs both inside one
// answer and across queries, and returns the records of that type and the
// answer's additional section.
func (r *resolver) lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, []dns.RR, error) {
	target := dns.Fqdn(name)
	seen := map[string]bool{}
	for hop := 0; hop <= maxCNAMEHops; hop++ {
		resp, err := r.query(ctx, target, qtype)
		if err != nil {
			return nil, nil, err
		}
		if err := rcodeErr(resp, strings.TrimSuffix(target, "."), qtype); err != nil {
			return nil, nil, err
		}
		// Walk the CNAME chain inside the answer.
		cnames := map[string]string{}
		for _, rr := range resp.Answer {
			if c, ok := rr.(*dns.CNAME); ok {
				cnames[strings.ToLower(c.Hdr.Name)] = c.Target
			}
		}
		owner := strings.ToLower(target)
		for steps := 0; cnames[owner] != ""; steps++ {
			if steps > maxCNAMEHops || seen[owner] {
				return nil, nil, &dnsError{KindBadAnswer, fmt.Errorf("CNAME loop at %s", owner)}
			}
			seen[owner] = true
			owner = strings.ToLower(dns.Fqdn(cnames[owner]))
		}
		var out []dns.RR
		for _, rr := range resp.Answer {
			if rr.Header().Rrtype == qtype && strings.EqualFold(rr.Header().Name, owner) {
				out = append(out, rr)
			}
		}
		if len(out) > 0 {
			return out, resp.Extra, nil
		}
		if owner == strings.ToLower(target) {
			return nil, nil, &dnsError{KindNoRecords, fmt.Errorf("the name exists but has no %s records", dns.TypeToString[qtype])}
		}
		// The answer ended in a CNAME the server did not resolve: ask for it.
		target = owner
	}
	return nil, nil, &dnsError{KindBadAnswer, fmt.Errorf("more than %d CNAME hops", maxCNAMEHops)}
}

func (r *resolver) addrs(ctx context.Context, name string, qtype uint16) ([]netip.Addr, error) {
	rrs, _, err := r.lookup(ctx, name, qtype)
	if err != nil {
		return nil, err
	}
	return addrsOf(rrs, ""), nil
}

// addrsOf returns the addresses of the A and AAAA records among rrs, only
// those owned by owner when it is not empty.
func addrsOf(rrs []dns.RR, owner string) []netip.Addr {
	var out []netip.Addr
	for _, rr := range rrs {
		if owner != "" && !strings.EqualFold(rr.Header().Name, owner) {
			continue
		}
		var ip net.IP
		switch v := rr.(type) {
		case *dns.A:
			ip = v.A
		case *dns.AAAA:
			ip = v.AAAA
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// srv resolves SRV records, then every target's addresses, all targets at
// once and each target once. A target without addresses is an error: an
// instance the fleet lists must not be skipped silently. So are port 0 and
// the target "." (RFC 2782: the service is decidedly not available).
func (r *resolver) srv(ctx context.Context, name string) ([]Instance, error) {
	rrs, extra, err := r.lookup(ctx, name, dns.TypeSRV)
	if err != nil {
		return nil, err
	}
	targets := map[string][]netip.Addr{}
	var order []string
	for _, rr := range rrs {
		s := rr.(*dns.SRV)
		if s.Target == "." {
			return nil, &dnsError{KindBadAnswer, errors.New(`an SRV record has the target "." (RFC 2782: the service is not available at this name)`)}
		}
		if s.Port == 0 {
			return nil, &dnsError{KindBadAnswer, fmt.Errorf("the SRV record for %s has port 0", s.Target)}
		}
		t := strings.ToLower(s.Target)
		if _, ok := targets[t]; !ok {
			// Addresses the server sent along save a query.
			targets[t] = dualStack(addrsOf(extra, s.Target))
			order = append(order, t)
		}
	}
	var todo []string
	for _, t := range order {
		if len(targets[t]) == 0 {
			todo = append(todo, t)
		}
	}
	found := make([][]netip.Addr, len(todo))
	errs := make([]error, len(todo))
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallelLookups)
	for i, t := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			found[i], errs[i] = r.targetAddrs(ctx, t)
		}()
	}
	wg.Wait()
	if err := targetsErr(todo, errs); err != nil {
		return nil, &dnsError{KindBadAnswer, err}
	}
	for i, t := range todo {
		targets[t] = found[i]
	}
	var out []Instance
	for _, rr := range rrs {
		s := rr.(*dns.SRV)
		for _, a := range targets[strings.ToLower(s.Target)] {
			if why := badAddr(a); why != "" {
				return nil, &dnsError{KindBadAnswer, fmt.Errorf("SRV target %s lists %s, %s, which cannot be an instance's", s.Target, a.Unmap(), why)}
			}
			out = append(out, Instance{Host: a.String(), Port: int(s.Port)})
		}
	}
	return out, nil
}

// maxParallelLookups bounds the SRV targets resolved at once.
const maxParallelLookups = 64

// targetsErr says, in one line, which SRV targets did not resolve: how
// many, the first few names, and the first reason.
func targetsErr(targets []string, errs []error) error {
	var failed []string
	var first error
	for i, err := range errs {
		if err != nil {
			failed = append(failed, targets[i])
			if first == nil {
				first = err
			}
		}
	}
	switch len(failed) {
	case 0:
		return nil
	case 1:
		return first
	}
	names := strings.Join(failed[:min(3, len(failed))], ", ")
	if len(failed) > 3 {
		names += fmt.Sprintf(" and %d more", len(failed)-3)
	}
	return fmt.Errorf("%d of %d SRV targets do not resolve (%s); the first: %w", len(failed), len(targets), names, first)
}

// targetAddrs resolves one SRV target to its addresses (see dualStack).
func (r *resolver) targetAddrs(ctx context.Context, target string) ([]netip.Addr, error) {
	var found []netip.Addr
	var lastErr error
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		a, err := r.addrs(ctx, target, qt)
		if err != nil && kindOf(err) != KindNoRecords {
			lastErr = err
		}
		found = append(found, a...)
	}
	found = dualStack(found)
	switch {
	case len(found) > 0:
		return found, nil
	case lastErr != nil:
		return nil, fmt.Errorf("SRV target %s: %w", target, lastErr)
	}
	return nil, fmt.Errorf("SRV target %s has no A or AAAA records: every SRV target must resolve to an address", target)
}

// suggest looks for records of the other types, so that an empty answer
// can say which record type would work.
func (r *resolver) suggest(ctx context.Context, name string, tried RecordType) RecordType {
	for _, t := range []RecordType{RecordAAAA, RecordA, RecordSRV} {
		if t == tried {
			continue
		}
		if rrs, _, err := r.lookup(ctx, name, t.qtype()); err == nil && len(rrs) > 0 {
			return t
		}
	}
	return ""
}
