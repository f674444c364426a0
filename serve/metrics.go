package serve

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the serve's Prometheus metrics, on its own registry. Labels
// have small fixed sets: never a URL or an instance address.
type metrics struct {
	jobs        *prometheus.CounterVec // kind, outcome
	purges      *prometheus.CounterVec // phase, outcome
	rejected    *prometheus.CounterVec // reason
	replays     *prometheus.CounterVec // outcome
	discovered  prometheus.Gauge
	discErrors  prometheus.Counter
	fanout      prometheus.Histogram
	pending     prometheus.Gauge
	inFlight    prometheus.Gauge
	queued      prometheus.Gauge
	journalSize prometheus.GaugeFunc
}

// Outcomes of a job: ok (every instance took it), failed (some did not),
// error (nothing sent: no instances found, say).
const (
	outcomeOK     = "ok"
	outcomeFailed = "failed"
	outcomeError  = "error"
)

func newMetrics(reg *prometheus.Registry, journalSize func() float64) *metrics {
	m := &metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cdnpurge_jobs_total",
			Help: "Jobs run, by kind (api, verify, transparent) and outcome (ok: every instance took it; failed: some did not; error: nothing was sent)."},
			[]string{"kind", "outcome"}),
		purges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cdnpurge_purges_total",
			Help: "Requests for one URL on one instance, by phase (fanout, replay) and outcome (ok, failed)."},
			[]string{"phase", "outcome"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cdnpurge_requests_rejected_total",
			Help: "Requests refused before anything was sent, by reason (unauthorized, busy, too_large, bad_request, unavailable)."},
			[]string{"reason"}),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cdnpurge_replays_total",
			Help: "Replays of a job's URLs to an instance that had not taken them, by outcome (delivered, pending, refused, gone, expired)."},
			[]string{"outcome"}),
		discovered: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cdnpurge_instances_discovered",
			Help: "Instances the last discovery found."}),
		discErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "cdnpurge_discovery_errors_total",
			Help: "Discoveries that failed (the job was refused, or a replay waited)."}),
		fanout: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cdnpurge_fanout_duration_seconds",
			Help:    "Time from the start of a job's fan-out to its last instance's answer (verify steps included).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cdnpurge_replays_pending",
			Help: "Deliveries (a job's URLs for one instance) waiting for a replay."}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cdnpurge_jobs_in_flight",
			Help: "Jobs being sent now."}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cdnpurge_jobs_queued",
			Help: "Jobs accepted and waiting for a slot."}),
		journalSize: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cdnpurge_journal_size_bytes",
			Help: "Size of the journal file."}, journalSize),
	}
	reg.MustRegister(m.jobs, m.purges, m.rejected, m.replays, m.discovered, m.discErrors, m.fanout, m.pending,
		m.inFlight, m.queued, m.journalSize,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Series that exist from the start, so that rate() sees the first one.
	for _, k := range []string{"api", "verify", "transparent"} {
		for _, o := range []string{outcomeOK, outcomeFailed, outcomeError} {
			m.jobs.WithLabelValues(k, o)
		}
	}
	for _, p := range []string{"fanout", "replay"} {
		m.purges.WithLabelValues(p, outcomeOK)
		m.purges.WithLabelValues(p, outcomeFailed)
	}
	for _, r := range []string{"unauthorized", "busy", "too_large", "bad_request", "unavailable"} {
		m.rejected.WithLabelValues(r)
	}
	for _, o := range []string{dDelivered, dPending, dRefused, dGone, dExpired} {
		m.replays.WithLabelValues(o)
	}
	return m
}
