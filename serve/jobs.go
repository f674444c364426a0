package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/report"
)

// Job kinds.
const (
	kindAPI         = "api"
	kindVerify      = "verify"
	kindTransparent = "transparent"
)

// maxStoredReport bounds a report kept in the journal for GET /v1/jobs/ID.
const maxStoredReport = 16 << 20

// liveJob is a job this process accepted and has not finished.
type liveJob struct {
	rec      *jobRecord
	job      purge.Job
	targets  purge.Targets
	done     chan struct{}
	state    atomic.Value // string
	progress atomic.Pointer[purge.Progress]

	// Set before done is closed.
	out    *purge.Outcome
	report []byte // JSON
	ds     []delivery
	err    error // the job could not run (its settings)
	notRun bool  // the serve stopped before it started: the journal has it
}

// submitError is a job refused before anything was sent.
type submitError struct {
	status int
	reason string // metric label
	err    error
}

func (e *submitError) Error() string { return e.err.Error() }

// jobFor makes the purge job of a spec from the template.
func (s *Server) jobFor(sp *spec) purge.Job {
	j := s.cfg.Job
	j.URLs, j.Tags, j.Soft, j.Ban, j.BanContentType = sp.URLs, sp.Tags, sp.Soft, sp.Ban, sp.BanContentType
	if sp.Method != "" {
		j.Method = sp.Method
	}
	j.Headers = append(slices.Clip(s.cfg.Job.Headers), sp.Headers...)
	j.RawURLs = j.RawURLs || sp.RawURLs
	if sp.Token != "" {
		j.Token = sp.Token
	}
	j.Verify, j.VerifyURLs, j.VerifyOnly = slices.Clone(sp.Verify), sp.VerifyURLs, sp.VerifyOnly
	if sp.VerifyMethod != "" {
		j.VerifyMethod = sp.VerifyMethod
	}
	if sp.Wait > 0 {
		j.Wait, j.Interval = sp.Wait, sp.Interval
	}
	return j
}

// submit checks a job, finds its instances, records it in the journal and
// starts it. Nothing is sent when it returns an error.
func (s *Server) submit(ctx context.Context, kind, who, source string, sp *spec) (*liveJob, error) {
	if s.stopping.Load() {
		return nil, &submitError{http.StatusServiceUnavailable, "unavailable", errors.New("serve is stopping; send the job again to a running serve")}
	}
	if n := len(sp.URLs) + len(sp.VerifyURLs); n > s.cfg.MaxURLs {
		return nil, &submitError{http.StatusRequestEntityTooLarge, "too_large", fmt.Errorf("%d URLs: a job takes at most %d; split it", n, s.cfg.MaxURLs)}
	}
	job := s.jobFor(sp)
	// The URLs are parsed once: Check and the run read the same list.
	list := &purge.URLList{}
	for _, u := range job.URLs {
		add := list.Add
		if job.RawURLs {
			add = list.AddRaw
		}
		if err := add(u); err != nil {
			return nil, &submitError{http.StatusBadRequest, "bad_request", err}
		}
	}
	job.URLs, job.URLList = nil, list
	if err := job.Check(); err != nil {
		return nil, &submitError{http.StatusBadRequest, "bad_request", err}
	}
	if n := s.waiting.Add(1); n > int64(s.cfg.MaxInFlight+s.cfg.MaxQueue) {
		s.waiting.Add(-1)
		return nil, &submitError{http.StatusTooManyRequests, "busy", fmt.Errorf("busy: %d jobs in flight and %d queued; try again shortly", s.cfg.MaxInFlight, s.cfg.MaxQueue)}
	}
	t, err := s.disc.get(ctx, job, s.met)
	if err != nil {
		s.waiting.Add(-1)
		return nil, &submitError{http.StatusServiceUnavailable, "unavailable", fmt.Errorf("find the instances: %w", err)}
	}
	rec := &jobRecord{Kind: kind, Created: time.Now().UTC(), Who: who, Source: source, Spec: *sp,
		Instances: t.Instances, Skipped: t.Skipped, State: stateQueued}
	if err := s.j.accept(rec); err != nil {
		s.waiting.Add(-1)
		s.failJournal(err)
		return nil, &submitError{http.StatusServiceUnavailable, "unavailable", fmt.Errorf("the job could not be recorded, so it was not accepted: %w", err)}
	}
	lj := &liveJob{rec: rec, job: job, targets: t, done: make(chan struct{})}
	lj.state.Store(stateQueued)
	s.mu.Lock()
	s.live[rec.ID] = lj
	s.mu.Unlock()
	s.met.queued.Inc()
	s.jobs.Add(1)
	go s.run(lj)
	return lj, nil
}

