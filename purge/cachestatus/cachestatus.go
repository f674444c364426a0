// Package cachestatus reads what a cache says it did with a response: the
// Cache-Status header of RFC 9211, the non-standard forms real fleets send,
// and X-Cache, and reduces them all to one Class.
//
// # Sources, in the order they are consulted
//
//  1. Cache-Status as RFC 9211 defines it: an RFC 8941 List (parsed with
//     github.com/dunglas/httpsfv) whose members are caches, the last one
//     nearest the client. Each member is a cache name (token or string) with
//     parameters hit, fwd, fwd-status, ttl, stored, collapsed, key and
//     detail; unknown parameters are kept. The LAST member is classified:
//
//     ExampleCache; hit                 -> hit
//     ExampleCache; hit; ttl=-412       -> stale (served past its TTL)
//     ExampleCache; hit; detail=grace   -> stale (a detail saying stale or grace)
//     ExampleCache; fwd=stale           -> miss (its copy was stale: it went to the origin)
//     ExampleCache; fwd=uri-miss; stored -> miss (also miss, vary-miss, request, partial)
//     ExampleCache; fwd=bypass          -> bypass (also method)
//     ExampleCache; detail=synth        -> synthetic (a detail or name saying synth)
//     ExampleCache                      -> unknown (neither hit nor fwd)
//
//  2. The semicolon form thechangelog/pipely sends, which is not a valid
//     structured field: "region=iad; origin=app,app.origin.local; ttl=10.000;
//     grace=86400.000; storage=memory; hit; stale; hits=3". Bare words are
//     flags: synth -> synthetic; bypass or pass -> bypass; hit with stale ->
//     stale; hit -> hit (a negative ttl makes it stale); miss -> miss. Without
//     a flag, hits=N with N > 0 counts as a hit; hits=0 is never a hit.
//
//  3. X-Cache: HIT / MISS (any case; also "TCP_HIT", "Hit from cloudfront",
//     "HIT, MISS" from several layers, where the LAST value is nearest the
//     client), with X-Cache-Hits kept as Hits. "PASS"/"BYPASS"/"DYNAMIC" ->
//     bypass, "STALE"/"UPDATING" -> stale, "EXPIRED" -> miss (fetched again),
//     "REVALIDATED" -> hit, "SYNTH" -> synthetic. The Varnish convention
//     hit|miss|pass|synth|pipe, then "graced" when served in grace, then
//     cached|uncacheable: "hit graced cached" -> stale, "miss uncacheable" ->
//     miss, "pass uncacheable" -> bypass. hit-for-pass -> bypass,
//     hit-for-miss -> miss.
//
// A header that none of these rules understands is classified Unknown and
// kept in Raw: parsing never fails and never panics.
package cachestatus

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/dunglas/httpsfv"
)

// Class is what the cache did, reduced to what verification needs.
type Class string

// The classes.
const (
	Hit       Class = "hit"       // served from cache, fresh
	Stale     Class = "stale"     // served from cache past its TTL (grace)
	Miss      Class = "miss"      // fetched from the origin
	Bypass    Class = "bypass"    // not cacheable or deliberately not cached (pass)
	Synthetic Class = "synthetic" // made up by the cache itself (errors, redirects)
	Unknown   Class = "unknown"   // no header, or one these rules do not understand
)

// IsHit says whether the response came from the cache (fresh or stale).
func (c Class) IsHit() bool { return c == Hit || c == Stale }

// Entry is one member of an RFC 9211 Cache-Status list.
type Entry struct {
	Cache     string            `json:"cache"`
	Hit       bool              `json:"hit,omitempty"`
	Fwd       string            `json:"fwd,omitempty"`
	FwdStatus int               `json:"fwd_status,omitempty"`
	TTL       *float64          `json:"ttl,omitempty"`
	Stored    bool              `json:"stored,omitempty"`
	Collapsed bool              `json:"collapsed,omitempty"`
	Key       string            `json:"key,omitempty"`
	Detail    string            `json:"detail,omitempty"`
	Params    map[string]string `json:"params,omitempty"` // unknown parameters, as serialized
}

