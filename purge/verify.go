package purge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cdnpurge/cdnpurge/purge/cachestatus"
)

// Defaults of verify steps.
const (
	// DefaultRefetchWait is how long the verify step of a soft purge keeps
	// asking an instance that served the old copy stale for the fresh copy
	// it then fetches (unless Wait is longer).
	DefaultRefetchWait = 10 * time.Second
	// DefaultVerifyAcceptEncoding and DefaultVerifyUserAgent make a verify
	// request a browser's, so that it is answered from the variant browsers
	// get (a cache that varies on Accept-Encoding or User-Agent keeps one
	// copy per variant). Headers of the same name replace them.
	DefaultVerifyAcceptEncoding = "gzip, deflate, br"
	DefaultVerifyUserAgent      = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)

// purgeWindow is what a verify step knows of the purge before it.
type purgeWindow struct {
	// start and end bound the purge on this process's clock: before its
	// first request was written, after its last answer was read.
	start, end time.Time
	rep        *Report
	// same says the verify URLs are the purge URLs, index for index;
	// otherwise byHost lists, per Host, the purge URLs of that Host.
	same   bool
	byHost map[string][]int
}

// stamp is the instance's time of the purge that should have removed
// verify URL u on instance i, in microseconds; 0 when its answer did not
// say. For verify URLs that are not the purge's (a ban, a tag purge), it is
// the latest purge of the same Host on that instance.
func (w *purgeWindow) stamp(u, i int, host string) int64 {
	if w.same {
		t, _ := w.rep.purgeStamp(w.rep.Index(u, i))
		return t
	}
	var latest int64
	for _, pu := range w.byHost[host] {
		if t, _ := w.rep.purgeStamp(w.rep.Index(pu, i)); t > latest {
			latest = t
		}
	}
	return latest
}

// order is what the evidence says of when a copy was made.
type order uint8

const (
	orderUnknown   order = iota // nothing tells
	orderAfter                  // made after the purge
	orderBefore                 // made before the purge: the old copy
	orderUncertain              // within a second of the purge: Age cannot tell
)

// roundState is what a check remembers from one round to the next.
type roundState struct {
	// missRound is 1 + the round in which this check's answer was a miss,
	// so that its own request may have stored the copy a later round hits;
	// missSent is when that round began (UnixNano), missStamp the copy's
	// fetch stamp.
	missRound int32
	pending   bool // see oldStamp
	missSent  int64
	missStamp int64
	// pending: after a soft purge, the instance served the old copy stale;
	// the fresh copy it fetches is awaited. oldStamp, or oldHi (when the
	// copy was stored at the latest, on this clock, as told by Age;
	// UnixNano), identify the old copy.
	oldStamp int64
	oldHi    int64
}

// verifier runs one verify step.
type verifier struct {
	p      *plan
	rep    *Report
	expect Expect
	pw     *purgeWindow // nil without a purge in this run
	opts   cachestatus.Options
	// ref is what MatchedAfter counts from: the purge's start, or the
	// step's.
	ref  time.Time
	soft bool // a soft purge's ExpectPurged
	// given are the lower-case names of the headers the job sets itself
	// (a variant the user chose): Vary on them is not warned about.
	given map[string]bool
	sent  string // the headers sent, for warnings

	clk        clock
	round      int
	roundStart time.Time
	state      []roundState // per result, when a round may follow

	mu     sync.Mutex
	vary   map[string]int    // Vary names not varied -> answers
	cached map[int]int       // a hit on a cached 3xx/4xx: status -> checks
	sample map[int]string    // status -> one URL on one instance
	vnames map[string]string // lower-case -> as sent
}

