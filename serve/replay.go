package serve

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/cdnpurge/cdnpurge/purge"
)

// Replays run this many at once, and a scan takes at most replayBatch.
const (
	replayWorkers = 4
	replayBatch   = 256
	replayTick    = 250 * time.Millisecond
)

// backoff is the wait before replay n+1 (n replays done): ReplayBackoff
// doubled n times, at most MaxReplayBackoff, with ±20% jitter so that
// the replays of many jobs spread out.
func (s *Server) backoff(n int) time.Duration {
	d := s.cfg.ReplayBackoff
	for range n {
		d *= 2
		if d >= MaxReplayBackoff {
			d = MaxReplayBackoff
			break
		}
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// replayer sends pending deliveries when they are due, or at once when
// their instance just took another job.
func (s *Server) replayer(ctx context.Context) {
	defer s.bg.Done()
	t := time.NewTicker(replayTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stopped:
			return
		case <-t.C:
		case <-s.wake:
		}
		s.mu.Lock()
		back := s.back
		s.back = map[string]bool{}
		s.mu.Unlock()
		due, total, err := s.j.due(time.Now(), back, replayBatch)
		if err != nil {
			s.failJournal(err)
			return
		}
		s.met.pending.Set(float64(total))
		if len(due) == 0 {
			continue
		}
		sem := make(chan struct{}, replayWorkers)
		var wg sync.WaitGroup
		for _, e := range due {
			if ctx.Err() != nil || s.stopping.Load() {
				break
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				s.replayOne(ctx, e)
			}()
		}
		wg.Wait()
	}
}

// replayOne sends one job's pending URLs to one instance again and
// records what happened.
func (s *Server) replayOne(ctx context.Context, e dueEntry) {
	rec, d, err := s.j.load(e.id, e.idx)
	if err != nil {
		var je *JournalError
		if errors.As(err, &je) {
			s.failJournal(err)
		}
		return
	}
	if d.State != dPending {
		return
	}
	now := time.Now().UTC()
	log := s.log.With("job", rec.ID, "instance", d.Instance.String(), "replay", d.Replays+1)
	settle := func(state, why string) {
		d.State, d.Done, d.LastError = state, now, why
		if err := s.j.record(e.id, e.idx, d); err != nil {
			s.failJournal(err)
			return
		}
		s.met.replays.WithLabelValues(state).Inc()
		log.Warn("replay given up", "outcome", state, "reason", why, "pending_urls", pendingCount(rec, d))
	}
	if now.After(rec.Created.Add(s.cfg.ReplayFor)) {
		settle(dExpired, "not taken within the replay period ("+s.cfg.ReplayFor.String()+")")
		return
	}
	job := s.jobFor(&rec.Spec)
	if t, err := s.disc.get(ctx, job, s.met); err == nil && !listed(t, d.Instance) {
		settle(dGone, "the instance left discovery (a replaced instance starts with an empty cache)")
		return
	}
	// Only the URLs it has not taken, and no verification.
	idx := d.Pending
	if idx == nil {
		idx = make([]int32, len(rec.Spec.URLs))
		for i := range idx {
			idx[i] = int32(i)
		}
	}
	job.URLs = make([]string, len(idx))
	for i, u := range idx {
		job.URLs[i] = rec.Spec.URLs[u]
	}
	job.Verify, job.VerifyURLs, job.Wait = nil, nil, 0
	start := time.Now()
	out, err := job.RunOn(ctx, purge.Targets{Instances: []purge.Instance{d.Instance}})
	if ctx.Err() != nil {
		return // stopping: the journal still has it pending
	}
	r := replay{At: now, URLs: len(idx)}
	var retry []int32
	refused := 0
	if err != nil {
		r.Error = err.Error()
		retry = idx
	} else {
		rep := out.Purge
		for k := range rep.Len() {
			if ferr := rep.Err(k); ferr != nil {
				r.Error = ferr.Error()
				if replayable(ferr) {
					retry = append(retry, idx[k])
				} else {
					refused++
				}
			}
		}
		r.Taken = rep.Len() - rep.Failed()
		s.met.purges.WithLabelValues("replay", outcomeOK).Add(float64(r.Taken))
		s.met.purges.WithLabelValues("replay", outcomeFailed).Add(float64(rep.Failed()))
	}
	d.Replays++
	d.History = append(d.History, r)
	if len(d.History) > maxHistory {
		d.History = d.History[len(d.History)-maxHistory:]
	}
	switch {
	case len(retry) > 0:
		d.State, d.Pending, d.Next, d.LastError = dPending, retry, time.Now().UTC().Add(s.backoff(d.Replays)), r.Error
	case refused > 0:
		d.State, d.Pending, d.Done, d.LastError = dRefused, nil, time.Now().UTC(), r.Error
	default:
		d.State, d.Pending, d.Done, d.LastError = dDelivered, nil, time.Now().UTC(), ""
	}
	r.Status = d.State
	d.History[len(d.History)-1].Status = d.State
	if err := s.j.record(e.id, e.idx, d); err != nil {
		s.failJournal(err)
		return
	}
	s.met.replays.WithLabelValues(d.State).Inc()
	level := slog.LevelInfo
	attrs := []any{"outcome", d.State, "urls", len(idx), "taken", r.Taken, "duration", time.Since(start).Round(time.Microsecond).String()}
	if d.State != dDelivered {
		level = slog.LevelWarn
		attrs = append(attrs, "reason", r.Error)
		if d.State == dPending {
			attrs = append(attrs, "next", d.Next.Format(time.RFC3339))
		}
	}
	log.Log(ctx, level, "replay", attrs...)
}

func pendingCount(rec *jobRecord, d *delivery) int {
	if d.Pending == nil {
		return len(rec.Spec.URLs)
	}
	return len(d.Pending)
}

// janitor prunes finished jobs older than Keep, every minute.
func (s *Server) janitor(ctx context.Context) {
	defer s.bg.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stopped:
			return
		case <-t.C:
		}
		n, err := s.j.prune(time.Now().Add(-s.cfg.Keep))
		if err != nil {
			s.failJournal(err)
			return
		}
		if n > 0 {
			s.log.Debug("pruned finished jobs", "jobs", n)
		}
	}
}
