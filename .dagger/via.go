package main

import (
	"context"
	"fmt"
	"slices"

	"dagger/cdnpurge/internal/dagger"

	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/serve/api"
)

// viaClient is the client of the serve at via, with the API token read.
// The serve finds the instances: arguments that say where they are would
// be ignored, so they are refused.
func viaClient(ctx context.Context, via string, apiToken *dagger.Secret, j purge.Job) (*api.Client, error) {
	if j.DNSName != "" || len(j.Instances) > 0 || j.Fly.App != "" {
		return nil, fmt.Errorf("nothing was sent: --via %s: the serve finds the instances; leave out --dns-name, --instance and --fly-app", via)
	}
	c := &api.Client{URL: via, UserAgent: "cdnpurge-dagger/" + purge.Version()}
	if apiToken != nil {
		tok, err := apiToken.Plaintext(ctx)
		if err != nil {
			return nil, fmt.Errorf("read --api-token: %w", err)
		}
		c.Token = tok
	}
	return c, nil
}

// viaPurge sends a purge or ban job (what the arguments mapped to j) to a
// serve, which holds the fleet's settings: only what to send goes.
func viaPurge(ctx context.Context, via string, apiToken *dagger.Secret, j purge.Job, format string, verbose, dryRun bool) (string, error) {
	if dryRun {
		return "", fmt.Errorf("nothing was sent: --dry-run shows what this module would send itself; with --via the serve sends")
	}
	if err := viaUnsent(j); err != nil {
		return "", err
	}
	c, err := viaClient(ctx, via, apiToken, j)
	if err != nil {
		return "", err
	}
	req := api.Request{URLs: slices.Concat(j.URLs, j.URLList.Strings()), Tags: j.Tags, Soft: j.Soft, Method: j.Method, Headers: j.Headers, RawURLs: j.RawURLs,
		Verify: j.Verify, VerifyURLs: j.VerifyURLs}
	if j.Ban != "" {
		req.Ban, req.Method = &api.Ban{Regex: j.Ban, ContentType: j.BanContentType}, ""
	}
	res, err := c.Purge(ctx, req, format, verbose)
	return viaReport(res, err)
}

// viaVerify sends a verify job to a serve.
func viaVerify(ctx context.Context, via string, apiToken *dagger.Secret, j purge.Job, format string, verbose bool) (string, error) {
	if err := viaUnsent(j); err != nil {
		return "", err
	}
	c, err := viaClient(ctx, via, apiToken, j)
	if err != nil {
		return "", err
	}
	req := api.VerifyRequest{URLs: slices.Concat(j.URLs, j.URLList.Strings()), Method: j.VerifyMethod, Headers: j.Headers, RawURLs: j.RawURLs, Expect: j.Verify[0]}
	if j.Wait > 0 {
		req.Wait, req.Interval = j.Wait.String(), j.Interval.String()
	}
	res, err := c.Verify(ctx, req, format, verbose)
	return viaReport(res, err)
}

// viaReport is the report, or an error holding it when some instance
// failed (as run returns one), or the serve's refusal with its remedy.
func viaReport(res *api.Result, err error) (string, error) {
	if err != nil {
		if api.IsUnauthorized(err) {
			return "", fmt.Errorf("%w\nhint: pass the serve's API token: --api-token env://CDNPURGE_API_TOKEN", err)
		}
		return "", err
	}
	if !res.OK() {
		msg := res.Failure
		if msg == "" {
			msg = fmt.Sprintf("serve answered %d", res.Status)
		}
		return "", fmt.Errorf("FAILED: %s (serve job %s)\n\n%s", msg, res.Job, res.Report)
	}
	return string(res.Report), nil
}

// viaUnsent refuses the settings the serve's API does not carry: they
// would be lost on the way.
func viaUnsent(j purge.Job) error {
	for _, a := range []struct {
		set  bool
		name string
	}{{j.Origin != "", "origin"}, {j.AcceptUncertain, "accept-uncertain"}, {j.Broad, "broad"}, {j.Ban != "" && j.Method != "", "method"}, {j.CacheHeader != "", "cache-header"}} {
		if a.set {
			return fmt.Errorf("nothing was sent: --%s is not sent through --via (the serve's API does not carry it)\nhint: leave --via out to use it", a.name)
		}
	}
	return nil
}
