// Package purge invalidates a URL on EVERY instance of a self-hosted cache
// fleet and proves it.
//
// A fleet of Varnish instances (one per region, say) answers behind one
// anycast address: a PURGE sent to the public host reaches the one
// instance nearest the sender, and every other instance keeps serving the
// old copy. So the instances must be found and asked one by one: through
// an internal DNS name whose records list every instance (AAAA on Fly.io's
// <app>.internal, A or SRV elsewhere; answers too large for UDP are asked
// again over TCP, or a large fleet would be found only in part), a static
// list, or a platform's API (Fly.io's Machines API, each machine then
// reached through the public edge).
//
// A Job holds one run's settings, as a person or a CI step gives them, and
// checks them itself. Run finds the instances, sends the request for every
// URL to every instance at once, each with the URL's own Host header (the
// cache's key) and the URL as a browser requests it, and then verifies with
// each cache's own evidence (Cache-Status, X-Cache, X-Varnish, Age; see
// package cachestatus) that no instance still serves a copy older than the
// purge:
//
//	out, err := purge.Job{
//		DNSName: "my-cdn.internal", Port: 9000,
//		URLs:    []string{"https://example.com/feed"}, // or URLList: ReadURLs of a file
//		Token:   token,
//		Verify:  []purge.Expect{purge.ExpectPurged},
//	}.Run(ctx)
//	if err != nil { ... }      // *JobError or *DiscoveryError: nothing was sent
//	if err := out.Err(); err != nil { ... } // which step failed where; out.Purge.Result(k) says why
//
// Results report every (URL, instance) pair, so a partial failure never
// hides the instances that succeeded. A failed result carries an
// *InstanceError (errors.Is against ErrNoToken, ErrServedFromCache, ...).
// Reports are written by package report.
//
// "OK" means the instance itself answered 2xx (or a status the job
// accepts) to this very request: requests are paired with their answers
// exactly (interim 1xx answers skipped, a connection with bytes nobody
// accounted for never reused), a purge answered as an ordinary cache hit or
// passed on to the application is a failure, and redirects are not
// followed. Requests that fail on a connection error, a timeout, a 429 or a
// 5xx are tried again with backoff; an instance that fails to connect, or
// answers nothing, BreakerThreshold times in a row is given up, and its
// remaining URLs are reported as not sent at once.
//
// Pipelining assumes nothing of the instance: a connection starts with one
// request and deepens as answers come, and what an instance shows (a close
// after k answers, a stall, answers that do not pair) is remembered for the
// run, and by a Transport for the runs that share it. A result's Attempts count the times its request was written: what
// the instance may have received. "not sent" is said only of a request
// never written.
//
// No secret of the job (the purge token, the Fly.io token) appears in a
// result, a report or an error, whole or in part: a text from outside that
// shows 8 consecutive characters of one is withheld whole (see
// Report.Reveals for writers of their own).
//
// The package never prints, never reads flags or the environment, and
// holds no state between calls but what a caller keeps in a Transport
// (connections kept alive, what each instance showed of its wire).
package purge
