package purge

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cdnpurge/cdnpurge/internal/secret"
	"github.com/cdnpurge/cdnpurge/purge/cachestatus"
)

// Step names what a report is about.
type Step string

// The steps of a job.
const (
	StepPurge  Step = "purge"
	StepVerify Step = "verify"
)

// Result is what happened to one URL on one instance: a purge's answer, or
// (in a verify step) what the instance's cache said it did.
type Result struct {
	URL      URL
	Instance Instance
	// Status is the final answer's status code; 0 when none came.
	Status int
	// OK says the purge succeeded (a 2xx or an accepted status), or the
	// check matched.
	OK bool
	// Attempts counts the times the request was written to the instance:
	// what it may have received, answered or not. 0 means it was never
	// sent (it could not connect, the run stopped first, or the instance
	// was given up).
	Attempts int
	// Duration is the request's own time, from the write of its last
	// attempt to its answer (or to the end of the wait for one).
	Duration time.Duration
	// Err says why the result is not OK; errors.As gives *InstanceError.
	Err error

	// Verify steps only.

	// Class is the cache's verdict, read from the answer's headers.
	Class cachestatus.Class
	// CacheStatus is the header value the class was read from, Source
	// which header that was (see package cachestatus).
	CacheStatus string
	Source      string
	// TTL is the remaining freshness a header stated, if any.
	TTL *float64
	// Age is the Age header in seconds, -1 when there was none.
	Age int
	// BytesRead counts the bytes read from the instance for this check.
	BytesRead int64
	// Refilled says the instance served a copy it stored after the purge
	// began (live traffic refilled it): it passes an ExpectPurged check.
	Refilled bool
	// Note says what decided the class when headers disagreed.
	Note string
	// StaleUnknown says the class is a hit whose evidence cannot tell fresh
	// from stale (X-Varnish or Age alone).
	StaleUnknown bool
	// Vary is the answer's Vary header: the request headers its cache keeps
	// one copy per value of.
	Vary string
	// Current says whether the instance serves the origin's current
	// version (Job.Origin); nil when it was not compared.
	Current *bool
	// FetchedAt is when the fetch that made the copy began, on the
	// instance's clock (FetchTimeHeader); zero when it does not say.
	FetchedAt time.Time
	// PredatesPurge says the copy was made before the purge: its fetch
	// began earlier on the instance's clock, or its Age is older.
	PredatesPurge bool
	// Uncertain says the evidence could not tell whether the copy was made
	// before or after the purge (Age within a second of it).
	Uncertain bool
	// SelfStored says the hit was on the copy this step's own earlier
	// request stored (a miss then): not counted as a browser's hit.
	SelfStored bool
	// MatchedAfter is, with Job.Wait, the time from the purge's start (or the
	// step's, without a purge) until this check matched; 0 when it did not.
	MatchedAfter time.Duration

	// Purge steps only.

	// Objects is the number of objects the purge answer says it removed
	// (ObjectsHeader); -1 when it does not say.
	Objects int
	// PurgedAt is the instance's time of the purge (PurgeTimeHeader); zero
	// when it does not say.
	PurgedAt time.Time
}

// InstanceError is why one URL failed on one instance.
type InstanceError struct {
	Instance Instance
	URL      string
	// Status is the answer's status code; 0 when no answer came.
	Status int
	// Reason says what happened, in words, e.g. "401 Unauthorized: Purge
	// token missing or wrong".
	Reason string
	// Err is the cause: a network error, ErrNoToken, ErrServedFromCache ...
	Err error
}

func (e *InstanceError) Error() string {
	if e.Reason == "" && e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Instance, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Instance, e.Reason)
}

func (e *InstanceError) Unwrap() error { return e.Err }