// verifyHeaders are the header lines a verify request carries besides
// Host: a browser's Accept-Encoding and User-Agent unless the job gives
// headers of those names, then the job's headers.
func (p *plan) verifyHeaders() []string {
	var h []string
	has := func(name string) bool {
		return slices.ContainsFunc(p.header, func(l string) bool { return strings.HasPrefix(l, name+":") })
	}
	if !has("Accept-Encoding") {
		h = append(h, "Accept-Encoding: "+DefaultVerifyAcceptEncoding)
	}
	if !has("User-Agent") {
		h = append(h, "User-Agent: "+DefaultVerifyUserAgent+" cdnpurge/"+Version())
	}
	return append(h, p.header...)
}

// verify runs one verify step, with rounds until every check matches when
// the job waits (and, after a soft purge, until each instance that served
// the old copy stale serves a fresh one).
func (p *plan) verify(ctx context.Context, expect Expect, instances []Instance, budget fdBudget, pw *purgeWindow) *Report {
	rep := newReport(StepVerify, p.VerifyMethod, p.verifyURLs, instances)
	rep.Expect = expect
	headers := p.verifyHeaders()
	rep.RequestHeaders = headers
	if p.origin != nil {
		rep.Origin = p.Origin
	}
	clk := p.clock()
	v := &verifier{p: p, rep: rep, expect: expect, pw: pw, opts: cachestatus.Options{CacheName: p.CacheName, CacheHeader: p.CacheHeader},
		soft: p.Soft && expect == ExpectPurged && pw != nil, given: map[string]bool{},
		vary: map[string]int{}, cached: map[int]int{}, sample: map[int]string{}, vnames: map[string]string{}}
	v.clk, v.ref = clk, clk.now()
	if pw != nil {
		v.ref = pw.start
	}
	for _, h := range p.header {
		k, _, _ := strings.Cut(h, ":")
		v.given[strings.ToLower(k)] = true
	}
	v.sent = strings.Join(headers, "; ")
	window, interval := p.Wait, p.Interval
	if v.soft {
		window = max(window, DefaultRefetchWait)
		if p.Wait == 0 {
			interval = MinInterval
		}
	}
	if window > 0 {
		v.state = make([]roundState, rep.Len())
	}
	ps := p.newPass(StepVerify, p.VerifyMethod, p.verifyURLs, headers)
	keep := append(v.opts.Headers(), "Vary", "Etag", "Last-Modified", "Content-Length", "Content-Encoding", FetchTimeHeader)
	ps.read = readOpts{head: p.VerifyMethod == http.MethodHead, skipBody: p.VerifyMethod == http.MethodGet,
		hash: p.origin != nil && p.VerifyMethod == http.MethodGet, keep: headerSet(keep...)}
	ps.judge = func(k int, r *response, n int64) (bool, bool, error) {
		ok, err := v.judge(k, r, n)
		return ok, false, err
	}
	start := clk.now()
	v.roundStart = start
	p.newEngine(ps, rep, budget).run(ctx)
	deadline := start.Add(window)
	// Every interval until the window ends, and once more as it ends: a
	// wait shorter than the interval still asks again when it is over.
	for window > 0 && !rep.OK() && clk.now().Before(deadline) {
		again := func(k int) bool { return p.Wait > 0 || v.state[k].pending }
		if !v.anyAgain(again) {
			break
		}
		if clk.sleep(ctx, min(interval, deadline.Sub(clk.now()))) != nil {
			break
		}
		ps.todo = rep.unmatched(again)
		v.round++
		v.roundStart = clk.now()
		p.newEngine(ps, rep, budget).run(ctx)
		rep.Rounds++
	}
	rep.Duration = clk.now().Sub(start)
	rep.waited = p.Wait > 0
	v.finish()
	return rep
}

// anyAgain says whether a failed check is to be asked again.
func (v *verifier) anyAgain(again func(int) bool) bool {
	for k := range v.rep.rows {
		if v.rep.rows[k].flags&rowOK == 0 && again(k) {
			return true
		}
	}
	return false
}