// Status is the reading of one response's headers.
type Status struct {
	Class Class `json:"class"`
	// Source names the header and form the class came from: "cache-status",
	// "cache-status (pipely)", "x-cache", or "" when none was present.
	Source string `json:"source,omitempty"`
	// Raw is the header value as received.
	Raw string `json:"raw,omitempty"`
	// Entries are the RFC 9211 members, when the header was one.
	Entries []Entry `json:"entries,omitempty"`
	// TTL is the remaining freshness in seconds when a header said it.
	TTL *float64 `json:"ttl,omitempty"`
	// Hits is how often the object was served from cache, when a header
	// said it (pipely's hits=, X-Cache-Hits); -1 when unknown.
	Hits int `json:"hits"`
}

// FromHeader reads Cache-Status, falling back to X-Cache.
func FromHeader(h http.Header) Status {
	if v := strings.Join(h.Values("Cache-Status"), ", "); strings.TrimSpace(v) != "" {
		return Parse(v)
	}
	if v := strings.Join(h.Values("X-Cache"), ", "); strings.TrimSpace(v) != "" {
		return ParseXCache(v, strings.Join(h.Values("X-Cache-Hits"), ", "))
	}
	return Status{Class: Unknown, Hits: -1}
}

// Parse reads a Cache-Status value: RFC 9211 when it parses as a structured
// field list, else the pipely form.
func Parse(v string) Status {
	st := Status{Class: Unknown, Raw: v, Hits: -1}
	if list, err := httpsfv.UnmarshalList([]string{v}); err == nil && len(list) > 0 && !looksLikePipely(list) {
		st.Source = "cache-status"
		for _, m := range list {
			st.Entries = append(st.Entries, entryOf(m))
		}
		last := st.Entries[len(st.Entries)-1]
		st.TTL = last.TTL
		st.Class = classifyEntry(last)
		return st
	}
	return parsePipely(v, st)
}

// looksLikePipely catches pipely values that happen to parse as a list: a
// first member that is one of pipely's flags rather than a cache name.
func looksLikePipely(l httpsfv.List) bool {
	it, ok := l[0].(httpsfv.Item)
	if !ok {
		return false
	}
	tok, ok := it.Value.(httpsfv.Token)
	if !ok {
		return false
	}
	switch strings.ToLower(string(tok)) {
	case "hit", "miss", "stale", "synth", "pass", "bypass":
		return true
	}
	return false
}

func entryOf(m httpsfv.Member) Entry {
	var e Entry
	var params *httpsfv.Params
	switch it := m.(type) {
	case httpsfv.Item:
		e.Cache = bareString(it.Value)
		params = it.Params
	case httpsfv.InnerList:
		e.Cache = "(inner list)"
		params = it.Params
	}
	if params == nil {
		return e
	}
	for _, k := range params.Names() {
		v, _ := params.Get(k)
		switch k {
		case "hit":
			e.Hit, _ = v.(bool)
		case "fwd":
			e.Fwd = strings.ToLower(bareString(v))
		case "fwd-status":
			if n, ok := v.(int64); ok {
				e.FwdStatus = int(n)
			}
		case "ttl":
			if f, ok := number(v); ok {
				e.TTL = &f
			}
		case "stored":
			e.Stored, _ = v.(bool)
		case "collapsed":
			e.Collapsed, _ = v.(bool)
		case "key":
			e.Key = bareString(v)
		case "detail":
			e.Detail = bareString(v)
		default:
			if e.Params == nil {
				e.Params = map[string]string{}
			}
			e.Params[k] = bareString(v)
		}
	}
	return e
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func bareString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case httpsfv.Token:
		return string(x)
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case []byte:
		return string(x)
	}
	return ""
}

func classifyEntry(e Entry) Class {
	detail := strings.ToLower(e.Detail)
	if e.Hit {
		if e.TTL != nil && *e.TTL < 0 || strings.Contains(detail, "stale") || strings.Contains(detail, "grace") {
			return Stale
		}
		return Hit
	}
	switch e.Fwd {
	case "bypass", "method":
		return Bypass
	case "uri-miss", "vary-miss", "miss", "request", "partial", "stale":
		// stale: the stored copy was stale, so the cache went to the origin.
		return Miss
	}
	if strings.Contains(detail, "synth") {
		return Synthetic
	}
	return Unknown
}