// Causes a caller (or a front end choosing its advice) can test with
// errors.Is.
var (
	// ErrNoToken: the instance wants a purge token and none was sent.
	ErrNoToken = errors.New("the instance wants a purge token and none was sent")
	// ErrTokenRejected: a token was sent and the instance refused it.
	ErrTokenRejected = errors.New("the instance refused the purge token")
	// ErrRefused: the instance's configuration refused the request (403,
	// 405, 501: an ACL, a missing header, a method it does not handle).
	ErrRefused = errors.New("the instance's configuration refused the request")
	// ErrNotFound: 404 on a purge: nothing was cached there, or the
	// instance does not route PURGE.
	ErrNotFound = errors.New("the instance answered 404")
	// ErrServedFromCache: a PURGE answered as an ordinary cache hit.
	ErrServedFromCache = errors.New("the instance served PURGE from its cache: its VCL does not handle PURGE")
	// ErrPurgeNotHandled: a PURGE answered as an ordinary cache miss, with
	// the origin's page (which the instance now caches).
	ErrPurgeNotHandled = errors.New("the instance answered PURGE with the page itself, fetched from the origin (a cache miss): its VCL does not handle PURGE")
	// ErrUnreachable: the instance (or, in edge mode, the address every
	// machine is reached through) was given up after repeated connection
	// failures; its remaining URLs were not sent.
	ErrUnreachable = errors.New("instance unreachable")
	// ErrNotAnswering: the instance was given up after requests in a row
	// got no answer on connections that had answered nothing; its
	// remaining URLs were not sent.
	ErrNotAnswering = errors.New("instance not answering")
	// ErrStopped: the run's context ended (the deadline passed, say).
	ErrStopped = errors.New("the run was stopped")
	// ErrNotMatched: a verify check's answer did not match the expectation.
	ErrNotMatched = errors.New("the check did not match")
	// ErrOldCopy (with ErrNotMatched): the instance serves a copy made
	// before the purge; a fetch in flight during the purge survives it.
	ErrOldCopy = errors.New("the instance serves a copy made before the purge")
	// ErrUncertain (with ErrNotMatched): the evidence cannot tell whether the
	// copy was made before or after the purge.
	ErrUncertain = errors.New("cannot tell whether the copy was made before or after the purge")
	// ErrNotCurrent (with ErrNotMatched): the instance serves another
	// version than the origin.
	ErrNotCurrent = errors.New("the instance serves another version than the origin")
	// ErrStaleUnknown (with ErrNotMatched): fresh or stale was expected, and
	// the instance's evidence cannot tell them apart.
	ErrStaleUnknown = errors.New("cannot tell fresh from stale: the instance sends no cache header")
)

// Report is the outcome of one step: one result per (URL, instance),
// URL-major, instances in the order found. Results are kept compactly
// (12 bytes each, plus 48 in a verify step) and rendered when read.
type Report struct {
	Step   Step
	Method string
	// Expect is what a verify step checked.
	Expect Expect
	// Rounds is how many times a verify step asked (more than 1 with Wait).
	Rounds   int
	Duration time.Duration
	// URLs are the step's URLs, as sent.
	URLs      *URLList
	Instances []Instance
	// Skipped are instances the job found but sent nothing to.
	Skipped []Skipped
	// Warnings say what limited the step (the open-file limit, say), or
	// what its results should make one doubt (no object purged anywhere,
	// variants not checked, a cached error page).
	Warnings []string
	// RequestHeaders are the header lines the step sent with every request
	// besides Host (a purge token's value hidden).
	RequestHeaders []string
	// Origin is the origin a verify step compared copies with, if any.
	Origin string
	// ConsistentAfter is, with Job.Wait, the time from the purge's start
	// (or the step's, without a purge) until every check matched; 0 when
	// they did not all match.
	ConsistentAfter time.Duration

	rows  []row
	vrows []vrow // verify steps only
	// waited says a verify step waited for its checks (Job.Wait).
	waited bool
	// extra holds what purge answers said (objects, time); allocated when
	// the first answer says something, so that runs against VCLs that say
	// nothing pay nothing.
	extra atomic.Pointer[[]purgeExtra]

	mu   sync.Mutex // guards errs and strs while the step runs
	errs []error
	strs []string
	ids  map[string]uint32

	secrets *secret.Set // the job's: what no writer may show
}

// row is one result, compactly.
type row struct {
	dur      uint32 // microseconds, saturating
	err      uint32 // 1 + index into errs; 0: none
	status   uint16
	attempts uint8
	flags    uint8
}

const (
	rowDone uint8 = 1 << iota
	rowOK
	rowRefilled
)

// vrow is what a verify step adds to a row.
type vrow struct {
	// ttl is the header's number as parsed: a float32 showed ttl=59.9 as
	// 59.900001525878906. The 8-byte fields come first, so the row is 48
	// bytes as it was with a float32.
	ttl     float64
	fetched int64  // FetchTimeHeader in microseconds since the epoch; 0: none
	header  uint32 // 1 + index into strs: the cache header's value
	note    uint32 // 1 + index into strs
	source  uint32 // 1 + index into strs: the header the class came from
	vary    uint32 // 1 + index into strs
	bytes   uint32
	age     int32  // -1: none
	at      uint32 // 1 + milliseconds until the check matched (see Result.MatchedAfter); 0: unknown
	vflags  uint16
	class   uint8
	hasTTL  bool
}

// vflags bits.
const (
	vStaleUnknown uint16 = 1 << iota
	vCompared            // compared with the origin
	vCurrent             // ... and equal
	vPredates
	vUncertain
	vSelfStored
)