// unmatched lists per instance the URLs whose check did not match and is
// to be asked again, and clears those results for another round; what the
// cleared results referred to is dropped (so a long wait keeps only what
// the last round said).
func (r *Report) unmatched(again func(k int) bool) [][]int32 {
	n := len(r.Instances)
	todo := make([][]int32, n)
	for k := range r.rows {
		if r.rows[k].flags&rowOK == 0 && again(k) {
			todo[k%n] = append(todo[k%n], int32(k/n))
			r.rows[k] = row{}
			r.vrows[k] = vrow{age: -1}
		}
	}
	r.compact()
	return todo
}

// finish ends the step: checks still waiting for a soft purge's fresh copy
// fail, the time to consistency is known, and what the answers should make
// one doubt is said once.
func (v *verifier) finish() {
	rep := v.rep
	for k := range v.state {
		if s := &v.state[k]; s.pending && rep.rows[k].flags&rowOK == 0 {
			in, u := rep.Instances[k%len(rep.Instances)], rep.URLs.At(k/len(rep.Instances))
			rep.rows[k].err = rep.addErr(&InstanceError{Instance: in, URL: u.String(), Status: int(rep.rows[k].status),
				Reason: fmt.Sprintf("served the old copy stale after the soft purge, and still did after %s: the fetch of a fresh copy did not finish", FormatDuration(rep.Duration)),
				Err:    errors.Join(ErrNotMatched, ErrOldCopy)})
		}
	}
	if v.p.Wait > 0 && rep.OK() {
		var at uint32
		for i := range rep.vrows {
			at = max(at, rep.vrows[i].at)
		}
		if at > 0 {
			rep.ConsistentAfter = time.Duration(at-1) * time.Millisecond
		}
	}
	names := make([]string, 0, len(v.vary))
	for k := range v.vary {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if k == "*" {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("Vary: * on %s: every request is its own variant, so no check proves what a browser gets",
				plural(v.vary[k], "answer")))
			continue
		}
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("Vary: %s on %s: verify asked for one variant (%s); copies for other values of %s were not checked",
			v.vnames[k], plural(v.vary[k], "answer"), v.sent, v.vnames[k]))
	}
	statuses := make([]int, 0, len(v.cached))
	for s := range v.cached {
		statuses = append(statuses, s)
	}
	sort.Ints(statuses)
	for _, s := range statuses {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s served a cached %d %s (e.g. %s): a hit, but on an error or a redirect, not the page; accept the status as expected if it is",
			plural(v.cached[s], "check"), s, http.StatusText(s), v.sample[s]))
	}
}