// run waits for a slot, sends the job, records its outcome.
func (s *Server) run(lj *liveJob) {
	defer s.jobs.Done()
	defer s.waiting.Add(-1)
	defer func() {
		s.mu.Lock()
		delete(s.live, lj.rec.ID)
		s.mu.Unlock()
	}()
	acquired := false
	if !s.stopping.Load() {
		select {
		case s.slots <- struct{}{}:
			acquired = !s.stopping.Load()
			if !acquired {
				<-s.slots
			}
		case <-s.stopped:
		}
	}
	s.met.queued.Dec()
	if !acquired {
		lj.notRun = true
		close(lj.done)
		return
	}
	defer func() { <-s.slots }()
	lj.state.Store(stateRunning)
	s.met.inFlight.Inc()
	defer s.met.inFlight.Dec()

	job := lj.job
	job.Progress = func(p purge.Progress) { lj.progress.Store(&p) }
	start := time.Now()
	out, err := job.RunOn(s.base, lj.targets)
	elapsed := time.Since(start)
	rec := lj.rec
	rec.State, rec.Finished = stateDone, time.Now().UTC()
	var ds []delivery
	var rep []byte
	if err != nil {
		// The settings were checked at acceptance: this is not expected.
		lj.err = err
		rec.Summary = "not sent: " + err.Error()
		ds = s.settle(rec, nil)
	} else {
		s.met.fanout.Observe(elapsed.Seconds())
		var b bytes.Buffer
		// About 140 bytes a purge row, more for a check's evidence.
		b.Grow(len(rec.Spec.URLs) * max(1, len(rec.Instances)) * (160 + 256*len(rec.Spec.Verify)))
		if werr := report.Write(&b, report.JSON, out, report.Options{}); werr == nil {
			rep = b.Bytes()
		}
		rec.OK = out.OK()
		rec.Summary = "ok"
		if e := out.Err(); e != nil {
			rec.Summary = e.Error()
		}
		ds = s.settle(rec, out)
		if out.Purge != nil {
			ok := out.Purge.Len() - out.Purge.Failed()
			s.met.purges.WithLabelValues("fanout", outcomeOK).Add(float64(ok))
			s.met.purges.WithLabelValues("fanout", outcomeFailed).Add(float64(out.Purge.Failed()))
		}
	}
	lj.out, lj.report, lj.ds = out, rep, ds
	// The waiting client has its answer before the outcome is on disk: a
	// crash in between only sends the job again (the journal still says
	// sending), and a 1-URL purge does not wait for a second sync.
	lj.state.Store(stateDone)
	close(lj.done)
	stored := rep
	if len(stored) > maxStoredReport {
		stored = nil
	}
	if jerr := s.j.finish(rec, ds, stored); jerr != nil {
		s.failJournal(jerr)
	}
	outcome := outcomeOK
	switch {
	case err != nil:
		outcome = outcomeError
	case !rec.OK:
		outcome = outcomeFailed
	}
	s.met.jobs.WithLabelValues(rec.Kind, outcome).Inc()
	pending := 0
	for i := range ds {
		switch ds[i].State {
		case dPending:
			pending++
		case dDelivered:
			s.instanceBack(ds[i].Instance)
		}
	}
	s.logJob(rec, outcome, out, elapsed, pending)
}

