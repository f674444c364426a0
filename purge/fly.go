package purge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cdnpurge/cdnpurge/internal/secret"
)

// maxAPIBody bounds what is read of a Machines API answer.
const maxAPIBody = 16 << 20

// machine is what the Machines API says of one machine (the fields used).
type machine struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	State  string `json:"state"`
	Region string `json:"region"`
}

// listMachines lists a Fly.io app's machines through the Machines API
// (GET /v1/apps/APP/machines). Started machines are the instances; the
// others are skipped with their state: a stopped machine has no memory
// cache to purge, and the edge cannot reach it.
func listMachines(ctx context.Context, f Fly, timeout time.Duration) ([]Instance, []Skipped, error) {
	fail := func(kind ErrorKind, format string, a ...any) error {
		return &DiscoveryError{Kind: kind, Name: "Fly.io app " + f.App, Err: fmt.Errorf(format, a...)}
	}
	endpoint := strings.TrimSuffix(f.API, "/") + "/v1/apps/" + url.PathEscape(f.App) + "/machines"
	run := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, nil, fail(KindConfig, "Machines API address %s: %v", f.API, err)
	}
	// flyctl's macaroon tokens ("FlyV1 fm2_...") carry their own scheme;
	// other tokens are bearer tokens.
	auth := "Bearer " + f.Token
	if strings.HasPrefix(f.Token, "FlyV1 ") {
		auth = f.Token
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "cdnpurge/"+Version())
	secrets := secret.New(f.Token)
	resp, err := apiClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		var re *redirectError
		if errors.As(err, &re) {
			return nil, nil, fail(KindAPI, "the Machines API at %s redirected to %s, another scheme, host or port: not followed, as the request carries the Fly.io token; give the API's own address", f.API, re.to)
		}
		switch {
		case run.Err() != nil:
			// The run was stopped (its deadline, its caller): that is the
			// limit that cut the answer short, not the API's timeout.
			return nil, nil, fail(KindStopped, "stopped before the Machines API at %s answered: %w", f.API, context.Cause(run))
		case isTimeout(err):
			return nil, nil, fail(KindTimeout, "the Machines API at %s did not answer within %s", f.API, timeout)
		}
		return nil, nil, fail(KindUnreachable, "the Machines API at %s is unreachable: %v", f.API, err)
	}
	defer resp.Body.Close()
	apiErr := func(format string, a ...any) error {
		err := fail(KindAPI, format, a...).(*DiscoveryError)
		err.Status, err.RetryAfter = resp.StatusCode, retryAfter(resp.Header.Get("Retry-After"))
		return err
	}
	// One byte more than the limit tells a list that is larger from one
	// that fits exactly.
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIBody+1))
	if err != nil {
		if run.Err() != nil {
			return nil, nil, fail(KindStopped, "stopped while the Machines API at %s answered: %w", f.API, context.Cause(run))
		}
		return nil, nil, apiErr("read the Machines API's answer: %v", err)
	}
	if len(body) > maxAPIBody {
		if resp.StatusCode/100 == 2 {
			return nil, nil, fail(KindBadAnswer, "the Machines API's answer is larger than %d MiB, the most read of it: its list of machines cannot be read whole", maxAPIBody>>20)
		}
		body = body[:maxAPIBody]
	}
	said := apiMessage(body, secrets)
	switch code := resp.StatusCode; {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return nil, nil, apiErr("the Machines API refused the Fly.io token (%d %s%s); give a token that can read the app, e.g. from 'flyctl tokens create readonly'", code, http.StatusText(code), said)
	case code == http.StatusNotFound:
		return nil, nil, fail(KindNXDomain, "the Machines API knows no app %q (404%s); check the app's name", f.App, said)
	case code/100 != 2:
		meaning := statusMeaning(code)
		return nil, nil, apiErr("the Machines API answered %d %s%s%s", code, http.StatusText(code), meaning, said)
	}
	var ms []machine
	if err := json.Unmarshal(body, &ms); err != nil {
		return nil, nil, fail(KindBadAnswer, "the Machines API's answer is not a list of machines: %v", err)
	}
	var ins []Instance
	var skipped []Skipped
	var regions []string // of every machine listed
	seen := make(map[string]bool, len(ms))
	for _, m := range ms {
		if seen[m.ID] {
			continue // listed twice: one machine, purged once
		}
		seen[m.ID] = true
		if m.ID == "" {
			return nil, nil, fail(KindBadAnswer, "the Machines API listed a machine without an id")
		}
		if !machineID(m.ID) {
			return nil, nil, fail(KindBadAnswer, "the Machines API listed a machine whose id %q is not one (letters and digits)", cleanText(m.ID, 40))
		}
		m.Region = cleanText(m.Region, 20)
		if !slices.Contains(regions, m.Region) {
			regions = append(regions, m.Region)
		}
		if len(f.Regions) > 0 && !slices.Contains(f.Regions, m.Region) {
			continue
		}
		in := Instance{Region: m.Region, MachineID: m.ID, Name: m.Name}
		if m.State != "started" {
			skipped = append(skipped, Skipped{Instance: in, State: cleanText(m.State, 40)})
			continue
		}
		ins = append(ins, in)
	}
	if len(ins) == 0 {
		return nil, nil, noStartedMachine(f, len(seen), regions, skipped)
	}
	slices.SortFunc(ins, func(a, b Instance) int { return strings.Compare(a.String(), b.String()) })
	return ins, skipped, nil
}