// judge reads what an instance's cache says about a URL and records
// whether it matches.
func (v *verifier) judge(k int, r *response, n int64) (bool, error) {
	rep, p := v.rep, v.p
	ui, ii := k/len(rep.Instances), k%len(rep.Instances)
	in, u := rep.Instances[ii], rep.URLs.At(ui)
	now := v.clk.now()
	st := cachestatus.Read(r.header, v.opts)
	fetched := parseStamp(r.header.Get(FetchTimeHeader))
	var notes []string
	if st.Note != "" {
		notes = append(notes, st.Note)
	}
	w := &rep.rows[k]
	vr := &rep.vrows[k]
	var flags uint16
	fail := func(cause error, reason string) (bool, error) {
		v.store(vr, st, notes, r, n, fetched, flags, now, false)
		return false, &InstanceError{Instance: in, URL: u.String(), Status: r.status, Reason: reason, Err: errors.Join(ErrNotMatched, cause)}
	}
	pass := func() (bool, error) {
		v.store(vr, st, notes, r, n, fetched, flags, now, true)
		return true, nil
	}
	if r.status >= 500 {
		return fail(nil, fmt.Sprintf("the instance answered %s: an error page does not show what its cache holds", p.answer(r)))
	}
	v.noteVary(r.header.Get("Vary"))

	// A header stored with the object says miss, X-Varnish is gone, and
	// Age says the copy is older than the purge: it is the old copy, hit.
	if v.pw != nil && st.VarnishIDs == 0 && st.Class == cachestatus.Miss && st.Age > 0 && v.ageOrder(st.Age, now) == orderBefore {
		notes = append(notes, fmt.Sprintf("%s says miss, but there is no X-Varnish and Age %d is older than the purge: the header was stored with the object; read as a hit",
			st.Source, st.Age))
		st.Class, st.StaleUnknown = cachestatus.Hit, true
	}
	if st.StaleUnknown {
		flags |= vStaleUnknown
	}
	ord, ordWhy := v.order(ui, ii, u.Host, st, fetched, now)
	switch ord {
	case orderBefore:
		flags |= vPredates
	case orderUncertain:
		flags |= vUncertain
	}
	compared, current, diff := false, false, ""
	if v.p.versions != nil {
		compared, current, diff = compareOrigin(&v.p.versions[ui], r)
		if compared {
			flags |= vCompared
			if current {
				flags |= vCurrent
			}
		} else {
			notes = append(notes, diff)
		}
	}

	switch v.expect {
	case ExpectCurrent:
		switch {
		case current:
			return pass()
		case compared:
			return fail(ErrNotCurrent, "serves another version than the origin: "+diff+v.copyAge(st, ord))
		}
		return fail(ErrUncertain, diff)

	case ExpectPurged:
		switch {
		case compared && current:
			if st.Class.IsHit() && ord == orderAfter {
				w.flags |= rowRefilled // also known to be stored after the purge
			}
			if v.state != nil {
				v.state[k].pending = false
			}
			return pass()
		case compared:
			why := "serves another version than the origin: " + diff
			switch {
			case ord == orderAfter || st.Class == cachestatus.Miss:
				why += ", though its copy was fetched after the purge: the origin, or a cache between it and the instance, served old content"
			case ord == orderBefore:
				why += ": " + ordWhy
			}
			if v.soft && (st.Class == cachestatus.Stale || st.StaleUnknown) {
				return v.softOld(k, st, fetched, now, fail, why)
			}
			if v.soft && st.Class == cachestatus.Hit {
				why += ": the soft purge did not expire it"
			}
			return fail(ErrNotCurrent, why)
		}
		return v.purged(k, st, fetched, now, ord, ordWhy, &notes, &flags, w, pass, fail)

	case ExpectMiss:
		if st.Class == cachestatus.Miss {
			return pass()
		}
	case ExpectAny:
		return pass()
	default: // hit, fresh, stale
		if v.expect != ExpectHit && st.StaleUnknown && st.Class.IsHit() {
			return fail(ErrStaleUnknown, fmt.Sprintf("%s, expected %s: %s (only %s)", st.Class, v.expect, ErrStaleUnknown, st.Source))
		}
		if v.expect.Match(st.Class) {
			if v.state != nil && v.selfStored(k, st, fetched, now) {
				flags |= vSelfStored
				s := v.state[k]
				return fail(nil, fmt.Sprintf("hit on the copy this check's own request stored in round %d (a miss then), not a browser's: not counted", s.missRound))
			}
			if r.status >= 300 && !(r.status < len(p.okStatus) && p.okStatus[r.status]) {
				v.noteCached(r.status, u.String()+" on "+in.String())
			}
			return pass()
		}
		if v.state != nil && st.Class == cachestatus.Miss {
			v.state[k].missRound, v.state[k].missSent, v.state[k].missStamp = int32(v.round+1), v.roundStart.UnixNano(), fetched
		}
	}
	why := fmt.Sprintf("%s, expected %s", st.Class, v.expect)
	if st.Source == "" && st.Class == cachestatus.Unknown {
		why += ": the answer has no cache evidence (no Cache-Status, X-Cache, X-Varnish or Age header), so hit and miss cannot be told apart"
	}
	return fail(nil, why)
}