// purgeExtra is what a purge answer said besides its status.
type purgeExtra struct {
	purgedAt int64 // microseconds since the epoch; 0: not said
	objects  int64 // -1: not said
}

// classCode and classOf store a class in a byte.
func classCode(c cachestatus.Class) uint8 {
	switch c {
	case cachestatus.Hit:
		return 1
	case cachestatus.Stale:
		return 2
	case cachestatus.Miss:
		return 3
	case cachestatus.Bypass:
		return 4
	case cachestatus.Synthetic:
		return 5
	}
	return 0
}

func classOf(b uint8) cachestatus.Class {
	switch b {
	case 1:
		return cachestatus.Hit
	case 2:
		return cachestatus.Stale
	case 3:
		return cachestatus.Miss
	case 4:
		return cachestatus.Bypass
	case 5:
		return cachestatus.Synthetic
	}
	return cachestatus.Unknown
}

func newReport(step Step, method string, urls *URLList, instances []Instance) *Report {
	r := &Report{Step: step, Method: method, URLs: urls, Instances: instances, Rounds: 1,
		rows: make([]row, urls.Len()*len(instances))}
	if step == StepVerify {
		r.vrows = make([]vrow, len(r.rows))
		for i := range r.vrows {
			r.vrows[i].age = -1
		}
	}
	return r
}

// Len is the number of results: URLs times instances.
func (r *Report) Len() int { return len(r.rows) }

// Index is the position of (URL u, instance i) among the results.
func (r *Report) Index(u, i int) int { return u*len(r.Instances) + i }

// Result renders result k (see Index).
func (r *Report) Result(k int) Result {
	w := r.rows[k]
	res := Result{
		URL: r.URLs.At(k / len(r.Instances)), Instance: r.Instances[k%len(r.Instances)],
		Status: int(w.status), OK: w.flags&rowOK != 0, Attempts: int(w.attempts),
		Duration: time.Duration(w.dur) * time.Microsecond, Age: -1,
	}
	if w.err > 0 {
		res.Err = r.errs[w.err-1]
	}
	if r.vrows == nil {
		res.Objects = -1
		if ex := r.extra.Load(); ex != nil {
			e := (*ex)[k]
			res.Objects = int(e.objects)
			res.PurgedAt = stampTime(e.purgedAt)
		}
		return res
	}
	v := r.vrows[k]
	res.Class = classOf(v.class)
	res.CacheStatus = r.str(v.header)
	res.Note = r.str(v.note)
	res.Source = r.str(v.source)
	res.Age = int(v.age)
	res.BytesRead = int64(v.bytes)
	res.Refilled = w.flags&rowRefilled != 0
	if v.hasTTL {
		t := v.ttl
		res.TTL = &t
	}
	res.Vary = r.str(v.vary)
	res.StaleUnknown = v.vflags&vStaleUnknown != 0
	if v.vflags&vCompared != 0 {
		cur := v.vflags&vCurrent != 0
		res.Current = &cur
	}
	res.FetchedAt = stampTime(v.fetched)
	res.PredatesPurge = v.vflags&vPredates != 0
	res.Uncertain = v.vflags&vUncertain != 0
	res.SelfStored = v.vflags&vSelfStored != 0
	if v.at > 0 {
		res.MatchedAfter = time.Duration(v.at-1) * time.Millisecond
	}
	return res
}

// stampTime is a stamp in microseconds since the epoch as a time; zero
// for 0.
func stampTime(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us)
}

// setExtra records what purge answer k said about objects and time; it
// allocates the extras on the first answer that says something. Each row
// is written by one worker at a time; the slice itself is published once.
func (r *Report) setExtra(k int, objects, purgedAt int64) {
	if objects < 0 && purgedAt == 0 {
		if ex := r.extra.Load(); ex != nil {
			(*ex)[k] = purgeExtra{objects: -1}
		}
		return
	}
	ex := r.extra.Load()
	if ex == nil {
		r.mu.Lock()
		if ex = r.extra.Load(); ex == nil {
			s := make([]purgeExtra, len(r.rows))
			for i := range s {
				s[i].objects = -1
			}
			ex = &s
			r.extra.Store(ex)
		}
		r.mu.Unlock()
	}
	(*ex)[k] = purgeExtra{objects: objects, purgedAt: purgedAt}
}

// purgeStamp is what purge answer k said: the instance's time of the purge
// in microseconds (0: not said) and the objects removed (-1: not said).
func (r *Report) purgeStamp(k int) (purgedAt, objects int64) {
	if ex := r.extra.Load(); ex != nil {
		return (*ex)[k].purgedAt, (*ex)[k].objects
	}
	return 0, -1
}

