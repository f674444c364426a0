package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/serve"
)

const serveAbout = `Run a broadcaster: one HTTP endpoint that sends each purge it takes to EVERY
instance of the fleet, for apps and CI runners that can reach one server only
(a Magento or WordPress plugin, a hosted runner or a Dagger function that
cannot reach a private IPv6 network).

Instances are found as 'cdnpurge purge' finds them (--dns-name, --instance or
--fly-app), again for each job once --discovery-ttl has passed, so new and
replaced instances are included.

  POST /v1/purge   {"urls": [...], "tags": [...], "soft": false, "verify":
                   "purged"} or {"urls": ["https://example.com/"], "ban":
                   {"regex": "^/assets/"}} with 'Authorization: Bearer <token>'
                   (tokens from --api-token-file); 200 with the JSON report of
                   'cdnpurge purge --format json' when every instance took it,
                   502 when some did not. ?wait=false answers 202 at once with
                   {"job": ID} and Location: /v1/jobs/ID.
  POST /v1/verify  {"urls": [...], "expect": "hit"}: as 'cdnpurge verify'
  GET  /v1/jobs/ID state (queued, running, done), report, replays still pending
  PURGE, BAN, PURGEKEYS (and --method) to any path: transparent mode. The
                   request goes as it came (path, query, Host, headers; not
                   hop-by-hop headers nor the API token) to every instance;
                   200 when every one answered ok, 502 otherwise, with each
                   instance's status in JSON. Accepted from --allow networks
                   (default loopback only) or with an API token.
  GET  /healthz, /metrics (Prometheus)

Without --api-token-file the API, too, is open to the --allow networks only.

Nothing accepted is lost: each job is written to the journal (--journal, an
embedded bbolt file) before it is sent, with each instance's delivery state
after. An instance that could not be reached gets its purges again, with
backoff, until it takes them, leaves discovery, or --replay-for passes.
After a crash or a restart serve resumes from the journal. A journal that
cannot be read or written stops serve with an error; the file is left as it
is.

SIGTERM or Ctrl-C stops taking jobs, lets the jobs in flight finish (within
--shutdown-timeout; the journal keeps the rest) and exits 0. One log line per
job says who asked (token name, source address), what, and the outcome.`

const serveExamples = `  cdnpurge serve --dns-name my-cdn.internal --port 9000 --listen '[::]:8090' --api-token-file /etc/cdnpurge/api-tokens --journal /var/lib/cdnpurge/journal.db
  PURGE_TOKEN=... cdnpurge serve --instance 10.0.0.7:9000 --instance 10.0.0.8:9000 --allow 10.0.0.0/24
  curl -H "Authorization: Bearer $TOKEN" -d '{"urls": ["https://example.com/feed"]}' http://localhost:8090/v1/purge
  curl -X PURGE -H 'Host: example.com' http://localhost:8090/feed
  cdnpurge purge --via http://localhost:8090 --url https://example.com/feed --verify`

// DefaultListen is where serve listens unless told otherwise.
const DefaultListen = "127.0.0.1:8090"

