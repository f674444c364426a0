// Package fleettest starts local fleets for tests, as httptest starts
// servers: Start skips the test when varnishd is missing (or fails it when
// CDNPURGE_E2E=require, as CI sets), and stops the fleet when the test ends.
//
// The environment chooses the fleet:
//
//	CDNPURGE_E2E=require        fail instead of skipping when varnishd or vmod xkey is missing
//	CDNPURGE_E2E_MODE=M         auto (default), netns, loopback or external
//	CDNPURGE_E2E_INSTANCES=...  external mode: comma-separated ADDR:PORT of running instances
//	CDNPURGE_E2E_ORIGIN=H:P     external mode: their origin (for hit counts)
//	CDNPURGE_E2E_TOKEN=...      external mode: their purge token
package fleettest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cdnpurge/cdnpurge/fleet"
	"github.com/cdnpurge/cdnpurge/varnish"
)

// Required says whether missing dependencies fail tests instead of
// skipping them.
func Required() bool { return os.Getenv("CDNPURGE_E2E") == "require" }

// NeedVarnishd skips t (or fails it, when required) unless varnishd is
// installed.
func NeedVarnishd(t testing.TB) {
	t.Helper()
	if _, err := varnish.Lookup(""); err != nil {
		if Required() {
			t.Fatalf("CDNPURGE_E2E=require: %v", err)
		}
		t.Skip(err)
	}
}

// NeedXkey skips t (or fails it, when required) unless varnishd can load
// vmod xkey (Debian's varnish-modules).
func NeedXkey(t testing.TB) {
	t.Helper()
	NeedVarnishd(t)
	ok, err := varnish.HasVmod("", "xkey")
	if err == nil && ok {
		return
	}
	if Required() {
		t.Fatalf("CDNPURGE_E2E=require: vmod xkey is not available (apt-get install -y varnish-modules): %v", err)
	}
	t.Skip("vmod xkey is not available (apt-get install -y varnish-modules)")
}

// External says whether the environment names instances started
// elsewhere, and their token.
func External() (instances []string, origin, token string, ok bool) {
	ext := os.Getenv("CDNPURGE_E2E_INSTANCES")
	if ext == "" {
		return nil, "", "", false
	}
	return strings.Split(ext, ","), os.Getenv("CDNPURGE_E2E_ORIGIN"), os.Getenv("CDNPURGE_E2E_TOKEN"), true
}

// Options completes o from the environment: the mode, or the external
// instances. It skips t when varnishd is needed and missing.
func Options(t testing.TB, o fleet.Options) fleet.Options {
	t.Helper()
	// The environment chooses only what the caller left to it: a fleet with
	// its own mode or VCL is started as asked.
	if o.Mode == fleet.ModeAuto {
		if ins, origin, token, ok := External(); ok && o.Template == "" {
			o.Mode, o.External, o.OriginAddr, o.Token = fleet.ModeExternal, ins, origin, token
		} else {
			mode, err := fleet.ParseMode(os.Getenv("CDNPURGE_E2E_MODE"))
			if err != nil {
				t.Fatal(err)
			}
			o.Mode = mode
		}
	}
	if o.Mode != fleet.ModeExternal {
		NeedVarnishd(t)
	}
	return o
}

// Start starts a fleet for t (see Options) and stops it when t ends.
func Start(t testing.TB, o fleet.Options) *fleet.Fleet {
	t.Helper()
	o = Options(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f, err := fleet.Start(ctx, o)
	if err != nil {
		t.Fatalf("start fleet: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("stop fleet: %v", err)
		}
	})
	return f
}
