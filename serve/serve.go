// Package serve is cdnpurge's broadcaster: a long-running HTTP service
// that takes purge jobs from apps, CI runners and Dagger functions (which
// cannot reach a private fleet themselves) and sends each to EVERY
// instance of the fleet with package purge, the same engine as the CLI.
//
// It takes jobs two ways. The JSON API (package serve/api) answers with
// the same report as `cdnpurge purge --format json`, at once or later
// (GET /v1/jobs/ID). Transparent mode takes a request with a purge method
// (PURGE, BAN, PURGEKEYS, ...) to any path, as an app would send it to its
// one Varnish, and forwards it as it came to every instance.
//
// Nothing accepted is lost. Every job is written to a journal (a bbolt
// file) with the instances discovery found before anything is sent, and
// each instance's delivery state after: an instance that could not be
// reached gets the job's URLs again, with backoff, until it takes them,
// until it leaves discovery (a replaced machine starts with an empty
// cache), or until the replay period passes. After a crash or a restart
// the serve resumes from the journal: what it does not say was delivered
// is sent again (purging is idempotent).
//
// The service is bounded: request bodies, URLs per job, jobs in flight and
// jobs queued (429 with Retry-After beyond that). It logs one line per job
// with log/slog (who asked, from where, what, the outcome), and exports
// Prometheus metrics on its own registry.
package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdnpurge/cdnpurge/purge"
)

// Defaults for Config fields left at their zero value.
const (
	DefaultDiscoveryTTL    = 5 * time.Second
	DefaultReplayFor       = 24 * time.Hour
	DefaultKeep            = time.Hour
	DefaultMaxBody         = 1 << 20
	DefaultMaxURLs         = 10000
	DefaultMaxInFlight     = 16
	DefaultMaxQueue        = 1024
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultReplayBackoff is the first wait before a replay; it doubles
	// each time up to MaxReplayBackoff.
	DefaultReplayBackoff = time.Second
	MaxReplayBackoff     = 5 * time.Minute
	// MaxVerifyWait bounds a verify job's Wait.
	MaxVerifyWait = 10 * time.Minute
)

// PurgeMethods returns the methods transparent mode always forwards (a new
// slice at each call).
func PurgeMethods() []string { return []string{"PURGE", "BAN", "PURGEKEYS"} }

// Config is a serve's settings. The zero value of every field but Job and
// Journal means the default above.
type Config struct {
	// Job is the template of every job: where the instances are (its
	// source: DNSName, Instances or Fly), how to reach them and the purge
	// token. Each request fills in what to send. Its Transport, when nil,
	// is one of the serve's own, for its lifetime: jobs and replays share
	// the connections to the instances and what each showed of its wire.
	Job purge.Job
	// DiscoveryTTL is how long one discovery serves jobs before the next
	// job finds the instances again.
	DiscoveryTTL time.Duration
	// Tokens are the API tokens. With none, the API is open to the Allow
	// networks only.
	Tokens []Token
	// Allow lists the networks whose requests are accepted without a token
	// in transparent mode (and by the API when there are no Tokens); nil
	// means DefaultAllow, loopback only.
	Allow []netip.Prefix
	// Methods are more methods transparent mode forwards, besides
	// PurgeMethods.
	Methods []string
	// Journal is the journal file's path (created when missing).
	Journal string
	// ReplayFor is how long an instance that has not taken a job's URLs
	// gets them again.
	ReplayFor time.Duration
	// ReplayBackoff is the first wait before a replay.
	ReplayBackoff time.Duration
	// Keep is how long a finished job (with nothing pending) stays in the
	// journal for GET /v1/jobs/ID.
	Keep time.Duration
	// MaxBody bounds a request body, in bytes.
	MaxBody int64
	// MaxURLs bounds the URLs of one job.
	MaxURLs int
	// MaxInFlight bounds the jobs sent at once; MaxQueue the jobs accepted
	// and waiting. Beyond both, requests get 429.
	MaxInFlight int
	MaxQueue    int
	// ShutdownTimeout bounds the wait for jobs in flight when the serve
	// stops; what is not sent by then stays in the journal.
	ShutdownTimeout time.Duration
	// TLS, when set, serves HTTPS.
	TLS *tls.Config
	// Logger receives one line per job; nil means slog.Default().
	Logger *slog.Logger
	// Registry receives the metrics; nil means a new one (see
	// Server.Registry).
	Registry *prometheus.Registry
}

