// Package purge finds every instance of a self-hosted cache fleet (Varnish
// behind one anycast address, for example) and sends a request to each of
// them at once: PURGE to drop a URL everywhere, or HEAD/GET to see what every
// instance now serves.
//
// A fleet's instances are found by a DNS lookup of an internal name (AAAA on
// Fly.io's <app>.internal, A or SRV elsewhere; see [Discover]) or given as a
// static list. [Run] sends one request per (URL, instance) pair with the URL's
// own Host header, keeps connections alive per instance, retries what is worth
// retrying and returns a [Report] that says, per instance, what happened. A
// partial failure never hides the instances that did succeed.
//
// Typical use from a Go program:
//
//	instances, err := purge.Discover(ctx, purge.Discovery{Name: "cdn.internal", Record: purge.RecordAAAA, Port: 9000})
//	if err != nil { ... }                   // *purge.DiscoveryError says what went wrong
//	report, err := purge.Run(ctx, purge.Options{Token: token}, instances, urls)
//	if err != nil { ... }                   // bad options; nothing was sent
//	if !report.OK() { ... }                 // some instance was not purged; report.Failed() says which
//
// The package never prints, never reads the environment and holds no
// package-level state: every setting is in [Discovery] and [Options].
package purge
