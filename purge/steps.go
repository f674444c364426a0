package purge

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// purge runs the purge step.
func (p *plan) purge(ctx context.Context, instances []Instance, budget fdBudget) *Report {
	rep := newReport(StepPurge, p.Method, p.urls, instances)
	ps := p.newPass(StepPurge, p.Method, p.urls, p.requestHeaders(false))
	ps.read = readOpts{keepBody: true}
	ps.judge = func(k int, r *response, _ int64) (bool, bool, error) {
		rep.setExtra(k, r.objects, r.purgedAt)
		return p.judgePurge(rep, k, r)
	}
	start := time.Now()
	p.newEngine(ps, rep, budget).run(ctx)
	rep.Duration = time.Since(start)
	return rep
}

// newPass encodes the requests of a step: per URL the request line and
// Host (and a ban's X-Host), then the shared headers.
func (p *plan) newPass(step Step, method string, urls []URL, headers []string) *pass {
	ps := &pass{step: step, method: method, heads: make([][]byte, len(urls)), serverName: make([]string, len(urls))}
	switch method {
	case DefaultMethod, DefaultTagMethod, "BAN", http.MethodGet, http.MethodHead:
		// Idempotent: sending one again after its connection broke is safe,
		// and so is pipelining.
		ps.idempotent = true
		ps.depth = p.Pipeline
	default:
		ps.depth = 1
	}
	ps.readBuf = 16 << 10
	if step == StepVerify {
		ps.depth = 1 // a HEAD answer that carries a body is caught before the next request
		ps.readBuf = 4 << 10
	}
	edge := p.Fly.App != ""
	if edge {
		ps.dial = make([]string, len(urls))
	}
	for i, u := range urls {
		b := make([]byte, 0, len(method)+len(u.Target)+len(u.Host)+32)
		b = append(b, method...)
		b = append(b, ' ')
		b = append(b, u.Target...)
		b = append(b, " HTTP/1.1\r\nHost: "...)
		b = append(b, u.Host...)
		b = append(b, "\r\n"...)
		if step == StepPurge && p.Ban != "" {
			b = append(b, "X-Host: ^"+regexp.QuoteMeta(u.Host)+"$\r\n"...)
		}
		ps.heads[i] = b
		if p.Scheme == "https" {
			ps.serverName[i] = u.Hostname
		}
		if edge {
			ps.dial[i] = p.connect
			if ps.dial[i] == "" {
				port := u.Port
				switch {
				case port != "":
				case p.Scheme == "https":
					port = "443"
				default:
					port = "80"
				}
				ps.dial[i] = net.JoinHostPort(u.Hostname, port)
			}
		}
	}
	var common strings.Builder
	for _, h := range headers {
		common.WriteString(h)
		common.WriteString("\r\n")
	}
	common.WriteString("\r\n")
	ps.common = []byte(common.String())
	return ps
}

func (p *plan) newEngine(ps *pass, rep *Report, budget fdBudget) *engine {
	e := &engine{p: p, ps: ps, rep: rep, maxConns: p.Concurrency, budget: budget}
	if p.Scheme == "https" {
		e.tls = &tls.Config{InsecureSkipVerify: p.Insecure, RootCAs: p.RootCAs, MinVersion: tls.VersionTLS12} //nolint:gosec // skipping checks is the user's explicit choice
	}
	for i, in := range rep.Instances {
		t := &instState{idx: i, in: in, n: len(rep.URLs)}
		if ps.todo != nil {
			t.todo, t.n = ps.todo[i], len(ps.todo[i])
		}
		if in.MachineID != "" {
			t.hdr = []byte("Fly-Force-Instance-Id: " + in.MachineID + "\r\n")
		}
		e.insts = append(e.insts, t)
	}
	return e
}

// judgePurge reads a purge's answer: a 2xx (or an accepted status) is
// purged, unless it is a cache hit, which means the VCL treated the PURGE
// as an ordinary request.
func (p *plan) judgePurge(rep *Report, k int, r *response) (ok, retry bool, err error) {
	in, u := rep.Instances[k%len(rep.Instances)], rep.URLs[k/len(rep.Instances)]
	fail := func(cause error, why string) error {
		return &InstanceError{Instance: in, URL: u.String(), Status: r.status, Reason: p.answer(r) + why, Err: cause}
	}
	switch {
	case r.status < len(p.okStatus) && p.okStatus[r.status]:
		// A VCL that does not handle PURGE looks it up like a GET: a hit
		// (two ids), or a miss delivered with the origin's page (one id and
		// an Age header, which a synthetic purge answer never has).
		switch {
		case p.Method != DefaultMethod || r.status >= 300:
		case r.varnishIDs == 2:
			return false, false, fail(ErrServedFromCache, ": "+ErrServedFromCache.Error())
		case r.varnishIDs == 1 && r.age:
			return false, false, fail(ErrPurgeNotHandled, ": "+ErrPurgeNotHandled.Error())
		}
		return true, false, nil
	case r.status == http.StatusUnauthorized && p.Token == "":
		return false, false, fail(ErrNoToken, ": "+ErrNoToken.Error())
	case r.status == http.StatusUnauthorized:
		return false, false, fail(ErrTokenRejected, ": "+ErrTokenRejected.Error())
	case r.status == http.StatusForbidden || r.status == http.StatusMethodNotAllowed || r.status == http.StatusNotImplemented:
		return false, false, fail(ErrRefused, fmt.Sprintf(": the instance's configuration refused the %s", p.Method))
	case r.status == http.StatusNotFound && p.Method == DefaultMethod:
		return false, false, fail(ErrNotFound, ": the instance found nothing to purge there, or does not route PURGE (a VCL that answers 404 for \"not cached\" needs 404 accepted as purged)")
	case r.status >= 300 && r.status < 400:
		return false, false, fail(nil, ": redirects are not followed; a purge must reach the cache itself")
	}
	return false, retryable(r.status), fail(nil, "")
}

// answer is the instance's answer in a few words: status, reason phrase
// and what its body says (the token never shown).
func (p *plan) answer(r *response) string {
	reason := cleanText(string(r.reason), 120)
	switch {
	case showsToken(string(r.reason), p.Token):
		reason = "(reason withheld: it contains the purge token)"
	case reason == "":
		reason = http.StatusText(r.status)
	}
	s := strconv.Itoa(r.status) + " " + reason
	if d := bodyDetail(r.body, p.Token, p.sentHeaderNames()); d != "" && d != reason && !strings.Contains(s, d) {
		s += ": " + strconv.Quote(d)
	}
	return s
}

// sentHeaderNames lists the names of the headers a purge request carries,
// so that an instance echoing the request does not get them printed.
func (p *plan) sentHeaderNames() []string {
	names := []string{"Host", p.TokenHeader}
	for _, h := range p.requestHeaders(true) {
		k, _, _ := strings.Cut(h, ":")
		names = append(names, k)
	}
	return names
}

// clock is time as verification rounds see it (tests replace it).
type clock struct {
	now   func() time.Time
	sleep func(context.Context, time.Duration) error
}

func (p *plan) clock() clock {
	if p.Job.clock != nil {
		return *p.Job.clock
	}
	return clock{now: time.Now, sleep: sleepCtx}
}