// settle turns a fan-out's outcome into each instance's delivery: taken,
// to replay (no answer, or a 5xx, 408 or 429), or refused (any other
// answer: a replay would be refused again).
func (s *Server) settle(rec *jobRecord, out *purge.Outcome) []delivery {
	if rec.Spec.VerifyOnly {
		return nil
	}
	now := time.Now().UTC()
	ds := make([]delivery, len(rec.Instances))
	for i, in := range rec.Instances {
		d := &ds[i]
		d.Instance = in
		if out == nil || out.Purge == nil {
			d.State, d.Next = dPending, now.Add(s.backoff(0))
			continue
		}
		r := out.Purge
		var retry []int32
		refused := 0
		for u := range r.URLs.Len() {
			err := r.Err(r.Index(u, i))
			if err == nil {
				continue
			}
			d.LastError = err.Error()
			if replayable(err) {
				retry = append(retry, int32(u))
			} else {
				refused++
			}
		}
		switch {
		case len(retry) > 0:
			d.State, d.Pending, d.Next = dPending, retry, now.Add(s.backoff(0))
		case refused > 0:
			d.State, d.Done = dRefused, now
		default:
			d.State, d.Done = dDelivered, now
		}
	}
	return ds
}

// replayable says whether a failed request may be taken later: no answer
// came (the instance was down, unreachable or too slow), or a 5xx, 408 or
// 429 said "not now".
func replayable(err error) bool {
	var ie *purge.InstanceError
	if !errors.As(err, &ie) {
		return true
	}
	st := ie.Status
	return st == 0 || st >= 500 || st == http.StatusRequestTimeout || st == http.StatusTooManyRequests
}

// logJob writes the job's audit line: who asked, from where, what, and
// the outcome.
func (s *Server) logJob(rec *jobRecord, outcome string, out *purge.Outcome, elapsed time.Duration, pending int) {
	attrs := []any{"job", rec.ID, "kind", rec.Kind, "who", rec.Who, "source", rec.Source}
	attrs = append(attrs, what(&rec.Spec)...)
	attrs = append(attrs, "instances", len(rec.Instances), "outcome", outcome, "duration", elapsed.Round(time.Microsecond).String())
	if out != nil && out.Purge != nil {
		attrs = append(attrs, "ok", out.Purge.Len()-out.Purge.Failed(), "failed", out.Purge.Failed())
	}
	if pending > 0 {
		attrs = append(attrs, "pending_instances", pending)
	}
	if outcome != outcomeOK {
		attrs = append(attrs, "summary", rec.Summary)
	}
	level := slog.LevelInfo
	if outcome != outcomeOK {
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, "job", attrs...)
}

// what says what a job sends, in a few attributes (never a token or a
// header's value).
func what(sp *spec) []any {
	method := sp.Method
	switch {
	case sp.VerifyOnly:
		method = "verify"
	case method == "" && sp.Ban != "":
		method = "BAN"
	case method == "" && len(sp.Tags) > 0:
		method = purge.DefaultTagMethod
	case method == "":
		method = purge.DefaultMethod
	}
	a := []any{"method", method, "urls", len(sp.URLs)}
	if len(sp.URLs) > 0 {
		a = append(a, "url", sp.URLs[0])
	}
	if len(sp.Tags) > 0 {
		a = append(a, "tags", sp.Tags)
	}
	if sp.Ban != "" {
		a = append(a, "ban", sp.Ban)
	}
	if sp.Soft {
		a = append(a, "soft", true)
	}
	return a
}

// instanceBack notes that an instance took a whole job: replays it is
// owed are due now.
func (s *Server) instanceBack(in purge.Instance) {
	if s.met == nil {
		return
	}
	s.mu.Lock()
	s.back[in.String()] = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