// purged judges ExpectPurged without the origin's content: by the
// instance's clock, else by Age.
func (v *verifier) purged(k int, st cachestatus.Status, fetched int64, now time.Time, ord order, ordWhy string, notes *[]string, flags *uint16, w *row,
	pass func() (bool, error), fail func(error, string) (bool, error)) (bool, error) {
	p := v.p
	if v.soft && v.state[k].pending {
		return v.softAgain(k, st, fetched, now, ord, pass, fail)
	}
	switch {
	case st.Class == cachestatus.Miss || st.Class == cachestatus.Bypass:
		if ord == orderBefore {
			return fail(ErrOldCopy, fmt.Sprintf("%s, but %s; purge again", st.Class, ordWhy))
		}
		return pass()
	case !st.Class.IsHit():
		why := fmt.Sprintf("%s, expected purged", st.Class)
		if st.Source == "" && st.Class == cachestatus.Unknown {
			why += ": the answer has no cache evidence (no Cache-Status, X-Cache, X-Varnish or Age header), so hit and miss cannot be told apart"
		}
		return fail(nil, why)
	}
	switch ord {
	case orderAfter:
		w.flags |= rowRefilled
		return pass()
	case orderBefore:
		if v.soft && (st.Class == cachestatus.Stale || st.StaleUnknown) {
			return v.softOld(k, st, fetched, now, fail, "")
		}
		if v.soft {
			return fail(ErrOldCopy, fmt.Sprintf("%s, expected purged: still serves the old copy as fresh (%s): the soft purge did not expire it", st.Class, ordWhy))
		}
		if fetched != 0 {
			return fail(ErrOldCopy, fmt.Sprintf("%s, expected purged: %s: a fetch in flight during the purge survives it; purge again", st.Class, ordWhy))
		}
		return fail(ErrOldCopy, fmt.Sprintf("%s, expected purged: %s", st.Class, ordWhy))
	case orderUncertain:
		if v.soft && (st.Class == cachestatus.Stale || st.StaleUnknown) {
			return v.softOld(k, st, fetched, now, fail, "")
		}
		*notes = append(*notes, ordWhy)
		if p.AcceptUncertain {
			w.flags |= rowRefilled
			return pass()
		}
		return fail(ErrUncertain, fmt.Sprintf("%s, expected purged: cannot tell: %s (the origin's content, or the instance's own clock, settles it)", st.Class, ordWhy))
	}
	if v.soft && st.Class == cachestatus.Stale {
		return v.softOld(k, st, fetched, now, fail, "")
	}
	return fail(nil, fmt.Sprintf("%s, expected purged: a hit without an Age header may be the old copy", st.Class))
}

// softOld records that, after a soft purge, the instance served the old
// copy as stale (or as a hit that does not say): it passes once it serves
// a fresh copy, which a later round asks for.
func (v *verifier) softOld(k int, st cachestatus.Status, fetched int64, now time.Time, fail func(error, string) (bool, error), why string) (bool, error) {
	s := &v.state[k]
	s.pending, s.oldStamp = true, fetched
	if st.Age >= 0 {
		_, hi := v.storedWindow(st.Age, now)
		s.oldHi = hi.UnixNano()
	}
	if why == "" {
		why = "served the old copy as " + string(st.Class) + " after the soft purge"
	}
	return fail(ErrOldCopy, why+"; waiting for the fresh copy it fetches")
}

