package e2e

// Edge mode end to end: real varnishd behind the fleet package's Fly.io
// stand-in (a Machines API and an edge that routes by
// fly-force-instance-id), purged and verified through the edge by the
// library and by the CLI binary. Every helper here is named fly...: the
// rest of the package is someone else's.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/fleet"
	"github.com/cdnpurge/cdnpurge/fleet/fleettest"
	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/cachestatus"
	"github.com/cdnpurge/cdnpurge/purge/report/reporttest"
)

const flyPurgeToken = "e2e-fly-purge-token"

// flyFleet starts a fleet of n and a stand-in in front of it; both stop
// when t ends. It returns the fleet's purge token (the environment's, for
// external instances).
func flyFleet(t *testing.T, n int, o fleet.FlyOptions) (*fleet.Fleet, *fleet.FlyEdge, string) {
	t.Helper()
	fo := fleettest.Options(t, fleet.Options{N: n, Token: flyPurgeToken})
	f := fleettest.Start(t, fo)
	e, err := f.StartFly(o)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, e.Close()) })
	return f, e, fo.Token
}

func flyCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// flyWarm asks every started machine for u through the edge until each
// has it cached.
func flyWarm(t *testing.T, e *fleet.FlyEdge, u string) {
	t.Helper()
	for _, want := range []purge.Expect{purge.ExpectAny, purge.ExpectHit} {
		j := e.Job()
		j.URLs, j.VerifyOnly, j.Verify = []string{u}, true, []purge.Expect{want}
		out, err := j.Run(flyCtx(t))
		require.NoError(t, err)
		require.True(t, out.OK(), "warm %s: %v", want, out.Err())
	}
}

// flyMember is the member behind a machine id.
func flyMember(e *fleet.FlyEdge, id string) *fleet.Member {
	for _, m := range e.Machines() {
		if m.ID == id {
			return m.Member
		}
	}
	return nil
}

// flyCheckRouted checks that each result came from the machine it is
// labelled with: the shipped VCL names its instance in Cache-Status.
func flyCheckRouted(t *testing.T, f *fleet.Fleet, e *fleet.FlyEdge, rep *purge.Report) {
	t.Helper()
	if f.Mode == fleet.ModeExternal {
		return // their VCL's names are not known here
	}
	for k := range rep.Len() {
		res := rep.Result(k)
		m := flyMember(e, res.Instance.MachineID)
		require.NotNil(t, m, res.Instance.String())
		assert.True(t, strings.HasPrefix(res.CacheStatus, m.Name+";"), "%s answered %q: not %s", res.Instance, res.CacheStatus, m.Name)
	}
}

func TestFlyPurgeAndVerifyThroughTheEdge(t *testing.T) {
	f, e, tok := flyFleet(t, 3, fleet.FlyOptions{})
	u := "https://cdnpurge.example/fly/library"
	flyWarm(t, e, u)
	n := len(f.Members)

	j := e.Job()
	j.URLs, j.Token, j.Verify = []string{u}, tok, []purge.Expect{purge.ExpectMiss, purge.ExpectHit}
	out, err := j.Run(flyCtx(t))
	require.NoError(t, err)
	require.True(t, out.OK(), "%v", out.Err())
	assert.Empty(t, out.Skipped)

	var want []string
	for _, m := range e.Machines() {
		want = append(want, m.Region+"/"+m.ID)
		assert.Positive(t, e.Requests(m.ID), "machine %s was reached", m.ID)
	}
	slices.Sort(want)
	require.Len(t, out.Instances, n)
	for _, rep := range out.Reports() {
		var got []string
		for _, in := range rep.Instances {
			got = append(got, in.String())
		}
		assert.Equal(t, want, got)
	}
	assert.Zero(t, e.Requests(""), "every request named its machine")
	for k := range n {
		assert.Equal(t, cachestatus.Miss, out.Verify[0].Result(k).Class, "right after the purge")
		assert.Equal(t, cachestatus.Hit, out.Verify[1].Result(k).Class, "on the next request")
	}
	flyCheckRouted(t, f, e, out.Verify[0])
	flyCheckRouted(t, f, e, out.Verify[1])
}

// flyCLI builds the cdnpurge binary for t, in a directory removed when t
// ends (go build's cache makes the second build cheap).
func flyCLI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "cdnpurge")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/cdnpurge/cdnpurge/cmd/cdnpurge")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build cdnpurge: %v\n%s", err, b)
	}
	return bin
}

// flyRunCLI runs the binary with the Fly token and the purge token in the
// environment, as a CI step does.
func flyRunCLI(t *testing.T, bin, flyToken, purgeToken string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.CommandContext(flyCtx(t), bin, args...)
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "FLY_API_TOKEN=") || strings.HasPrefix(kv, "PURGE_TOKEN=")
	})
	cmd.Env = append(env, "FLY_API_TOKEN="+flyToken, "PURGE_TOKEN="+purgeToken)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("run cdnpurge: %v", err)
	}
	return code, out.String(), errb.String()
}

