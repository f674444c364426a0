package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"dagger/cdnpurge/internal/dagger"

	"github.com/cdnpurge/cdnpurge/fleet/containers"
)

// Images, pinned by tag and digest so that every run uses the same bytes.
const (
	// varnishImage is the official Varnish image at the release and digest
	// thechangelog/pipely pins (its Dagger module's Varnish container).
	varnishImage = "varnish:7.7.3@sha256:10c3bccedda53fbba1e4a640f615921e98eb0bcab444601e3ffcc8defb3bf184"
)

// Varnish returns a Varnish service (the official image) running cdnpurge's
// VCL in front of origin: PURGE and BAN guarded by the token when one is
// given, and an RFC 9211 Cache-Status header on every response. varnishd is
// started with the command line the varnish package builds (the one its
// native runner uses), not through the image's entrypoint. From the host:
// dagger call varnish --origin tcp://localhost:8080 up --ports 9000:9000
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
	return varnishService(containers.Varnish{Name: name, Port: port, Origin: containers.OriginHost + ":" + strconv.Itoa(originPort), Token: token != nil}, origin, token)
}

// varnishService is the Varnish service v describes, with origin bound as
// containers.OriginHost.
func varnishService(v containers.Varnish, origin *dagger.Service, token *dagger.Secret) (*dagger.Service, error) {
	vcl, err := v.VCL()
	if err != nil {
		return nil, err
	}
	run := v.Exec()
	ctr := dag.Container().From(varnishImage).
		WithNewFile(containers.VCLFile, vcl).
		WithServiceBinding(containers.OriginHost, origin).
		WithExposedPort(v.Port)
	for _, e := range run.Env {
		ctr = ctr.WithEnvVariable(e.Name, e.Value)
	}
	if run.Token != "" {
		ctr = ctr.WithSecretVariable(run.Token, token)
	}
	return ctr.AsService(dagger.ContainerAsServiceOpts{Args: run.Args}), nil
}

// goContainer is the source in a Go container with module and build caches.
func goContainer(source *dagger.Directory) *dagger.Container {
	ctr := dag.Container().From(containers.GolangImage)
	for _, v := range containers.GoEnv() {
		ctr = ctr.WithEnvVariable(v.Name, v.Value)
	}
	return ctr.
		WithMountedCache("/go/pkg/mod", dag.CacheVolume("cdnpurge-go-mod")).
		WithMountedCache("/root/.cache/go-build", dag.CacheVolume("cdnpurge-go-build")).
		WithDirectory("/src", source).
		WithWorkdir("/src")
}

// withExec runs e in ctr, with its environment, the token as a secret.
func withExec(ctr *dagger.Container, e containers.Exec, token *dagger.Secret) *dagger.Container {
	for _, v := range e.Env {
		ctr = ctr.WithEnvVariable(v.Name, v.Value)
	}
	if e.Token != "" {
		ctr = ctr.WithSecretVariable(e.Token, token)
	}
	return ctr.WithExec(e.Args)
}

// E2e runs the end-to-end scenarios against N Varnish containers (this
// module's Varnish service, the shipped VCL) in front of the fleet's origin,
// from a test container without varnishd: it serves DNS over the
// services' addresses, and purges and verifies them through the library,
// the CLI binary and a local stand-in for Fly.io's edge. Every scenario it
// runs must pass, none may skip (fleet/containers.E2EScenarios lists them).
// Not part of it, for they need varnishd of their own: the VCL styles
// (TestStyles) and the scenarios that start, stop or break instances; the
// test function runs those. Every call runs anew. Returns the test output.
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
	run, err := containers.E2E(instances, time.Now().UTC().Format(time.RFC3339Nano)) // a new run each call
	if err != nil {
		return "", fmt.Errorf("--instances: %w", err)
	}
	token := dag.SetSecret("cdnpurge-e2e-token", containers.E2EToken)
	originRun := containers.Origin()
	origin := goContainer(source).
		WithExposedPort(containers.OriginPort).
		AsService(dagger.ContainerAsServiceOpts{Args: originRun.Args})
	test := goContainer(source).WithServiceBinding(containers.OriginHost, origin)
	for i := 1; i <= instances; i++ {
		svc, err := varnishService(containers.E2EVarnish(i), origin, token)
		if err != nil {
			return "", err
		}
		test = test.WithServiceBinding(containers.InstanceName(i), svc)
	}
	out, err := withExec(test, run, token).Stdout(ctx)
	if err != nil {
		return "", err
	}
	if err := containers.CheckE2E(instances, out); err != nil {
		return "", fmt.Errorf("%w\n\n%s", err, out)
	}
	return out, nil
}

// Test runs the whole test suite (the README's test command, ci/test.sh) in a
// container with varnishd: the one command any CI needs. A container's root
// cannot create network namespaces, so every fleet runs on loopback
// addresses there.
//
// +check
func (m *Cdnpurge) Test(
	ctx context.Context,
	// The project's source.
	// +defaultPath="/"
	// +ignore=[".git", "**/testdata/fuzz", "**/*.test", ".dagger/internal"]
	source *dagger.Directory,
) (string, error) {
	return withExec(withExec(goContainer(source), containers.TestSetup(), nil), containers.Test(), nil).Stdout(ctx)
}
