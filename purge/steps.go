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
	rep.RequestHeaders = p.requestHeaders(true)
	ps := p.newPass(StepPurge, p.Method, p.urls, p.requestHeaders(false))
	ps.read = readOpts{keepBody: true, wantBody: func(status int) bool { return status >= len(p.okStatus) || !p.okStatus[status] }}
	ps.judge = func(k int, r *response, _ int64) (bool, bool, error) {
		rep.setExtra(k, r.objects, r.purgedAt)
		return p.judgePurge(rep, k, r)
	}
	start := time.Now()
	p.newEngine(ps, rep, budget).run(ctx)
	rep.Duration = time.Since(start)
	return rep
}

// newPass prepares the requests of a step: per host of urls, the header
// lines after the request line (Host, a ban's X-Host) and where to
// connect; the headers every request shares. Each request is written from
// these when its batch is, so nothing is held per URL.
func (p *plan) newPass(step Step, method string, urls *URLList, headers []string) *pass {
	ps := &pass{step: step, method: method, urls: urls}
	switch method {
	case DefaultMethod, DefaultTagMethod, "BAN", http.MethodGet, http.MethodHead:
		// Idempotent: sending one again after no answer came is safe, and
		// so is pipelining.
		ps.idempotent = true
		ps.depth = p.Pipeline
	default:
		ps.depth = 1
	}
	// Room for a batch's answers (a purge answer is 200-400 bytes): fewer
	// reads when they pile up.
	ps.readBuf = min(64<<10, max(16<<10, ps.depth*512))
	if step == StepVerify {
		ps.depth = 1 // a HEAD answer that carries a body is caught before the next request
		ps.readBuf = 4 << 10
	}
	edge := p.Fly.App != ""
	n := len(urls.hosts)
	ps.hostLines, ps.serverName = make([][]byte, n), make([]string, n)
	if edge {
		ps.dial = make([]string, n)
	}
	for i, h := range urls.hosts {
		b := append([]byte("Host: "), h.host...)
		b = append(b, "\r\n"...)
		if step == StepPurge && p.Ban != "" {
			b = append(b, "X-Host: ^"+regexp.QuoteMeta(h.host)+"$\r\n"...)
		}
		ps.hostLines[i] = b
		if p.Scheme == "https" {
			ps.serverName[i] = h.hostname
		}
		if edge {
			ps.dial[i] = p.connect
			if ps.dial[i] == "" {
				port := h.port
				switch {
				case port != "":
				case p.Scheme == "https":
					port = "443"
				default:
					port = "80"
				}
				ps.dial[i] = net.JoinHostPort(h.hostname, port)
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
	if ps.dial != nil {
		// Edge mode: every machine is reached through the same addresses,
		// each given up once for all of them.
		byAddr := map[string]*addrState{}
		e.hostAddr = make([]*addrState, len(ps.dial))
		for h, a := range ps.dial {
			if byAddr[a] == nil {
				byAddr[a] = &addrState{addr: a}
			}
			e.hostAddr[h] = byAddr[a]
		}
	}
	for i, in := range rep.Instances {
		t := &instState{idx: i, in: in, n: rep.URLs.Len(), host: keyOf(in), tr: p.tr, wire: p.tr.seed(in, ps.depth)}
		if ps.todo != nil {
			t.todo, t.n = ps.todo[i], len(ps.todo[i])
		}
		if in.MachineID != "" {
			t.hdr = []byte("Fly-Force-Instance-Id: " + in.MachineID + "\r\n")
		} else {
			t.addr = &addrState{addr: in.addr()}
		}
		e.insts = append(e.insts, t)
	}
	return e
}

// judgePurge reads a purge's answer: a 2xx (or an accepted status) is
// purged, unless it is an ordinary cache answer, which means the VCL
// treated the request as a GET: whatever the method (PURGE, PURGEKEYS, BAN
// or another), nothing was invalidated.
func (p *plan) judgePurge(rep *Report, k int, r *response) (ok, retry bool, err error) {
	in, u := rep.Instances[k%len(rep.Instances)], rep.URLs.At(k/len(rep.Instances))
	fail := func(cause error, why string) error {
		return &InstanceError{Instance: in, URL: u.String(), Status: r.status, Reason: p.answer(r) + why, Err: cause}
	}
	switch {
	case r.status < len(p.okStatus) && p.okStatus[r.status]:
		// A VCL that does not handle the method looks it up like a GET: a
		// hit (two ids), or a miss or pass delivered with the origin's or
		// the application's answer (one id and an Age header, which a
		// synthetic answer of Varnish never has).
		switch {
		case r.status >= 300:
		case r.varnishIDs == 2:
			return false, false, fail(ErrServedFromCache, fmt.Sprintf(": the instance served %s from its cache: its VCL does not handle %s", p.Method, p.Method))
		case r.varnishIDs == 1 && r.age:
			return false, false, fail(ErrPurgeNotHandled, fmt.Sprintf(": the instance answered %s with the page itself, fetched from the backend (a cache miss or pass): its VCL does not handle %s", p.Method, p.Method))
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
	case r.status == http.StatusNotModified:
		return false, false, fail(nil, fmt.Sprintf(": a conditional answer to a %s that asked nothing conditional; it does not say that anything was invalidated", p.Method))
	case r.status >= 300 && r.status < 400:
		return false, false, fail(nil, ": redirects are not followed; a purge must reach the cache itself")
	}
	return false, retryable(r.status), fail(nil, "")
}

// answer is the instance's answer in a few words: status, reason phrase
// and what its body says. The text is decided as it will be shown: a
// part that shows a secret of the job (even 8 characters of one) is
// withheld whole.
func (p *plan) answer(r *response) string {
	status := strconv.Itoa(r.status) + " "
	reason := cleanText(string(r.reason), 120)
	if reason == "" {
		reason = http.StatusText(r.status)
	}
	if p.secrets.Shows(status + reason) {
		reason = "(reason withheld: it shows part of a secret)"
	}
	s := status + reason
	if d := bodyDetail(r.body, p.sentHeaderNames()); d != "" && d != reason && !strings.Contains(s, d) {
		if withBody := s + ": " + strconv.Quote(d); !p.secrets.Shows(withBody) {
			s = withBody
		} else {
			s += ": (the body is withheld: it shows part of a secret)"
		}
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
