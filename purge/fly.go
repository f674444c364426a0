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
		if isTimeout(err) {
			return nil, nil, fail(KindTimeout, "the Machines API at %s did not answer within %s", f.API, timeout)
		}
		return nil, nil, fail(KindUnreachable, "the Machines API at %s is unreachable: %v", f.API, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIBody))
	if err != nil {
		return nil, nil, fail(KindAPI, "read the Machines API's answer: %v", err)
	}
	said := apiMessage(body, secrets)
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, nil, fail(KindAPI, "the Machines API refused the Fly.io token (%d %s%s); give a token that can read the app, e.g. from 'flyctl tokens create readonly'", resp.StatusCode, http.StatusText(resp.StatusCode), said)
	case resp.StatusCode == http.StatusNotFound:
		return nil, nil, fail(KindNXDomain, "the Machines API knows no app %q (404%s); check the app's name", f.App, said)
	case resp.StatusCode/100 != 2:
		return nil, nil, fail(KindAPI, "the Machines API answered %d %s%s", resp.StatusCode, http.StatusText(resp.StatusCode), said)
	}
	var ms []machine
	if err := json.Unmarshal(body, &ms); err != nil {
		return nil, nil, fail(KindBadAnswer, "the Machines API's answer is not a list of machines: %v", err)
	}
	var ins []Instance
	var skipped []Skipped
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
		where := ""
		if len(f.Regions) > 0 {
			where = " in " + strings.Join(f.Regions, ", ")
		}
		return nil, nil, fail(KindNoRecords, "the app has no started machine%s (%d listed, none started)", where, len(skipped))
	}
	slices.SortFunc(ins, func(a, b Instance) int { return strings.Compare(a.String(), b.String()) })
	return ins, skipped, nil
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