// parsePipely reads "key=value; flag; ..." as thechangelog/pipely sends it.
func parsePipely(v string, st Status) Status {
	flags := map[string]bool{}
	hits := -1
	for _, part := range strings.Split(v, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, val, hasVal := strings.Cut(part, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		val = strings.Trim(strings.TrimSpace(val), `"`)
		if !hasVal {
			flags[k] = true
			continue
		}
		switch k {
		case "ttl":
			if f, err := strconv.ParseFloat(val, 64); err == nil {
				st.TTL = &f
			}
		case "hits":
			if n, err := strconv.Atoi(val); err == nil && n >= 0 {
				hits = n
			}
		}
	}
	if len(flags) == 0 && hits < 0 && st.TTL == nil {
		return st // nothing recognisable: Unknown
	}
	st.Source, st.Hits = "cache-status (pipely)", hits
	switch {
	case flags["synth"] || flags["synthetic"]:
		st.Class = Synthetic
	case flags["bypass"] || flags["pass"] || flags["pipe"]:
		st.Class = Bypass
	case flags["hit"] && (flags["stale"] || st.TTL != nil && *st.TTL < 0):
		st.Class = Stale
	case flags["hit"]:
		st.Class = Hit
	case flags["stale"]:
		st.Class = Stale
	case flags["miss"]:
		st.Class = Miss
	case hits > 0:
		st.Class = Hit
	case hits == 0:
		st.Class = Miss
	}
	return st
}

// ParseXCache reads X-Cache (and X-Cache-Hits). With several layers
// ("HIT, MISS") the last value is the cache nearest the client.
func ParseXCache(v, hitsHeader string) Status {
	st := parseWords(v, "x-cache")
	if hp := strings.Split(hitsHeader, ","); strings.TrimSpace(hitsHeader) != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(hp[len(hp)-1])); err == nil && n >= 0 {
			st.Hits = n
		}
	}
	return st
}

// parseWords reads an X-Cache style value (X-Cache, X-Cache-Status,
// Cf-Cache-Status): the last comma-separated value, by its first word.
func parseWords(v, source string) Status {
	parts := strings.Split(v, ",")
	return Status{Class: classifyWords(parts[len(parts)-1]), Source: source, Raw: v, Hits: -1}
}

func classifyWords(s string) Class {
	s = strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "TCP_") // squid: TCP_HIT, TCP_REFRESH_HIT
	words := strings.FieldsFunc(s, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '/' || r == ':' || r == '(' || r == ')' || r == ';'
	})
	if len(words) == 0 {
		return Unknown
	}
	w, next := words[0], ""
	if len(words) > 1 {
		next = words[1]
	}
	compact := strings.NewReplacer("-", "", "_", "").Replace(w) // hit-for-pass, HIT_FOR_PASS
	switch {
	case strings.Contains(compact, "HITFORPASS") || strings.Contains(compact, "HITPASS"):
		return Bypass
	case strings.Contains(compact, "HITFORMISS") || strings.Contains(compact, "HITMISS"):
		return Miss
	case strings.Contains(w, "STALE") || strings.Contains(w, "UPDATING"):
		return Stale
	case strings.Contains(w, "EXPIRED"):
		return Miss
	case strings.Contains(w, "REVALIDATED") || strings.Contains(w, "UNMODIFIED"):
		return Hit
	case strings.Contains(w, "HIT"):
		if next == "GRACED" || next == "GRACE" || next == "STALE" {
			return Stale
		}
		return Hit
	case strings.Contains(w, "MISS"):
		return Miss
	case w == "PASS" || w == "BYPASS" || w == "DYNAMIC" || w == "PIPE":
		return Bypass
	case strings.HasPrefix(w, "SYNTH") || w == "NONE":
		return Synthetic
	}
	return Unknown
}