// noStartedMachine says why an app has no machine to purge: it has none,
// none in the regions asked for (naming the regions it has), or none of
// those listed is started (with their states).
func noStartedMachine(f Fly, listed int, regions []string, skipped []Skipped) error {
	de := &DiscoveryError{Kind: KindNoRecords, Name: "Fly.io app " + f.App}
	where := ""
	if len(f.Regions) > 0 {
		where = " in " + orList(f.Regions)
	}
	switch {
	case listed == 0:
		de.Err = errors.New("the app has no machines (the Machines API listed none)")
	case len(skipped) == 0:
		slices.Sort(regions)
		de.Regions = regions
		de.Err = fmt.Errorf("the app has no machine%s: its %s %s in %s", where, plural(listed, "machine"), isAre(listed), andList(regions))
	default:
		var states []string
		count := map[string]int{}
		for _, s := range skipped {
			if count[s.State]++; count[s.State] == 1 {
				states = append(states, s.State)
			}
		}
		for i, st := range states {
			states[i] = fmt.Sprintf("%d %s", count[st], st)
		}
		there := ""
		if where != "" {
			there = " there"
		}
		de.Err = fmt.Errorf("the app has no started machine%s (%d listed%s: %s)", where, len(skipped), there, strings.Join(states, ", "))
	}
	return de
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

// andList and orList join words as a sentence does: "a", "a and b",
// "a, b and c".
func andList(w []string) string { return joinList(w, "and") }
func orList(w []string) string  { return joinList(w, "or") }

func joinList(w []string, conj string) string {
	if len(w) < 2 {
		return strings.Join(w, "")
	}
	return strings.Join(w[:len(w)-1], ", ") + " " + conj + " " + w[len(w)-1]
}

// statusMeaning says, in parentheses, what a Machines API status that is
// neither a success nor a refusal of the token means (how long it asks to
// wait is the hint's: DiscoveryError.RetryAfter).
func statusMeaning(code int) string {
	switch {
	case code == http.StatusTooManyRequests:
		return " (rate limited)"
	case code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout:
		return " (unavailable for now, on Fly.io's side)"
	case code >= 500:
		return " (a failure on Fly.io's side)"
	}
	return ""
}

// retryAfter reads a Retry-After header in seconds (its date form is
// not used by the Machines API); 0 when absent or not a number.
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 || n > 24*3600 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// machineID says whether id can be a machine's id: it goes in a header,
// so only letters and digits.
func machineID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// apiMessage is the API's own error message, for an error, never showing
// the token: the message is decided as it will be shown (folded and cut),
// and withheld whole when it shows 8 characters of it.
func apiMessage(body []byte, secrets *secret.Set) string {
	var e struct {
		Error string `json:"error"`
	}
	msg := string(body)
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	msg = cleanText(msg, 200)
	switch {
	case msg == "":
		return ""
	case secrets.Shows(msg), secrets.Shows(strconv.Quote(msg)):
		return ": (its message is withheld: it shows part of the token)"
	}
	return ": " + msg
}

// apiClient asks the Machines API. It follows a redirect only to the same
// scheme, host and port: the request carries the Fly.io token, which must
// never leave for another address (net/http would keep it across a port
// change, and across a downgrade from https to http).
var apiClient = &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
	from := via[0].URL
	if req.URL.Scheme != from.Scheme || req.URL.Host != from.Host || req.URL.Port() != from.Port() {
		return &redirectError{to: req.URL.Scheme + "://" + req.URL.Host + "/"}
	}
	if len(via) >= 5 {
		return errors.New("more than 5 redirects")
	}
	return nil
}}

// redirectError is a redirect not followed.
type redirectError struct{ to string }

func (e *redirectError) Error() string { return "redirect to " + e.to + " not followed" }