// softAgain judges a later answer of an instance that served the old copy
// stale after a soft purge: a miss, or a copy other than the old one made
// after the purge, passes; the old one again waits.
func (v *verifier) softAgain(k int, st cachestatus.Status, fetched int64, now time.Time, ord order,
	pass func() (bool, error), fail func(error, string) (bool, error)) (bool, error) {
	s := &v.state[k]
	other := false
	switch {
	case st.Class == cachestatus.Miss || st.Class == cachestatus.Bypass:
		other = true
	case !st.Class.IsHit():
	case fetched != 0 && s.oldStamp != 0:
		other = fetched != s.oldStamp && ord != orderBefore
	case st.Age >= 0 && s.oldHi != 0:
		lo, _ := v.storedWindow(st.Age, now)
		other = lo.UnixNano() > s.oldHi // stored after the old copy was: fetched again
	}
	if other {
		s.pending = false
		v.rep.rows[k].flags |= rowRefilled
		return pass()
	}
	if st.Class == cachestatus.Hit && !st.StaleUnknown {
		s.pending = false
		return fail(ErrOldCopy, "served the old copy stale after the soft purge, then as fresh again: it was not expired")
	}
	return fail(ErrOldCopy, "still serves the old copy as "+string(st.Class)+" after the soft purge; waiting for the fresh copy it fetches")
}

// order says when the copy served was made, relative to the purge: on the
// instance's own clock when both it and the purge answer say (exact), else
// by Age (whole seconds against this clock: a copy within a second of the
// purge cannot be told).
func (v *verifier) order(ui, ii int, host string, st cachestatus.Status, fetched int64, now time.Time) (order, string) {
	if v.pw == nil {
		return orderUnknown, ""
	}
	if purged := v.pw.stamp(ui, ii, host); fetched != 0 && purged != 0 {
		if fetched < purged {
			return orderBefore, fmt.Sprintf("its copy's fetch began %s before the purge, on the instance's own clock", FormatDuration(time.Duration(purged-fetched)*time.Microsecond))
		}
		return orderAfter, ""
	}
	if !st.Class.IsHit() || st.Age < 0 {
		return orderUnknown, ""
	}
	switch o := v.ageOrder(st.Age, now); o {
	case orderBefore:
		return o, fmt.Sprintf("its copy is %ds old, older than the purge (%s ago)", st.Age, FormatDuration(now.Sub(v.pw.start)))
	case orderUncertain:
		return o, fmt.Sprintf("Age %d puts the copy within a second of the purge (%s ago)", st.Age, FormatDuration(now.Sub(v.pw.start)))
	default:
		return o, ""
	}
}

// ageOrder orders a copy of Age age (whole seconds, counted down: the copy
// is age to age+1 s old) answered now to a request sent when the round
// began, against the purge's window. Only durations are compared: Age and
// this clock measure durations, not instants.
func (v *verifier) ageOrder(age int, now time.Time) order {
	a := time.Duration(age) * time.Second
	switch {
	case a+time.Second <= v.roundStart.Sub(v.pw.end):
		return orderAfter // stored after the last purge answer came
	case a > now.Sub(v.pw.start):
		return orderBefore // stored before the first purge request was sent
	}
	return orderUncertain
}

// storedWindow is when, on this clock, a copy of Age age answered now was
// stored, at the earliest and at the latest.
func (v *verifier) storedWindow(age int, now time.Time) (lo, hi time.Time) {
	a := time.Duration(age) * time.Second
	return v.roundStart.Add(-a - time.Second), now.Add(-a)
}

// selfStored says whether a hit is on the copy this check's own earlier
// request stored: that round's answer was a miss, and nothing says the
// copy is another (a different fetch stamp, or an Age older than the time
// since that round began).
func (v *verifier) selfStored(k int, st cachestatus.Status, fetched int64, now time.Time) bool {
	s := v.state[k]
	switch {
	case s.missRound == 0:
		return false
	case fetched != 0 && s.missStamp != 0:
		return fetched == s.missStamp
	case st.Age >= 0:
		return time.Duration(st.Age)*time.Second <= now.Sub(time.Unix(0, s.missSent))
	}
	return true
}

// copyAge words when a copy not equal to the origin's was made, when
// known.
func (v *verifier) copyAge(st cachestatus.Status, ord order) string {
	switch {
	case ord == orderAfter || st.Class == cachestatus.Miss:
		return " (fetched after the purge: the origin, or a cache between it and the instance, served old content)"
	case st.Class.IsHit() && st.Age >= 0:
		return fmt.Sprintf(" (a %s, %ds old)", st.Class, st.Age)
	}
	return ""
}

