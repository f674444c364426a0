package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/report"
	"github.com/cdnpurge/cdnpurge/serve/api"
)

// Handler is the serve's HTTP handler: the API, transparent mode for
// requests with a purge method (whatever their path), /healthz and
// /metrics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.PathPurge, s.handlePurge)
	mux.HandleFunc("POST "+api.PathVerify, s.handleVerify)
	mux.HandleFunc("GET "+api.PathJobs+"{id}", s.handleJob)
	mux.HandleFunc("GET "+api.PathHealth, s.handleHealth)
	mux.Handle("GET "+api.PathMetric, promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.purgeMethod(r.Method) {
			s.handleTransparent(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) purgeMethod(m string) bool {
	return slices.Contains(PurgeMethods(), m) || slices.Contains(s.cfg.Methods, m)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// refuse answers a request that sent nothing.
// accept submits a job; when it is not accepted, it answers why and
// returns nil.
func (s *Server) accept(w http.ResponseWriter, r *http.Request, kind, who string, sp *spec) *liveJob {
	lj, err := s.submit(r.Context(), kind, who, r.RemoteAddr, sp)
	if err == nil {
		return lj
	}
	var se *submitError
	if errors.As(err, &se) {
		s.refuse(w, r, se.status, se.reason, se.err)
	} else {
		s.refuse(w, r, http.StatusInternalServerError, "unavailable", err)
	}
	return nil
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, reason string, err error) {
	s.met.rejected.WithLabelValues(reason).Inc()
	switch status {
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="cdnpurge"`)
	}
	s.log.Warn("request refused", "status", status, "reason", err.Error(), "source", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
	writeJSON(w, status, api.Error{Error: err.Error()})
}

var errUnauthorized = errors.New("a valid API token is needed: send Authorization: Bearer <token>")

// apiWho says who an API request comes from: the name of its token, or,
// when the serve has no tokens, "-" for a request from an allowed network.
func (s *Server) apiWho(r *http.Request) (string, bool) {
	if name, ok := s.auth.token(r); ok {
		return name, true
	}
	if _, has := bearer(r); has || len(s.cfg.Tokens) > 0 {
		return "", false
	}
	return "-", s.auth.allowed(r)
}

// readBody reads a JSON body into v, within MaxBody.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, v any) (int, string, error) {
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return http.StatusRequestEntityTooLarge, "too_large", fmt.Errorf("the body is larger than %d bytes; send fewer URLs per job", s.cfg.MaxBody)
		}
		return http.StatusBadRequest, "bad_request", fmt.Errorf("the body is not a valid job: %v", err)
	}
	if _, err := io.Copy(io.Discard, body); err != nil {
		return http.StatusRequestEntityTooLarge, "too_large", fmt.Errorf("the body is larger than %d bytes", s.cfg.MaxBody)
	}
	return 0, "", nil
}

func (s *Server) handlePurge(w http.ResponseWriter, r *http.Request) {
	who, ok := s.apiWho(r)
	if !ok {
		s.refuse(w, r, http.StatusUnauthorized, "unauthorized", errUnauthorized)
		return
	}
	var req api.Request
	if st, reason, err := s.readBody(w, r, &req); err != nil {
		s.refuse(w, r, st, reason, err)
		return
	}
	sp := &spec{URLs: req.URLs, Tags: req.Tags, Soft: req.Soft, Method: strings.ToUpper(req.Method), Headers: req.Headers,
		RawURLs: req.RawURLs, Verify: req.Verify, VerifyURLs: req.VerifyURLs}
	if req.Ban != nil {
		sp.Ban, sp.BanContentType = req.Ban.Regex, req.Ban.ContentType
		if sp.Ban == "" {
			s.refuse(w, r, http.StatusBadRequest, "bad_request", errors.New("ban: give its regex, e.g. {\"ban\": {\"regex\": \"^/assets/\"}}"))
			return
		}
	}
	if sp.Method != "" && !s.purgeMethod(sp.Method) {
		s.refuse(w, r, http.StatusBadRequest, "bad_request", fmt.Errorf("method %s: this serve sends %s", sp.Method, strings.Join(s.methods(), ", ")))
		return
	}
	s.runAPI(w, r, kindAPI, who, sp)
}

func (s *Server) methods() []string { return append(PurgeMethods(), s.cfg.Methods...) }

func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request) {
	who, ok := s.apiWho(r)
	if !ok {
		s.refuse(w, r, http.StatusUnauthorized, "unauthorized", errUnauthorized)
		return
	}
	var req api.VerifyRequest
	if st, reason, err := s.readBody(w, r, &req); err != nil {
		s.refuse(w, r, st, reason, err)
		return
	}
	sp := &spec{URLs: req.URLs, VerifyOnly: true, VerifyMethod: req.Method, Headers: req.Headers, RawURLs: req.RawURLs}
	exp := req.Expect
	if exp == "" {
		exp = purge.DefaultExpect
	}
	sp.Verify = []purge.Expect{exp}
	for _, d := range []struct {
		name string
		s    string
		v    *time.Duration
	}{{"wait", req.Wait, &sp.Wait}, {"interval", req.Interval, &sp.Interval}} {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil || v <= 0 {
			s.refuse(w, r, http.StatusBadRequest, "bad_request", fmt.Errorf("%s %q: give a duration such as 30s", d.name, d.s))
			return
		}
		*d.v = v
	}
	if sp.Wait > MaxVerifyWait {
		s.refuse(w, r, http.StatusBadRequest, "bad_request", fmt.Errorf("wait %s: a serve waits at most %s", sp.Wait, MaxVerifyWait))
		return
	}
	s.runAPI(w, r, kindVerify, who, sp)
}

// runAPI submits a job and answers: at once with ?wait=false, else with
// its report when it is done.
func (s *Server) runAPI(w http.ResponseWriter, r *http.Request, kind, who string, sp *spec) {
	format, err := report.ParseFormat(r.URL.Query().Get("format"))
	if err != nil {
		s.refuse(w, r, http.StatusBadRequest, "bad_request", err)
		return
	}
	if q := r.URL.Query().Get("format"); q == "" {
		format = report.JSON
	}
	wait := true
	if v := r.URL.Query().Get("wait"); v != "" {
		if wait, err = strconv.ParseBool(v); err != nil {
			s.refuse(w, r, http.StatusBadRequest, "bad_request", fmt.Errorf("wait=%q: give true or false", v))
			return
		}
	}
	lj := s.accept(w, r, kind, who, sp)
	if lj == nil {
		return
	}
	id := idString(lj.rec.ID)
	w.Header().Set(api.HeaderJob, id)
	if !wait {
		w.Header().Set("Location", api.PathJobs+id)
		writeJSON(w, http.StatusAccepted, api.Accepted{Job: id})
		return
	}
	select {
	case <-lj.done:
	case <-r.Context().Done():
		return // the client left; the job goes on
	}
	switch {
	case lj.notRun:
		writeJSON(w, http.StatusServiceUnavailable, api.Error{Job: id, Error: "serve is stopping: the job is in the journal and is sent when serve starts again"})
		return
	case lj.err != nil:
		writeJSON(w, http.StatusInternalServerError, api.Error{Job: id, Error: lj.err.Error()})
		return
	}
	status := http.StatusOK
	if err := lj.out.Err(); err != nil {
		status = http.StatusBadGateway
		w.Header().Set(api.HeaderFailure, headerSafe(err.Error()))
	}
	if format == report.JSON && lj.report != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(lj.report)
		return
	}
	var b bytes.Buffer
	verbose, _ := strconv.ParseBool(r.URL.Query().Get("verbose"))
	if err := report.Write(&b, format, lj.out, report.Options{Verbose: verbose}); err != nil {
		writeJSON(w, http.StatusInternalServerError, api.Error{Job: id, Error: "write the report: " + err.Error()})
		return
	}
	ct := "text/plain; charset=utf-8"
	if format == report.Markdown {
		ct = "text/markdown; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// headerSafe keeps a header value to printable ASCII.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' {
			return ' '
		}
		return r
	}, s)
}

// jobView is GET /v1/jobs/ID.
type jobView struct {
	Job         string        `json:"job"`
	State       string        `json:"state"`
	Kind        string        `json:"kind"`
	Who         string        `json:"who"`
	Source      string        `json:"source"`
	Created     time.Time     `json:"created"`
	Finished    *time.Time    `json:"finished,omitempty"`
	Method      string        `json:"method"`
	URLs        []string      `json:"urls"`
	Instances   []string      `json:"instances"`
	OK          *bool         `json:"ok,omitempty"`
	Summary     string        `json:"summary,omitempty"`
	Interrupted bool          `json:"interrupted,omitempty"`
	Progress    *progressView `json:"progress,omitempty"`
	// Pending lists the instances still owed some of the job's URLs.
	Pending    []deliveryView `json:"pending"`
	Deliveries []deliveryView `json:"deliveries"`
	// Report is written last, in its own layout (writeJobView).
	Report json.RawMessage `json:"-"`
}

type progressView struct {
	Step   string `json:"step"`
	Done   int    `json:"done"`
	Total  int    `json:"total"`
	Failed int    `json:"failed"`
}

type deliveryView struct {
	Instance  string     `json:"instance"`
	State     string     `json:"state"`
	URLs      int        `json:"urls,omitempty"` // still to deliver
	Replays   int        `json:"replays"`
	Next      *time.Time `json:"next,omitempty"`
	LastError string     `json:"last_error,omitempty"`
	History   []replay   `json:"history,omitempty"`
}

func (s *Server) handleJob(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.apiWho(r); !ok {
		s.refuse(w, r, http.StatusUnauthorized, "unauthorized", errUnauthorized)
		return
	}
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusNotFound, api.Error{Error: "no such job"})
		return
	}
	s.mu.Lock()
	lj := s.live[id]
	s.mu.Unlock()
	rec, ds, rep, found, err := s.j.get(id)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, api.Error{Error: err.Error()})
		return
	}
	if !found {
		writeJSON(w, http.StatusNotFound, api.Error{Error: fmt.Sprintf("no job %d: never accepted, or finished more than %s ago", id, s.cfg.Keep)})
		return
	}
	v := jobView{Job: idString(id), State: rec.State, Kind: rec.Kind, Who: rec.Who, Source: rec.Source, Created: rec.Created,
		URLs: rec.Spec.URLs, Summary: rec.Summary, Interrupted: rec.Interrupted,
		Pending: []deliveryView{}, Deliveries: []deliveryView{}}
	v.Method, _ = what(&rec.Spec)[1].(string)
	for _, in := range rec.Instances {
		v.Instances = append(v.Instances, in.String())
	}
	if lj != nil && rec.State != stateDone {
		v.State, _ = lj.state.Load().(string)
		if p := lj.progress.Load(); p != nil {
			v.Progress = &progressView{p.Step, p.Done, p.Total, p.Failed}
		}
		if v.State == stateDone { // sent, its outcome being written: the record is lj's
			rec, ds, v.Summary = lj.rec, lj.ds, lj.rec.Summary
			if lj.report != nil {
				rep = lj.report
			}
		}
	}
	if rec.State == stateDone {
		f, ok := rec.Finished, rec.OK
		v.Finished, v.OK = &f, &ok
		if rep != nil {
			// A report a release before this one stored has the shape
			// of its day: answer it in today's.
			if up, err := report.Upgrade(rep); err == nil {
				rep = up
			} else {
				s.log.Warn("job report kept as stored", "job", v.Job, "reason", err.Error())
			}
			v.Report = bytes.TrimSpace(rep)
		}
	}
	for _, d := range ds {
		dv := deliveryView{Instance: d.Instance.String(), State: d.State, Replays: d.Replays, LastError: d.LastError, History: d.History}
		if d.State == dPending {
			dv.URLs = pendingCount(rec, &d)
			n := d.Next
			dv.Next = &n
			v.Pending = append(v.Pending, dv)
		}
		v.Deliveries = append(v.Deliveries, dv)
	}
	writeJobView(w, v)
}

// writeJobView writes a job's view with its report last, as the report is
// written (a result a line), each line indented one level more.
func writeJobView(w http.ResponseWriter, v jobView) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	rep := v.Report
	if rep == nil {
		rep = json.RawMessage("null")
	}
	b = append(b[:len(b)-len("\n}")], ",\n  \"report\": "...)
	// A JSON text has line breaks only between its tokens.
	b = append(b, bytes.ReplaceAll(rep, []byte("\n"), []byte("\n  "))...)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(b, "\n}\n"...))
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	status, state := http.StatusOK, "ok"
	if s.stopping.Load() {
		status, state = http.StatusServiceUnavailable, "stopping"
	}
	writeJSON(w, status, map[string]any{"status": state, "jobs_waiting": s.waiting.Load()})
}

// hopByHop are headers that concern one connection, never forwarded
// (RFC 9110 7.6.1), with Proxy-Connection and Keep-Alive as proxies drop
// them.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "Host"}

// instanceView is one instance's answer in transparent mode.
type instanceView struct {
	Instance  string  `json:"instance"`
	Region    string  `json:"region,omitempty"`
	MachineID string  `json:"machine_id,omitempty"`
	Status    int     `json:"status"`
	OK        bool    `json:"ok"`
	Reason    string  `json:"reason"`
	Attempts  int     `json:"attempts"`
	MS        float64 `json:"duration_ms"`
}

type transparentView struct {
	OK        bool            `json:"ok"`
	Job       string          `json:"job"`
	Summary   string          `json:"summary"`
	Method    string          `json:"method"`
	URL       string          `json:"url"`
	Instances []instanceView  `json:"instances"`
	Skipped   []purge.Skipped `json:"skipped,omitempty"`
}

// handleTransparent forwards a purge request as it came to every instance.
func (s *Server) handleTransparent(w http.ResponseWriter, r *http.Request) {
	who, byToken := s.auth.token(r)
	if !byToken {
		if !s.auth.allowed(r) {
			s.refuse(w, r, http.StatusUnauthorized, "unauthorized",
				errors.New("purge requests are accepted from the allowed networks, or with a valid API token (Authorization: Bearer <token>)"))
			return
		}
		who = "-"
	}
	if r.ContentLength > 0 || len(r.TransferEncoding) > 0 {
		s.refuse(w, r, http.StatusBadRequest, "bad_request", errors.New("transparent mode forwards requests without a body"))
		return
	}
	if r.Host == "" {
		s.refuse(w, r, http.StatusBadRequest, "bad_request", errors.New("the request has no Host: it names the site to purge"))
		return
	}
	target := r.RequestURI
	if !strings.HasPrefix(target, "/") {
		target = r.URL.RequestURI() // absolute-form: keep only the path and query
	}
	sp := &spec{URLs: []string{"http://" + r.Host + target}, RawURLs: true, Method: r.Method}
	drop := map[string]bool{}
	for _, h := range hopByHop {
		drop[h] = true
	}
	for _, v := range r.Header.Values("Connection") {
		for _, f := range strings.Split(v, ",") {
			drop[textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(f))] = true
		}
	}
	tokenHeader := s.cfg.Job.TokenHeader
	if tokenHeader == "" {
		tokenHeader = purge.DefaultTokenHeader
	}
	tokenHeader = textproto.CanonicalMIMEHeaderKey(tokenHeader)
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		switch {
		case drop[k]:
		case k == "Authorization" && byToken: // the API token stays here
		case k == tokenHeader:
			if v := r.Header.Get(k); v != s.cfg.Job.Token {
				sp.Token = v
			}
		default:
			for _, v := range r.Header[k] {
				sp.Headers = append(sp.Headers, k+": "+v)
			}
		}
	}
	lj := s.accept(w, r, kindTransparent, who, sp)
	if lj == nil {
		return
	}
	id := idString(lj.rec.ID)
	w.Header().Set(api.HeaderJob, id)
	select {
	case <-lj.done:
	case <-r.Context().Done():
		return
	}
	if lj.notRun || lj.err != nil {
		msg := "serve is stopping: the request is in the journal and is sent when serve starts again"
		if lj.err != nil {
			msg = lj.err.Error()
		}
		writeJSON(w, http.StatusServiceUnavailable, api.Error{Job: id, Error: msg})
		return
	}
	rep := lj.out.Purge
	v := transparentView{OK: rep.OK(), Job: id, Summary: rep.Summary(), Method: r.Method, URL: sp.URLs[0], Skipped: lj.out.Skipped,
		Instances: make([]instanceView, 0, rep.Len())}
	for k := range rep.Len() {
		res := rep.Result(k)
		iv := instanceView{Instance: res.Instance.String(), Region: res.Instance.Region, MachineID: res.Instance.MachineID,
			Status: res.Status, OK: res.OK, Attempts: res.Attempts, MS: float64(res.Duration.Microseconds()) / 1000}
		switch {
		case !res.OK && res.Err != nil:
			iv.Reason = res.Err.Error()
			var ie *purge.InstanceError
			if errors.As(res.Err, &ie) && ie.Reason != "" {
				iv.Reason = ie.Reason
			}
		default:
			iv.Reason = http.StatusText(res.Status)
		}
		v.Instances = append(v.Instances, iv)
	}
	status := http.StatusOK
	if !v.OK {
		status = http.StatusBadGateway
		w.Header().Set(api.HeaderFailure, headerSafe(v.Summary))
	}
	writeJSON(w, status, v)
}
