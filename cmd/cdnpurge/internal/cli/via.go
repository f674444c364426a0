package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cdnpurge/cdnpurge/serve/api"
)

// viaFlags send a job to a cdnpurge serve instead of the fleet.
type viaFlags struct {
	url       string
	tokenFile string
	token     string
}

func (v *viaFlags) register(f *flags) {
	f.StringVar(&v.url, "via", "", "send the job to the cdnpurge serve at this `URL` (e.g. https://purge.example.com),\nwhich finds the instances and sends to each; same report, same exit codes.\nThe API token comes from $CDNPURGE_API_TOKEN or --api-token-file")
	f.StringVar(&v.tokenFile, "api-token-file", "", "with --via: read the serve's API token from `FILE` (default: $CDNPURGE_API_TOKEN)")
}

// viaServeFlags are settings of the fleet that a serve holds itself: given
// with --via they would be ignored, so they are refused.
var viaServeFlags = []string{"dns-name", "record", "port", "resolver", "dns-timeout", "instance", "fly-app", "fly-token-file",
	"fly-api", "region", "connect", "scheme", "insecure", "concurrency", "per-instance", "pipeline", "timeout", "retries",
	"token-file", "token-header", "ok-status", "cache-name", "cache-header", "dry-run"}

// viaUnsent are settings of a job that the serve's API does not carry:
// given with --via they would be lost, so they are refused.
var viaUnsent = []string{"origin", "accept-uncertain", "broad"}

func (v *viaFlags) finish(a *App, f *flags) error {
	if v.url == "" {
		if v.tokenFile != "" {
			return usagef("--api-token-file goes with --via")
		}
		return nil
	}
	for _, n := range viaServeFlags {
		if f.set(n) {
			return usagef("--%s: with --via the serve decides this (set it on cdnpurge serve); leave it out", n)
		}
	}
	for _, n := range viaUnsent {
		if f.set(n) {
			return usagef("--%s is not sent through --via (the serve's API does not carry it): run without --via to use it", n)
		}
	}
	if f.cmd == "cdnpurge ban" && f.set("method") {
		return usagef("--method: a ban through --via is sent as BAN by the serve; run without --via to ban with another method")
	}
	tok, err := a.secret(v.tokenFile, "CDNPURGE_API_TOKEN", "--api-token-file")
	if err != nil {
		return err
	}
	v.token = tok
	return nil
}

func (v *viaFlags) client(a *App) *api.Client {
	return &api.Client{URL: v.url, Token: v.token, UserAgent: "cdnpurge/" + a.Version}
}

// runVia sends a purge or ban job to the serve and writes its report.
func (a *App) runVia(ctx context.Context, t *target) error {
	j := t.job
	req := api.Request{URLs: slices.Concat(j.URLs, j.URLList.Strings()), Tags: j.Tags, Soft: j.Soft, Method: j.Method, Headers: j.Headers, RawURLs: j.RawURLs,
		Verify: j.Verify, VerifyURLs: j.VerifyURLs}
	if j.Ban != "" {
		req.Ban = &api.Ban{Regex: j.Ban, ContentType: j.BanContentType}
		req.Method = ""
	}
	return a.viaResult(ctx, t, func(ctx context.Context, c *api.Client) (*api.Result, error) {
		return c.Purge(ctx, req, t.format, t.verbose)
	})
}

// verifyVia sends a verify job to the serve and writes its report.
func (a *App) verifyVia(ctx context.Context, t *target) error {
	j := t.job
	req := api.VerifyRequest{URLs: slices.Concat(j.URLs, j.URLList.Strings()), Method: j.VerifyMethod, Headers: j.Headers, RawURLs: j.RawURLs}
	if len(j.Verify) > 0 {
		req.Expect = j.Verify[0]
	}
	if j.Wait > 0 {
		req.Wait, req.Interval = j.Wait.String(), j.Interval.String()
	}
	return a.viaResult(ctx, t, func(ctx context.Context, c *api.Client) (*api.Result, error) {
		return c.Verify(ctx, req, t.format, t.verbose)
	})
}

func (a *App) viaResult(ctx context.Context, t *target, send func(context.Context, *api.Client) (*api.Result, error)) error {
	if len(t.job.URLs) == 0 {
		return usagef("no URL given: give at least one absolute URL, e.g. https://example.com/feed")
	}
	if t.job.Deadline > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.job.Deadline)
		defer cancel()
	}
	res, err := send(ctx, t.via.client(a))
	if err != nil {
		var se *api.StatusError
		switch {
		case api.IsUnauthorized(err):
			return fmt.Errorf("%w\nhint: check the API token in $CDNPURGE_API_TOKEN or --api-token-file", err)
		case errors.As(err, &se):
			return err
		case errors.Is(err, context.DeadlineExceeded):
			return &failedError{err: fmt.Errorf("no report from serve within --deadline %s: %w (the serve has the job and sends it)", t.job.Deadline, err)}
		}
		return err
	}
	// A JSON report is the serve's as the CLI writes its own (the client
	// gives an older serve's in the current shape).
	if _, err := a.Stdout.Write(res.Report); err != nil {
		return &failedError{err: fmt.Errorf("write the report: %w", err)}
	}
	if !res.OK() {
		msg := res.Failure
		if msg == "" {
			msg = fmt.Sprintf("serve answered %d", res.Status)
		}
		return &failedError{err: fmt.Errorf("%s (serve job %s)", msg, res.Job)}
	}
	return nil
}