// flyJSON is the part of a JSON report these tests read.
type flyJSON struct {
	OK    bool
	Purge struct {
		OK        bool
		Instances []string
		Skipped   []reporttest.Skipped
		Results   []reporttest.Result
	}
	Verify []reporttest.Step
}

// flyParse validates a JSON report and reads its purge and verify steps.
func flyParse(t *testing.T, stdout string) flyJSON {
	t.Helper()
	rep := reporttest.Require(t, stdout)
	r := flyJSON{OK: rep.OK, Verify: rep.Verify()}
	p := rep.Purge()
	require.NotNil(t, p, "a purge step")
	r.Purge.OK, r.Purge.Results = p.OK, p.Results
	r.Purge.Instances, r.Purge.Skipped = rep.Instances, rep.Skipped
	return r
}

func TestFlyCLIStartedAndStoppedMachines(t *testing.T) {
	bin := flyCLI(t)
	f, e, tok := flyFleet(t, 3, fleet.FlyOptions{Extra: []fleet.FlyMachine{{State: "stopped", Region: "lhr"}, {State: "suspended", Region: "nrt"}}})
	u := "https://cdnpurge.example/fly/cli"
	flyWarm(t, e, u)

	args := append([]string{"purge", "--url", u, "--verify=miss,hit", "--format", "json"}, e.Args()...)
	code, stdout, stderr := flyRunCLI(t, bin, e.Token, tok, args...)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", stdout, stderr)
	r := flyParse(t, stdout)
	assert.True(t, r.OK)
	n := len(f.Members)
	require.Len(t, r.Purge.Instances, n)
	require.Len(t, r.Purge.Results, n)
	for _, row := range r.Purge.Results {
		assert.True(t, row.OK, row.Instance)
		assert.Equal(t, 200, row.Status)
		assert.Equal(t, row.Region+"/"+row.MachineID, row.Instance)
		assert.NotNil(t, flyMember(e, row.MachineID), "only machines with a member are sent anything")
	}
	extra := e.Machines()[n:]
	require.Len(t, r.Purge.Skipped, 2)
	for i, s := range r.Purge.Skipped {
		assert.Equal(t, extra[i].Region+"/"+extra[i].ID, s.Instance)
		assert.Equal(t, extra[i].ID, s.MachineID)
		assert.Equal(t, extra[i].State, s.State)
		assert.Zero(t, e.Requests(extra[i].ID), "a skipped machine is sent nothing")
	}
	require.Len(t, r.Verify, 2)
	for i, class := range []string{"miss", "hit"} {
		assert.Equal(t, class, r.Verify[i].Expect)
		require.Len(t, r.Verify[i].Results, n)
		for _, c := range r.Verify[i].Results {
			assert.True(t, c.OK, "%s: %s", c.Instance, c.Error)
			assert.Equal(t, class, c.Class)
		}
	}

	// The text report names the skipped machines too.
	code, stdout, stderr = flyRunCLI(t, bin, e.Token, tok, append([]string{"purge", "--url", u}, e.Args()...)...)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "skipped "+extra[0].Region+"/"+extra[0].ID+" (not started)")
	assert.Contains(t, stdout, "suspended")
}

func TestFlyRegionFilter(t *testing.T) {
	bin := flyCLI(t)
	f, e, tok := flyFleet(t, 3, fleet.FlyOptions{Regions: []string{"iad", "sjc", "ams"}})
	if len(f.Members) != 3 {
		t.Skipf("needs 3 instances, the environment gives %d", len(f.Members))
	}
	u := "https://cdnpurge.example/fly/regions"
	flyWarm(t, e, u)
	sjc := e.Requests(e.Machine(1).ID)

	args := append([]string{"purge", "--url", u, "--region", "iad,ams", "--verify=miss", "--format", "json"}, e.Args()...)
	code, stdout, stderr := flyRunCLI(t, bin, e.Token, tok, args...)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", stdout, stderr)
	r := flyParse(t, stdout)
	want := []string{"ams/" + e.Machine(2).ID, "iad/" + e.Machine(0).ID}
	assert.Equal(t, want, r.Purge.Instances)
	assert.Empty(t, r.Purge.Skipped, "other regions' machines are not listed as skipped")
	assert.Equal(t, sjc, e.Requests(e.Machine(1).ID), "sjc was sent nothing")

	// sjc still serves the copy it had.
	j := e.Job()
	j.URLs, j.VerifyOnly, j.Verify, j.Fly.Regions = []string{u}, true, []purge.Expect{purge.ExpectHit}, []string{"sjc"}
	out, err := j.Run(flyCtx(t))
	require.NoError(t, err)
	require.True(t, out.OK(), "%v", out.Err())
	assert.Equal(t, "sjc/"+e.Machine(1).ID, out.Instances[0].String())
}