// compact drops the errors and strings no row refers to any more (a
// verify round's, once its rows are cleared for the next round), so that a
// long wait keeps only what the last round said.
func (r *Report) compact() {
	r.mu.Lock()
	defer r.mu.Unlock()
	errs := make([]error, 0, len(r.errs)/4)
	remapErr := map[uint32]uint32{}
	for i := range r.rows {
		w := &r.rows[i]
		if w.err == 0 {
			continue
		}
		n, ok := remapErr[w.err]
		if !ok {
			errs = append(errs, r.errs[w.err-1])
			n = uint32(len(errs))
			remapErr[w.err] = n
		}
		w.err = n
	}
	r.errs = errs
	if r.vrows == nil {
		return
	}
	strs := make([]string, 0, len(r.strs)/4)
	ids := map[string]uint32{}
	remap := func(ref *uint32) {
		if *ref == 0 {
			return
		}
		s := r.strs[*ref-1]
		id, ok := ids[s]
		if !ok {
			strs = append(strs, s)
			id = uint32(len(strs))
			ids[s] = id
		}
		*ref = id
	}
	for i := range r.vrows {
		v := &r.vrows[i]
		remap(&v.header)
		remap(&v.note)
		remap(&v.source)
		remap(&v.vary)
	}
	r.strs, r.ids = strs, ids
}

// Err is why result k failed (nil when it is OK), without rendering the
// rest of it.
func (r *Report) Err(k int) error {
	if ref := r.rows[k].err; ref != 0 && r.rows[k].flags&rowOK == 0 {
		return r.errs[ref-1]
	}
	return nil
}

func (r *Report) str(i uint32) string {
	if i == 0 {
		return ""
	}
	return r.strs[i-1]
}

// intern stores s once and returns its reference (0 for "").
func (r *Report) intern(s string) uint32 {
	if s == "" {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ids == nil {
		r.ids = map[string]uint32{}
	}
	if id, ok := r.ids[s]; ok {
		return id
	}
	r.strs = append(r.strs, s)
	id := uint32(len(r.strs))
	r.ids[s] = id
	return id
}

// addErr stores err and returns its reference; one error may serve many
// results (every URL not sent to an unreachable instance, say).
func (r *Report) addErr(err error) uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
	return uint32(len(r.errs))
}

func (w *row) setDur(d time.Duration) {
	us := d.Microseconds()
	switch {
	case us < 0:
		us = 0
	case us > math.MaxUint32:
		us = math.MaxUint32
	}
	w.dur = uint32(us)
}

// Failed counts the results that are not OK.
func (r *Report) Failed() int {
	n := 0
	for i := range r.rows {
		if r.rows[i].flags&rowOK == 0 {
			n++
		}
	}
	return n
}

// OK says whether every result is OK (and there is at least one).
func (r *Report) OK() bool { return len(r.rows) > 0 && r.Failed() == 0 }

// Refilled counts the verify results whose instance was refilled after
// the purge began.
func (r *Report) Refilled() int {
	n := 0
	for i := range r.rows {
		if r.rows[i].flags&rowRefilled != 0 {
			n++
		}
	}
	return n
}

// InstanceStats sums up one instance's results.
type InstanceStats struct {
	Instance Instance
	Total    int
	OK       int
	// NotSent counts the URLs never sent to it (Attempts 0).
	NotSent int
	// P50 and P99 are percentiles of the results' durations.
	P50, P99 time.Duration
	// MatchedAfter is, in a verify step with Job.Wait whose checks on this
	// instance all matched, the time until the last of them did (from the
	// purge's start, or the step's); 0 otherwise.
	MatchedAfter time.Duration
}

// Stats sums up the results per instance, in instance order.
func (r *Report) Stats() []InstanceStats {
	n := len(r.Instances)
	out := make([]InstanceStats, n)
	durs := make([]uint32, 0, r.URLs.Len())
	for i := range n {
		s := &out[i]
		s.Instance = r.Instances[i]
		durs = durs[:0]
		var at uint32
		for k := i; k < len(r.rows); k += n {
			w := r.rows[k]
			s.Total++
			if w.flags&rowOK != 0 {
				s.OK++
			}
			if r.vrows != nil {
				at = max(at, r.vrows[k].at)
			}
			if w.attempts == 0 {
				s.NotSent++
			} else {
				durs = append(durs, w.dur)
			}
		}
		if at > 0 && s.OK == s.Total {
			s.MatchedAfter = time.Duration(at-1) * time.Millisecond
		}
		if len(durs) > 0 {
			slices.Sort(durs)
			s.P50 = time.Duration(durs[(len(durs)-1)*50/100]) * time.Microsecond
			s.P99 = time.Duration(durs[(len(durs)-1)*99/100]) * time.Microsecond
		}
	}
	return out
}

