package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"dagger/cdnpurge/internal/dagger"

	"github.com/cdnpurge/cdnpurge/varnish"
)

// Images, pinned by tag and digest so that every run uses the same bytes.
const (
	// varnishImage is the official Varnish image at the release and digest
	// thechangelog/pipely pins (its Dagger module's Varnish container).
	varnishImage = "varnish:7.7.3@sha256:10c3bccedda53fbba1e4a640f615921e98eb0bcab444601e3ffcc8defb3bf184"
	// golangImage is the official Go image at the release and digest
	// thechangelog/pipely pins; its Go satisfies go.mod's go directive.
	golangImage = "golang:1.25.5@sha256:36b4f45d2874905b9e8573b783292629bcb346d0a70d8d7150b6df545234818f"
)

// Varnish returns a Varnish service (the official image) running cdnpurge's
// VCL in front of origin: PURGE and BAN guarded by the token when one is
// given, and an RFC 9211 Cache-Status header on every response. From the
// host: dagger call varnish --origin tcp://localhost:8080 up --ports 9000:9000
func (m *Cdnpurge) Varnish(
	ctx context.Context,
	// The origin the cache fronts; from the host: tcp://localhost:8080.
	origin *dagger.Service,
	// Purge token PURGE and BAN must carry (PURGE_TOKEN); none: open to all.
	// +optional
	token *dagger.Secret,
	// Instance name shown in Cache-Status.
	// +optional
	// +default="varnish"
	name string,
	// Port Varnish listens on.
	// +optional
	// +default=9000
	port int,
	// The origin's port; 0: the first port the origin service exposes.
	// +optional
	originPort int,
) (*dagger.Service, error) {
	if originPort == 0 {
		ports, err := origin.Ports(ctx)
		if err != nil {
			return nil, fmt.Errorf("origin ports: %w", err)
		}
		if len(ports) == 0 {
			return nil, fmt.Errorf("the origin service exposes no port: pass --origin-port")
		}
		if originPort, err = ports[0].Port(ctx); err != nil {
			return nil, fmt.Errorf("origin port: %w", err)
		}
	}
	vcl, err := varnish.Render(varnish.VCL{Name: name, Origin: "origin:" + strconv.Itoa(originPort)})
	if err != nil {
		return nil, err
	}
	ctr := dag.Container().From(varnishImage).
		WithNewFile("/etc/varnish/default.vcl", vcl).
		WithServiceBinding("origin", origin).
		WithEnvVariable("VARNISH_HTTP_PORT", strconv.Itoa(port)).
		WithExposedPort(port).
		// The entrypoint appends these to varnishd's own arguments.
		WithDefaultArgs([]string{"-p", "http_gzip_support=off", "-p", "ban_lurker_sleep=0.01"})
	if token != nil {
		ctr = ctr.WithSecretVariable("PURGE_TOKEN", token)
	}
	return ctr.AsService(dagger.ContainerAsServiceOpts{UseEntrypoint: true}), nil
}

// goContainer is the source in a Go container with module and build caches.
func goContainer(source *dagger.Directory) *dagger.Container {
	return dag.Container().From(golangImage).
		WithMountedCache("/go/pkg/mod", dag.CacheVolume("cdnpurge-go-mod")).
		WithMountedCache("/root/.cache/go-build", dag.CacheVolume("cdnpurge-go-build")).
		WithDirectory("/src", source).
		WithWorkdir("/src")
}

// E2e runs the end-to-end scenarios against N Varnish containers (this
// module's Varnish function) in front of the fleet's origin: a test
// container serves DNS over the instances' addresses and purges and
// verifies them. Every call runs the scenarios anew (the run is marked
// with the time, so no cached result is returned). Returns the test
// output; fails when a scenario fails.
//
// +cache="never"
func (m *Cdnpurge) E2e(
	ctx context.Context,
	// The project's source.
	// +defaultPath="/"
	// +ignore=[".git", "**/testdata/fuzz", "**/*.test", ".dagger/internal"]
	source *dagger.Directory,
	// How many Varnish instances.
	// +optional
	// +default=3
	instances int,
) (string, error) {
	if instances < 1 || instances > 20 {
		return "", fmt.Errorf("--instances must be 1 to 20")
	}
	const tokenValue = "e2e-s3cret-token" // the e2e suite's own token, for its throwaway fleet
	token := dag.SetSecret("cdnpurge-e2e-token", tokenValue)
	origin := goContainer(source).
		WithExposedPort(8080).
		AsService(dagger.ContainerAsServiceOpts{Args: []string{"go", "run", "./fleet/cmd/fleet-origin", "--listen", ":8080"}})
	test := goContainer(source).WithServiceBinding("origin", origin)
	var addrs []string
	for i := 1; i <= instances; i++ {
		name := fmt.Sprintf("cdn-%d", i)
		svc, err := m.Varnish(ctx, origin, token, name, 80, 8080)
		if err != nil {
			return "", err
		}
		test = test.WithServiceBinding(name, svc)
		addrs = append(addrs, name+":80")
	}
	return test.
		WithEnvVariable("CDNPURGE_E2E", "require").
		WithEnvVariable("CDNPURGE_E2E_INSTANCES", strings.Join(addrs, ",")).
		WithEnvVariable("CDNPURGE_E2E_ORIGIN", "origin:8080").
		WithSecretVariable("CDNPURGE_E2E_TOKEN", token).
		WithEnvVariable("CDNPURGE_E2E_RUN", time.Now().UTC().Format(time.RFC3339Nano)). // a new run each call
		WithExec([]string{"go", "test", "-count=1", "-v", "./e2e/"}).
		Stdout(ctx)
}

// Test runs the whole test suite (the README's test command, ci/test.sh) in a
// container with varnishd: the one command any CI needs. End-to-end tests use
// loopback addresses there (a container cannot make network namespaces).
//
// +check
func (m *Cdnpurge) Test(
	ctx context.Context,
	// The project's source.
	// +defaultPath="/"
	// +ignore=[".git", "**/testdata/fuzz", "**/*.test", ".dagger/internal"]
	source *dagger.Directory,
) (string, error) {
	return goContainer(source).
		WithExec([]string{"sh", "-c", "apt-get update -qq && apt-get install -y -qq varnish varnish-modules iproute2 wrk dnsutils curl time >/dev/null"}).
		WithEnvVariable("CDNPURGE_E2E", "require").
		WithEnvVariable("CDNPURGE_E2E_MODE", "loopback").
		WithExec([]string{"bash", "ci/test.sh"}).
		Stdout(ctx)
}