// Server is a running broadcaster. New opens its journal; Serve serves.
type Server struct {
	cfg   Config
	log   *slog.Logger
	reg   *prometheus.Registry
	met   *metrics
	j     *journal
	auth  *auth
	disc  discovery
	slots chan struct{}
	// tr is the serve's own transport (nil when the Job template came
	// with one): closed when the serve stops.
	tr *purge.Transport

	waiting  atomic.Int64 // jobs accepted, not yet sending
	stopping atomic.Bool
	stopped  chan struct{} // closed when the serve stops taking jobs
	fatal    chan error    // a journal write failed: stop
	fatalErr sync.Once

	mu   sync.Mutex
	live map[uint64]*liveJob
	// back are instances that just took a whole job: their pending
	// replays are due now.
	back map[string]bool
	wake chan struct{}

	jobs sync.WaitGroup // fan-outs running
	bg   sync.WaitGroup // replayer and janitor
	base context.Context
	stop context.CancelFunc
}

// New checks the configuration, opens the journal and finds the jobs a
// previous run left unfinished (they are replayed once Serve runs).
func New(cfg Config) (*Server, error) {
	if cfg.Journal == "" {
		return nil, errors.New("no journal: give the journal file's path")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.DiscoveryTTL, DefaultDiscoveryTTL)
	def(&cfg.ReplayFor, DefaultReplayFor)
	def(&cfg.ReplayBackoff, DefaultReplayBackoff)
	def(&cfg.Keep, DefaultKeep)
	def(&cfg.ShutdownTimeout, DefaultShutdownTimeout)
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxURLs == 0 {
		cfg.MaxURLs = DefaultMaxURLs
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MaxQueue == 0 {
		cfg.MaxQueue = DefaultMaxQueue
	}
	if cfg.DiscoveryTTL < 0 || cfg.ReplayFor < 0 || cfg.ReplayBackoff < 0 || cfg.Keep < 0 || cfg.ShutdownTimeout < 0 ||
		cfg.MaxBody < 0 || cfg.MaxURLs < 0 || cfg.MaxInFlight < 0 || cfg.MaxQueue < 0 {
		return nil, errors.New("limits and durations must not be negative")
	}
	if cfg.Allow == nil {
		cfg.Allow = DefaultAllow()
	}
	for i, m := range cfg.Methods {
		cfg.Methods[i] = strings.ToUpper(strings.TrimSpace(m))
		switch cfg.Methods[i] {
		case "", http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions, http.MethodConnect, http.MethodTrace:
			return nil, fmt.Errorf("method %q: give a purge method your VCL handles (not a method apps use for content)", m)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	// The template's URLs and what to send come from each request.
	cfg.Job.URLs, cfg.Job.Tags, cfg.Job.Verify, cfg.Job.VerifyURLs, cfg.Job.Progress = nil, nil, nil, nil, nil
	var tr *purge.Transport
	if cfg.Job.Transport == nil {
		// Idle connections for as many as the jobs at once open to one
		// instance: a job that ends leaves them to the next.
		perInstance := cfg.Job.PerInstance
		if perInstance <= 0 {
			perInstance = purge.DefaultPerInstance
		}
		tr = &purge.Transport{MaxIdlePerInstance: cfg.MaxInFlight * perInstance}
		cfg.Job.Transport = tr
	}
	j, err := openJournal(cfg.Journal)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, reg: cfg.Registry, j: j, auth: newAuth(cfg.Tokens, cfg.Allow), tr: tr,
		slots: make(chan struct{}, cfg.MaxInFlight), stopped: make(chan struct{}), fatal: make(chan error, 1),
		live: map[uint64]*liveJob{}, back: map[string]bool{}, wake: make(chan struct{}, 1)}
	s.disc.ttl, s.disc.tr = cfg.DiscoveryTTL, cfg.Job.Transport
	s.met = newMetrics(cfg.Registry, func() float64 { return float64(j.size()) })
	n, err := j.resume(time.Now())
	if err != nil {
		_ = j.close()
		s.closeTransport()
		return nil, err
	}
	if n > 0 {
		s.log.Warn("resuming jobs a previous run did not finish; what it had not recorded as delivered is sent again", "jobs", n, "journal", cfg.Journal)
	}
	return s, nil
}

// Close closes the journal of a Server that was not served (Serve closes
// it itself).
func (s *Server) Close() error {
	s.closeTransport()
	return s.j.close()
}

// closeTransport closes the serve's own transport.
func (s *Server) closeTransport() {
	if s.tr != nil {
		_ = s.tr.Close()
	}
}

// Registry is the registry the metrics are on.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Serve serves HTTP on ln until ctx ends (then it stops gracefully: stops
// accepting, lets jobs in flight finish within ShutdownTimeout, keeps the
// rest in the journal, and returns nil) or until the journal cannot be
// written (then it returns the *JournalError, having lost nothing it had
// accepted). It closes the journal before it returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.base, s.stop = context.WithCancel(context.Background())
	defer s.stop()
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.bg.Add(2)
	go s.replayer(s.base)
	go s.janitor(s.base)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.log.Info("serving", "addr", ln.Addr().String(), "tls", s.cfg.TLS != nil, "journal", s.cfg.Journal)

	var fatal error
	select {
	case <-ctx.Done():
		s.log.Info("stopping: no new jobs; waiting for the jobs in flight", "timeout", s.cfg.ShutdownTimeout)
	case fatal = <-s.fatal:
		s.log.Error("stopping: the journal cannot be written; what was accepted stays in it", "err", fatal)
	case err := <-served:
		fatal = fmt.Errorf("serve: %w", err)
	}
	s.stopping.Store(true)
	close(s.stopped)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if fatal != nil {
		s.stop() // the journal is gone: nothing more can be recorded
	}
	done := make(chan struct{})
	go func() {
		_ = srv.Shutdown(sctx)
		s.jobs.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-sctx.Done():
		s.log.Warn("stopping: jobs still in flight after the timeout are cancelled; the journal has them")
		s.stop()
		<-done
	}
	s.stop()
	s.bg.Wait()
	s.closeTransport()
	if err := s.j.close(); err != nil && fatal == nil {
		fatal = &JournalError{Path: s.cfg.Journal, Op: "close", Err: err}
	}
	if fatal == nil {
		s.log.Info("stopped")
	}
	return fatal
}

// failJournal stops the serve after a journal write failed.
func (s *Server) failJournal(err error) {
	s.fatalErr.Do(func() { s.fatal <- err })
}

// discovery caches what Find found for at most ttl, one lookup at a time.
// An instance that leaves is forgotten by tr: its idle connections closed,
// what it showed of its wire dropped.
type discovery struct {
	mu  sync.Mutex
	ttl time.Duration
	tr  *purge.Transport
	at  time.Time
	t   purge.Targets
}

func (d *discovery) get(ctx context.Context, j purge.Job, m *metrics) (purge.Targets, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.at.IsZero() && time.Since(d.at) < d.ttl {
		return d.t, nil
	}
	j.Deadline = 0
	t, err := j.Find(ctx)
	if err != nil {
		m.discErrors.Inc()
		return purge.Targets{}, err
	}
	if d.tr != nil {
		for _, in := range d.t.Instances {
			if !listed(t, in) {
				d.tr.Forget(in)
			}
		}
	}
	d.t, d.at = t, time.Now()
	m.discovered.Set(float64(len(t.Instances)))
	return t, nil
}

// sameInstance says whether a and b are the same instance.
func sameInstance(a, b purge.Instance) bool {
	return a.Host == b.Host && a.Port == b.Port && a.MachineID == b.MachineID
}

func listed(t purge.Targets, in purge.Instance) bool {
	return slices.ContainsFunc(t.Instances, func(x purge.Instance) bool { return sameInstance(x, in) })
}
