// Package containers says how the Dagger module runs cdnpurge's fleet in
// containers: each Varnish service's VCL, command line and environment, the
// fleet origin's command, and the commands and environments of the module's
// e2e and test functions. The module (.dagger) builds its containers from
// these values, and .ci/run imitates those containers on a machine without
// an engine with the same values (through fleet/cmd/fleet-containers), so
// the two cannot drift apart.
package containers

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/cdnpurge/cdnpurge/varnish"
)

const (
	// OriginHost is the fleet origin's service binding (its host name in the
	// containers that use it); OriginPort is its port.
	OriginHost = "origin"
	OriginPort = 8080
	// VarnishPort is the port of each Varnish service of the e2e function.
	VarnishPort = 9000
	// VCLFile is where a Varnish service's VCL is.
	VCLFile = "/etc/varnish/default.vcl"
	// TokenEnv carries the purge token to varnishd: the shipped VCL reads it.
	TokenEnv = "PURGE_TOKEN"
	// E2EToken is the e2e function's purge token, for its throwaway fleet.
	E2EToken = "e2e-s3cret-token"
	// MaxInstances bounds the e2e function's Varnish services.
	MaxInstances = 20
)

// GolangImage is the Go image the module's Go containers (the origin, the
// e2e and test functions) start from: the official image at the release and
// digest thechangelog/pipely pins.
const GolangImage = "golang:1.25.5@sha256:36b4f45d2874905b9e8573b783292629bcb346d0a70d8d7150b6df545234818f"

// GoEnv is the environment of every Go container. The official Go images
// set GOTOOLCHAIN=local, which makes a Go older than go.mod's go line refuse
// to build ("go.mod requires go >= ..."); with auto, the image's Go fetches
// the release go.mod asks for from the module proxy (kept in the module
// cache volume), as Dagger's own Go SDK image does. TestGolangImageBuildsGoMod
// holds GolangImage, GoEnv and go.mod to each other.
func GoEnv() []Var { return []Var{{"GOTOOLCHAIN", "auto"}} }

// Exec is a command a container runs, and its environment.
type Exec struct {
	Args []string
	// Env is the command's environment, in order, but for the token.
	Env []Var
	// Token names the variable that carries the purge token, if any: the
	// module sets it as a secret (E2EToken in the e2e function's
	// containers).
	Token string
}

// Var is an environment variable.
type Var struct{ Name, Value string }

// Environ is the environment as NAME=VALUE strings, with token as the
// token's value.
func (e Exec) Environ(token string) []string {
	out := make([]string, 0, len(e.Env)+1)
	for _, v := range e.Env {
		out = append(out, v.Name+"="+v.Value)
	}
	if e.Token != "" {
		out = append(out, e.Token+"="+token)
	}
	return out
}

// Origin is the fleet origin's command, run in the project's source with
// Go: deterministic cacheable content, and hit counts (see
// fleet.NewOriginHandler).
func Origin() Exec {
	return Exec{Args: []string{"go", "run", "./fleet/cmd/fleet-origin", "--listen", ":" + strconv.Itoa(OriginPort)}}
}

// Varnish describes one Varnish service.
type Varnish struct {
	// Name is the instance's name in Cache-Status.
	Name string
	// Port is the port varnishd serves HTTP on, on every address.
	Port int
	// Origin is the backend, HOST:PORT.
	Origin string
	// Token says whether PURGE and BAN need a token (then in TokenEnv).
	Token bool
}

// VCL renders the shipped VCL for the service.
func (v Varnish) VCL() (string, error) {
	return varnish.Render(varnish.VCL{Name: v.Name, Origin: v.Origin})
}

// Exec is the service's command, varnishd's own (not the image's
// entrypoint): in the foreground on every address, with the VCL at VCLFile
// and varnishd's default working directory (the container has its own).
func (v Varnish) Exec() Exec {
	e := Exec{Args: append([]string{"varnishd"}, varnish.Args(varnish.Argv{Listen: ":" + strconv.Itoa(v.Port), VCLFile: VCLFile})...)}
	if v.Token {
		e.Token = TokenEnv
	}
	return e
}

// InstanceName is the service binding of the e2e function's i-th Varnish
// service, from 1.
func InstanceName(i int) string { return fmt.Sprintf("cdn-%d", i) }

// E2EVarnish is the e2e function's i-th Varnish service, from 1.
func E2EVarnish(i int) Varnish {
	return Varnish{Name: InstanceName(i), Port: VarnishPort, Origin: OriginHost + ":" + strconv.Itoa(OriginPort), Token: true}
}