func (a *App) serve(ctx context.Context, args []string) error {
	f := newFlags("serve", serveAbout, serveExamples)
	t := target{fleetOnly: true}
	t.register(f)
	j := &t.job
	var (
		cfg                          serve.Config
		listen, tokenFile, apiTokens string
		tlsCert, tlsKey, logFormat   string
		allow, methods               []string
	)
	f.StringVar(&listen, "listen", DefaultListen, "listen on `ADDR:PORT`, e.g. '[::]:8090' for every address")
	f.StringVar(&tokenFile, "token-file", "", "read the fleet's purge token from `FILE` (default: $PURGE_TOKEN; none when neither is set)")
	f.StringVar(&j.TokenHeader, "token-header", purge.DefaultTokenHeader, "`name` of the header that carries the purge token")
	f.Var(ints{v: &j.OKStatus}, "ok-status", "also count this `status` as purged, e.g. 404; repeatable")
	f.IntVar(&j.Pipeline, "pipeline", purge.DefaultPipeline, "requests sent on a connection before reading their answers (HTTP/1.1 pipelining);\n1 sends one at a time")
	f.StringVar(&apiTokens, "api-token-file", "", "API tokens, one a line as 'NAME TOKEN' (or TOKEN alone), in `FILE`; the name is\nwhat the log says asked. Make one with: openssl rand -hex 32")
	f.Var(list{v: &allow, split: true}, "allow", "accept transparent requests (and, without --api-token-file, API requests) from these\n`networks` without a token, e.g. 10.0.0.0/8,fdaa::/16; repeatable (default 127.0.0.0/8,::1)")
	f.Var(list{v: &methods, split: true}, "method", "also forward this `method` in transparent mode, besides PURGE, BAN and PURGEKEYS;\nrepeatable")
	f.StringVar(&cfg.Journal, "journal", "", "the journal `file` (bbolt), created when missing (default: $STATE_DIRECTORY/journal.db\nunder systemd, else ./cdnpurge-journal.db)")
	f.DurationVar(&cfg.DiscoveryTTL, "discovery-ttl", serve.DefaultDiscoveryTTL, "find the instances again for a job when the last discovery is older than this")
	f.DurationVar(&cfg.ReplayFor, "replay-for", serve.DefaultReplayFor, "send a job again to an instance that has not taken it for at most this long")
	f.DurationVar(&cfg.Keep, "keep", serve.DefaultKeep, "keep a finished job (nothing pending) for GET /v1/jobs/ID this long")
	f.Int64Var(&cfg.MaxBody, "max-body", serve.DefaultMaxBody, "largest request body in `bytes`")
	f.IntVar(&cfg.MaxURLs, "max-urls", serve.DefaultMaxURLs, "most URLs in one job")
	f.IntVar(&cfg.MaxInFlight, "max-jobs", serve.DefaultMaxInFlight, "most jobs sent at once")
	f.IntVar(&cfg.MaxQueue, "max-queue", serve.DefaultMaxQueue, "most jobs waiting for a slot; beyond it requests get 429 with Retry-After")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", serve.DefaultShutdownTimeout, "on SIGTERM, how long jobs in flight may take to finish")
	f.StringVar(&tlsCert, "tls-cert", "", "serve HTTPS with this certificate `FILE` (PEM, chain included; re-read when it changes)")
	f.StringVar(&tlsKey, "tls-key", "", "the certificate's private key `FILE` (PEM)")
	f.StringVar(&logFormat, "log-format", "text", "log `format`: text or json")
	if err := f.parse(a, args); err != nil {
		return err
	}
	if err := t.finish(a); err != nil {
		return err
	}
	if err := f.positive("discovery-ttl", "replay-for", "keep", "max-body", "max-urls", "max-jobs", "max-queue", "shutdown-timeout"); err != nil {
		return err
	}
	if cfg.MaxBody <= 0 {
		return usagef("--max-body %d: give a positive number of bytes", cfg.MaxBody)
	}
	tok, err := a.secret(tokenFile, "PURGE_TOKEN", "--token-file")
	if err != nil {
		return err
	}
	j.Token = tok
	cfg.Job = *j
	if cfg.Journal == "" {
		cfg.Journal = "cdnpurge-journal.db"
		if d := a.Getenv("STATE_DIRECTORY"); d != "" {
			cfg.Journal = filepath.Join(strings.Split(d, ":")[0], "journal.db")
		}
	}
	if apiTokens != "" {
		fh, err := os.Open(apiTokens)
		if err != nil {
			return usagef("--api-token-file: %v", err)
		}
		cfg.Tokens, err = serve.ReadTokens(fh, apiTokens)
		fh.Close()
		if err != nil {
			return usagef("--api-token-file: %v", err)
		}
	}
	if f.set("allow") {
		if cfg.Allow, err = serve.ParseAllow(allow); err != nil {
			return usagef("--allow: %v", err)
		}
		if cfg.Allow == nil {
			cfg.Allow = []netip.Prefix{} // --allow '': no network without a token
		}
	}
	cfg.Methods = methods
	switch {
	case (tlsCert == "") != (tlsKey == ""):
		return usagef("--tls-cert and --tls-key go together")
	case tlsCert != "":
		c, err := newCertReloader(tlsCert, tlsKey)
		if err != nil {
			return usagef("--tls-cert/--tls-key: %v", err)
		}
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.get}
	}
	var h slog.Handler
	switch logFormat {
	case "text":
		h = slog.NewTextHandler(a.Stderr, nil)
	case "json":
		h = slog.NewJSONHandler(a.Stderr, nil)
	default:
		return usagef("--log-format %q: use text or json", logFormat)
	}
	cfg.Logger = slog.New(h)
	// Check the job template before listening: what every job shares.
	probe := cfg.Job
	probe.URLs = []string{"http://example.com/"}
	if err := probe.Check(); err != nil {
		return err
	}
	srv, err := serve.New(cfg)
	if err != nil {
		return &failedError{err: err, hints: journalHints(err)}
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		if cerr := srv.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return usagef("--listen %s: %v", listen, err)
	}
	if err := srv.Serve(ctx, ln); err != nil {
		return &failedError{err: err, hints: journalHints(err)}
	}
	return nil
}

// journalHints words what to do about a journal that failed.
func journalHints(err error) []string {
	var je *serve.JournalError
	if !errors.As(err, &je) {
		return nil
	}
	s := err.Error()
	switch {
	case strings.Contains(s, "no space"):
		return []string{"free space on the journal's file system (or give it a larger one) and start serve again: what was accepted is in the journal and is sent then"}
	case strings.Contains(s, "locked"):
		return []string{"one serve per journal: stop the other one, or give this one its own --journal"}
	case strings.Contains(s, "damaged") || strings.Contains(s, "not a journal") || strings.Contains(s, "invalid"):
		return []string{"the file was left as it is; move it aside to start with an empty journal (the jobs in it are then lost), or restore it from a backup"}
	}
	return nil
}

// certReloader serves a certificate, read again when its files change
// (a renewed certificate is taken without a restart).
type certReloader struct {
	cert, key string
	mu        sync.Mutex
	c         *tls.Certificate
	mod       time.Time
	checked   time.Time
}

func newCertReloader(cert, key string) (*certReloader, error) {
	r := &certReloader{cert: cert, key: key}
	if _, err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) load() (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(r.cert, r.key)
	if err != nil {
		return nil, err
	}
	r.c = &c
	r.mod = r.modTime()
	return r.c, nil
}

func (r *certReloader) modTime() time.Time {
	var m time.Time
	for _, p := range []string{r.cert, r.key} {
		if fi, err := os.Stat(p); err == nil && fi.ModTime().After(m) {
			m = fi.ModTime()
		}
	}
	return m
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) > 10*time.Second {
		r.checked = time.Now()
		if m := r.modTime(); m.After(r.mod) {
			if _, err := r.load(); err != nil {
				return r.c, nil // keep serving the last good one
			}
		}
	}
	return r.c, nil
}
