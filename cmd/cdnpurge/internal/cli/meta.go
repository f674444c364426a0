package cli

import (
	"slices"
	"strings"
)

// What the CLI knows about its flags beyond what a flag.FlagSet holds, in
// one place: how help groups them, which one-letter flags stand for long
// ones, and the values a flag takes (for its error, "did you mean" and
// shell completion). A flag added to a command's set is in its help,
// completion and "did you mean" at once; it joins a group here (else it is
// listed under "Other flags"), and its values here when it takes a fixed
// set.

// flagGroups order the help of the commands built on the shared fleet
// flags (see target): each group's flags in this order, by name, or
// "command/name" for one command's flag only; others are "Other flags".
// The rest (demo) show one "Flags:" list.
var flagGroups = []struct {
	title string
	flags []string
}{
	{"Where the instances are (one of --dns-name, --instance or --fly-app)", []string{
		"dns-name", "record", "port", "resolver", "dns-timeout",
		"instance",
		"fly-app", "fly-token-file", "fly-api", "region", "connect"}},
	{"What to send", []string{
		"url", "urls-file", "raw-url", "method", "tag", "soft", "regex", "content-type", "broad",
		"header", "token-file", "token-header", "ok-status", "dry-run"}},
	{"Verification", []string{
		"verify", "verify-url", "expect", "origin", "accept-uncertain", "wait", "interval", "cache-name", "cache-header"}},
	{"Connections", []string{
		"scheme", "insecure", "concurrency", "per-instance", "pipeline", "timeout", "retries", "deadline"}},
	{"Output", []string{"format", "summary-file", "verbose"}},
	{"Through a cdnpurge serve", []string{"via", "purge/api-token-file", "ban/api-token-file", "verify/api-token-file"}},
	{"Serving", []string{
		"listen", "allow", "serve/api-token-file", "tls-cert", "tls-key", "journal", "discovery-ttl", "replay-for",
		"keep", "max-body", "max-urls", "max-jobs", "max-queue", "shutdown-timeout", "log-format"}},
}

// shorthands are one-letter flags that stand for a long one: help shows
// them on the long one's line ("-v, --verbose").
var shorthands = map[string]string{"v": "verbose"}

// choice is the fixed set of values a flag takes.
type choice struct {
	values []string
	// also are spellings accepted besides values (not offered).
	also []string
	// list: the value is a comma-separated list of values (--verify=miss,hit).
	list bool
}

// choices are the values of flags that take a fixed set, by flag name, or
// by "command/flag" where a command takes other values than the rest. The
// value is checked when the flag is parsed, without case; a test holds each
// list to the parser in the library that reads the flag.
var choices = map[string]choice{
	"record":     {values: []string{"aaaa", "a", "srv"}},
	"format":     {values: []string{"text", "json", "markdown"}, also: []string{"md"}},
	"scheme":     {values: []string{"http", "https"}},
	"mode":       {values: []string{"auto", "netns", "loopback"}},
	"log-format": {values: []string{"text", "json"}},
	"verify":     {values: []string{"purged", "current", "hit", "fresh", "stale", "miss", "any"}, also: []string{"true", "false"}, list: true},
	// verify refuses purged (it needs a purge in the same run), and the
	// library says why.
	"verify/expect": {values: []string{"current", "hit", "fresh", "stale", "miss", "any"}, also: []string{"purged"}},
}

// choiceOf returns the values cmd's flag name takes, if it takes a fixed set.
func choiceOf(cmd, name string) (choice, bool) {
	if c, ok := choices[strings.TrimPrefix(cmd, "cdnpurge ")+"/"+name]; ok {
		return c, true
	}
	c, ok := choices[name]
	return c, ok
}

// check says whether v is one of c's values (each of them, for a list).
func (c choice) check(v string) (bad string, ok bool) {
	parts := []string{v}
	if c.list {
		parts = strings.Split(v, ",")
	}
	for _, p := range parts {
		p = strings.ToLower(strings.TrimSpace(p))
		if !slices.Contains(c.values, p) && !slices.Contains(c.also, p) {
			return p, false
		}
	}
	return "", true
}

// words lists the values as a sentence: "aaaa, a or srv".
func (c choice) words() string { return orList(c.values) }

func orList(v []string) string {
	switch len(v) {
	case 0:
		return ""
	case 1:
		return v[0]
	}
	return strings.Join(v[:len(v)-1], ", ") + " or " + v[len(v)-1]
}