// scenario is an end-to-end test of package e2e that runs against instances
// started elsewhere (the fleet's external mode) without skipping.
type scenario struct {
	name string
	min  int // the fewest instances it runs with
}

// e2eScenarios are the tests the e2e function runs: those that only purge
// and verify a running fleet, directly or through the Fly.io stand-in.
// Not here: TestStyles (each style needs its own VCL: the test function
// runs it), and the tests that start, stop or break varnishd of their own
// (TestOneInstanceStopped, TestExternalFleet*, TestStartFailure*,
// TestFlyMachineDiesMidRun).
var e2eScenarios = []scenario{
	{"TestWarmThenHitEverywhere", 1},
	{"TestPurgeThroughLibrary", 1},
	{"TestPurgeThroughCLIBinary", 1},
	{"TestJSONShapes", 1},
	{"TestWrongOrMissingTokenIsRejectedEverywhere", 1},
	{"TestManyURLsAllPurged", 1},
	{"TestPercentEncodedPathAndQueryPurgedExactly", 1},
	{"TestEveryAcceptEncodingVariantPurged", 1},
	{"TestUncacheableIsBypass", 1},
	{"TestSoftPurge", 1},
	{"TestFlyPurgeAndVerifyThroughTheEdge", 1},
	{"TestFlyCLIStartedAndStoppedMachines", 1},
	{"TestFlyRegionFilter", 3},
	{"TestFlyBadTokenOrApp", 1},
	{"TestFlyMachineStoppedMidRun", 1},
}

// E2EScenarios lists the tests the e2e function runs with n instances.
func E2EScenarios(n int) []string {
	var out []string
	for _, s := range e2eScenarios {
		if n >= s.min {
			out = append(out, s.name)
		}
	}
	return out
}

// E2E is the e2e function's test command with n Varnish services: the
// scenarios of E2EScenarios(n), against the services, in a container
// without varnishd. run marks the run (the module passes the time, so that
// no cached result is returned).
func E2E(n int, run string) (Exec, error) {
	if n < 1 || n > MaxInstances {
		return Exec{}, fmt.Errorf("%d instances: give 1 to %d", n, MaxInstances)
	}
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = InstanceName(i+1) + ":" + strconv.Itoa(VarnishPort)
	}
	return Exec{
		Args: []string{"go", "test", "-count=1", "-v", "-run", "^(" + strings.Join(E2EScenarios(n), "|") + ")$", "./e2e/"},
		Env: []Var{
			{"CDNPURGE_E2E", "require"},
			{"CDNPURGE_E2E_INSTANCES", strings.Join(addrs, ",")},
			{"CDNPURGE_E2E_ORIGIN", OriginHost + ":" + strconv.Itoa(OriginPort)},
			{"CDNPURGE_E2E_RUN", run},
		},
		Token: "CDNPURGE_E2E_TOKEN",
	}, nil
}

var (
	skipRE = regexp.MustCompile(`(?m)^\s*--- SKIP: (\S+)`)
	passRE = regexp.MustCompile(`(?m)^--- PASS: (\S+) \(`)
)

// CheckE2E reads the output of E2E(n, ...)'s command (go test -v) and fails
// unless every scenario passed and nothing was skipped: a scenario that
// skipped against the services, or one missing (renamed, say), proves
// nothing.
func CheckE2E(n int, output string) error {
	var errs []error
	for _, m := range skipRE.FindAllStringSubmatch(output, -1) {
		errs = append(errs, fmt.Errorf("%s was skipped", m[1]))
	}
	passed := map[string]bool{}
	for _, m := range passRE.FindAllStringSubmatch(output, -1) {
		passed[m[1]] = true
	}
	for _, s := range E2EScenarios(n) {
		if !passed[s] {
			errs = append(errs, fmt.Errorf("%s did not pass (not run: renamed or removed?)", s))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("e2e: %w", errors.Join(errs...))
	}
	return nil
}

// TestSetup and Test are the test function's commands: the Debian packages
// the tests need, then the whole suite (the README's test command), in a
// container whose root cannot create network namespaces, so every fleet
// runs on loopback addresses.
func TestSetup() Exec { return Exec{Args: []string{"bash", "ci/deps.sh"}} }

// Test is the test function's test command; see TestSetup.
func Test() Exec {
	return Exec{Args: []string{"bash", "ci/test.sh"}, Env: []Var{{"CDNPURGE_E2E", "require"}}}
}