func TestFlyBadTokenOrApp(t *testing.T) {
	bin := flyCLI(t)
	_, e, tok := flyFleet(t, 2, fleet.FlyOptions{})
	u := "https://cdnpurge.example/fly/token"

	const wrong = "wrong-fly-token-123"
	code, stdout, stderr := flyRunCLI(t, bin, wrong, tok, append([]string{"purge", "--url", u}, e.Args()...)...)
	assert.Equal(t, 2, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "the Machines API refused the Fly.io token (401 Unauthorized")
	assert.Contains(t, stderr, "hint: check the Fly.io token (FLY_API_TOKEN or --fly-token-file)")
	assert.NotContains(t, stderr, wrong)

	code, _, stderr = flyRunCLI(t, bin, "", tok, append([]string{"purge", "--url", u}, e.Args()...)...)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "no API token")

	args := []string{"purge", "--url", u, "--fly-app", "another-app", "--fly-api", e.API, "--connect", e.Addr, "--scheme", "http"}
	code, _, stderr = flyRunCLI(t, bin, e.Token, tok, args...)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, `the Machines API knows no app "another-app" (404: app not found)`)

	for _, m := range e.Machines() {
		assert.Zero(t, e.Requests(m.ID), "nothing was sent")
	}
}

// A machine that dies after the API listed it: the varnishd behind it
// stops, the platform has not noticed yet, and the edge cannot connect to
// it. That machine fails with the edge's reason, the others are purged,
// and the run exits 1.
func TestFlyMachineDiesMidRun(t *testing.T) {
	bin := flyCLI(t)
	var edge atomic.Pointer[fleet.FlyEdge]
	var once sync.Once
	stopErr := make(chan error, 1)
	f, e, tok := flyFleet(t, 3, fleet.FlyOptions{AfterList: func() {
		once.Do(func() {
			e := edge.Load()
			stopErr <- e.Stop(e.Machine(1).ID)
		})
	}})
	if f.Mode == fleet.ModeExternal {
		t.Skip("instances started elsewhere cannot be stopped here")
	}
	edge.Store(e)
	u := "https://cdnpurge.example/fly/dies"
	dead := e.Machine(1)

	args := append([]string{"purge", "--url", u, "--format", "json"}, e.Args()...)
	code, stdout, stderr := flyRunCLI(t, bin, e.Token, tok, args...)
	require.NoError(t, <-stopErr)
	assert.Equal(t, 1, code, "stdout: %s\nstderr: %s", stdout, stderr)
	assert.Contains(t, stderr, "FAILED")
	r := flyParse(t, stdout)
	assert.False(t, r.OK)
	require.Len(t, r.Purge.Results, 3)
	for _, row := range r.Purge.Results {
		if row.MachineID != dead.ID {
			assert.True(t, row.OK, "%s: %s", row.Instance, row.Error)
			continue
		}
		assert.False(t, row.OK)
		assert.Equal(t, 502, row.Status)
		assert.Equal(t, purge.DefaultAttempts, row.Attempts, "a 502 is tried again")
		assert.Equal(t, `502 Bad Gateway: "could not send HTTP request to instance `+dead.ID+`: connection error: connection refused"`, row.Error)
	}
	assert.Equal(t, purge.DefaultAttempts, e.Requests(dead.ID))
}

// A machine the platform stops after listing it: the edge no longer
// routes to it, and says so.
func TestFlyMachineStoppedMidRun(t *testing.T) {
	var edge atomic.Pointer[fleet.FlyEdge]
	var once sync.Once
	f, e, tok := flyFleet(t, 2, fleet.FlyOptions{AfterList: func() {
		once.Do(func() {
			e := edge.Load()
			_ = e.SetState(e.Machine(0).ID, "stopped")
		})
	}})
	edge.Store(e)
	u := "https://cdnpurge.example/fly/stopped"
	stopped := e.Machine(0)

	j := e.Job()
	j.URLs, j.Token, j.Backoff = []string{u}, tok, time.Millisecond
	out, err := j.Run(flyCtx(t))
	require.NoError(t, err)
	require.False(t, out.OK())
	assert.Equal(t, len(f.Members)-1, out.Purge.InstancesOK())
	for k := range out.Purge.Len() {
		res := out.Purge.Result(k)
		if res.Instance.MachineID != stopped.ID {
			assert.True(t, res.OK, "%s: %v", res.Instance, res.Err)
			continue
		}
		assert.Equal(t, 503, res.Status)
		assert.ErrorContains(t, res.Err, `503 Service Unavailable: "no known healthy instances found for route: machine `+stopped.ID+` is stopped"`)
	}

	// The next run lists it as stopped: skipped, not failed.
	out, err = j.Run(flyCtx(t))
	require.NoError(t, err)
	require.True(t, out.OK(), "%v", out.Err())
	require.Len(t, out.Skipped, 1)
	assert.Equal(t, purge.Skipped{Instance: purge.Instance{Region: stopped.Region, MachineID: stopped.ID, Name: stopped.Name}, State: "stopped"}, out.Skipped[0])
}