// notSent counts the results never sent (Attempts 0) that are not OK.
func (r *Report) notSent() int {
	n := 0
	for i := range r.rows {
		if r.rows[i].attempts == 0 && r.rows[i].flags&rowOK == 0 {
			n++
		}
	}
	return n
}

// Reveals says whether s shows a secret of the job (the purge token, the
// Fly.io token): 8 consecutive characters of one, or a short one as a
// word. Results never hold one; a writer asks about the text it writes,
// exactly as it will be shown (after its own escaping), and withholds what
// does.
func (r *Report) Reveals(s string) bool { return r.secrets.Shows(s) }

// InstancesOK counts the instances on which every result is OK.
func (r *Report) InstancesOK() int {
	n := len(r.Instances)
	failed := make([]bool, n)
	for k := range r.rows {
		if r.rows[k].flags&rowOK == 0 {
			failed[k%n] = true
		}
	}
	ok := 0
	for _, f := range failed {
		if !f {
			ok++
		}
	}
	return ok
}

// Summary is one line, e.g. "purged 3 URLs on 12/12 instances in 41.2ms"
// or "verified 1 URL on 3/3 instances: expected miss (12.0ms)".
func (r *Report) Summary() string {
	ok := r.InstancesOK()
	var s string
	if r.Step == StepVerify {
		polled := ""
		if r.Rounds > 1 {
			polled = fmt.Sprintf(", %d rounds", r.Rounds)
		}
		s = fmt.Sprintf("verified %s on %d/%d instances: expected %s (%s%s)", plural(r.URLs.Len(), "URL"), ok, len(r.Instances), r.Expect, FormatDuration(r.Duration), polled)
		if n := r.Refilled(); n > 0 {
			s += fmt.Sprintf("; %d refilled by traffic after the purge", n)
		}
		if r.waited && r.OK() {
			s += "; every instance matched after " + FormatDuration(r.ConsistentAfter)
		}
	} else if f := r.Failed(); f > 0 {
		// Counts that add up: what was purged of what was asked, per
		// (URL, instance) pair, and what became of the rest.
		verb := "purged"
		if r.Method != DefaultMethod {
			verb = r.Method + " ok for"
		}
		s = fmt.Sprintf("FAILED: %s %d of %d (%s x %s) in %s: %d/%d instances complete; %d failed",
			verb, len(r.rows)-f, len(r.rows), plural(r.URLs.Len(), "URL"), plural(len(r.Instances), "instance"),
			FormatDuration(r.Duration), ok, len(r.Instances), f)
		if ns := r.notSent(); ns > 0 {
			s += fmt.Sprintf(", %d of them not sent", ns)
		}
		if len(r.Skipped) > 0 {
			s += fmt.Sprintf("; %d skipped (not started)", len(r.Skipped))
		}
		return s
	} else {
		verb := "purged"
		if r.Method != DefaultMethod {
			verb = "sent " + r.Method + " for"
		}
		s = fmt.Sprintf("%s %s on %d/%d instances in %s", verb, plural(r.URLs.Len(), "URL"), ok, len(r.Instances), FormatDuration(r.Duration))
	}
	if len(r.Skipped) > 0 {
		s += fmt.Sprintf("; %d skipped (not started)", len(r.Skipped))
	}
	if f := r.Failed(); f > 0 {
		noun := "requests failed"
		if r.Step == StepVerify {
			noun = "checks did not match"
		}
		s = fmt.Sprintf("FAILED: %s; %d of %d %s", s, f, len(r.rows), noun)
	}
	return s
}

// failure is the step's failure in a few words, for Outcome.Err.
func (r *Report) failure() string {
	name := string(r.Step)
	noun := "results failed"
	if r.Step == StepVerify {
		name += " " + string(r.Expect)
		noun = "checks did not match"
	} else if r.Method != DefaultMethod {
		name = r.Method
	}
	return fmt.Sprintf("%s: %d of %d %s on %d of %d instances", name, r.Failed(), len(r.rows), noun, len(r.Instances)-r.InstancesOK(), len(r.Instances))
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// FormatDuration writes d as reports show it: 1.25s, 41.2ms or 830µs.
func FormatDuration(d time.Duration) string {
	switch {
	case d >= time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
	case d >= time.Millisecond:
		return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + "ms"
	}
	return d.Round(time.Microsecond).String()
}