// store writes the check's reading into its row.
func (v *verifier) store(vr *vrow, st cachestatus.Status, notes []string, r *response, n int64, fetched int64, flags uint16, now time.Time, matched bool) {
	rep := v.rep
	*vr = vrow{header: rep.intern(st.Raw), note: rep.intern(strings.Join(notes, "; ")), source: rep.intern(st.Source),
		vary: rep.intern(r.header.Get("Vary")), class: classCode(st.Class), age: int32(max(st.Age, -1)),
		bytes: uint32(min(n, 1<<32-1)), fetched: fetched, vflags: flags}
	if st.TTL != nil {
		vr.ttl, vr.hasTTL = *st.TTL, true
	}
	if matched && v.p.Wait > 0 {
		vr.at = uint32(min(now.Sub(v.ref).Milliseconds(), 1<<32-2)) + 1
	}
}

// noteVary counts the Vary header's names that verify did not choose a
// value for: other variants of the URL were not checked.
func (v *verifier) noteVary(vary string) {
	if vary == "" {
		return
	}
	for _, name := range strings.Split(vary, ",") {
		name = strings.TrimSpace(name)
		k := strings.ToLower(name)
		if k == "" || k == "accept-encoding" || v.given[k] {
			continue // a browser's Accept-Encoding was sent; the job chose the others
		}
		v.mu.Lock()
		v.vary[k]++
		if _, ok := v.vnames[k]; !ok {
			v.vnames[k] = name
		}
		v.mu.Unlock()
	}
}

// noteCached counts a hit on a cached 3xx or 4xx.
func (v *verifier) noteCached(status int, where string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.cached[status]++
	if _, ok := v.sample[status]; !ok {
		v.sample[status] = where
	}
}

// objectsWarnings says which URLs no instance that counts purged any
// object of: was anything cached there? Zero on some instances is normal.
func (r *Report) objectsWarnings(what string) []string {
	if r.extra.Load() == nil {
		return nil
	}
	const most = 10
	var out []string
	more := 0
	n := len(r.Instances)
	for ui := range r.URLs.Len() {
		said, removed := 0, int64(0)
		for ii := range n {
			if _, objs := r.purgeStamp(r.Index(ui, ii)); objs >= 0 && r.rows[r.Index(ui, ii)].flags&rowOK != 0 {
				said++
				removed += objs
			}
		}
		if said == 0 || removed > 0 {
			continue
		}
		if len(out) == most {
			more++
			continue
		}
		out = append(out, fmt.Sprintf("0 objects purged on any instance for %s: was anything cached under %s?", r.URLs.At(ui).String(), what))
	}
	if more > 0 {
		out = append(out, fmt.Sprintf("... and on %s more: 0 objects purged on any instance", plural(more, "URL")))
	}
	return out
}

// objectsWhat words what a purge step invalidated, for objectsWarnings.
func (p *plan) objectsWhat() string {
	if len(p.Tags) > 0 {
		return "these tags (" + strings.Join(p.Tags, " ") + ")"
	}
	return "this host and path"
}

// link says which purge URLs each verify URL's copies should have been
// removed by: the same URL, index for index, or the purges of its Host.
func (w *purgeWindow) link(purged, verified *URLList) {
	if verified == nil {
		return // nothing to verify: no index to build (a million URLs would cost megabytes)
	}
	w.same = purged == verified
	if !w.same && purged.Len() == verified.Len() {
		w.same = true
		for i := range purged.Len() {
			if purged.At(i) != verified.At(i) {
				w.same = false
				break
			}
		}
	}
	if w.same {
		return
	}
	w.byHost = map[string][]int{}
	for i, u := range purged.All() {
		w.byHost[u.Host] = append(w.byHost[u.Host], i)
	}
}
