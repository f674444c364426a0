package fleet_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/fleet"
	"github.com/cdnpurge/cdnpurge/fleet/fleettest"
)

// capabilities reads this process's effective capabilities.
func capabilities(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^CapEff:\s*([0-9a-f]+)$`).FindSubmatch(b)
	require.NotNil(t, m, "no CapEff in /proc/self/status")
	v, err := strconv.ParseUint(string(m[1]), 16, 64)
	require.NoError(t, err)
	return v
}

const (
	capNetAdmin = 12 // linux/capability.h
	capSysAdmin = 21
)

// The probe agrees with the capabilities the kernel says this process has:
// both CAP_NET_ADMIN and CAP_SYS_ADMIN, or it says which is missing.
func TestNetnsAvailableAgreesWithCapabilities(t *testing.T) {
	if _, err := exec.LookPath("ip"); err != nil {
		if fleettest.Required() {
			t.Fatal("CDNPURGE_E2E=require: ip is not installed (apt-get install -y iproute2)")
		}
		t.Skip("ip is not installed")
	}
	caps := capabilities(t)
	err := fleet.NetnsAvailable(context.Background())
	switch {
	case caps&(1<<capNetAdmin) == 0:
		require.Error(t, err)
		assert.Contains(t, err.Error(), "CAP_NET_ADMIN")
	case caps&(1<<capSysAdmin) == 0:
		require.Error(t, err)
		assert.Contains(t, err.Error(), "CAP_SYS_ADMIN")
	default:
		assert.NoError(t, err, "this process has CAP_NET_ADMIN and CAP_SYS_ADMIN (CapEff %x)", caps)
	}
}

// As root in a container (here: capsh drops the capabilities a Dagger
// exec lacks), the probe says no and leaves nothing behind, also when it
// got half way (a bridge made, no namespace).
func TestNetnsAvailableWithoutCapabilities(t *testing.T) {
	if os.Getenv("CDNPURGE_NETNS_PROBE_CHILD") != "" {
		fmt.Printf("probe: %v\n", fleet.NetnsAvailable(context.Background()))
		return
	}
	capsh, err := exec.LookPath("capsh")
	if err != nil || os.Geteuid() != 0 {
		if fleettest.Required() && os.Geteuid() == 0 {
			t.Fatal("CDNPURGE_E2E=require: capsh is not installed (apt-get install -y libcap2-bin)")
		}
		t.Skip("needs root and capsh (libcap2-bin)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip is not installed")
	}
	cases := []struct{ drop, want string }{{"cap_net_admin,cap_sys_admin", "CAP_NET_ADMIN"}}
	if capabilities(t)&(1<<capNetAdmin) != 0 { // else the child cannot have it either
		cases = append(cases, struct{ drop, want string }{"cap_sys_admin", "CAP_SYS_ADMIN"})
	}
	for _, tc := range cases {
		cmd := exec.Command(capsh, "--drop="+tc.drop, "--", "-c", `exec "$0" -test.run='^TestNetnsAvailableWithoutCapabilities$' -test.count=1`, os.Args[0])
		cmd.Env = append(os.Environ(), "CDNPURGE_NETNS_PROBE_CHILD=1")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		line := regexp.MustCompile(`(?m)^probe: .*$`).Find(out)
		require.NotNil(t, line, "the child's answer: %s", out)
		assert.Contains(t, string(line), tc.want, "dropped %s", tc.drop)
		assert.NotContains(t, string(line), "probe: <nil>")
		// Without CAP_SYS_ADMIN only, the probe made a bridge cpb<id> and
		// then failed at the namespace named after the same id: neither may
		// remain.
		m := regexp.MustCompile(`cdnpurge-\d+-([0-9a-f]{6})-probe`).FindSubmatch(line)
		if tc.drop == "cap_sys_admin" {
			require.NotNil(t, m, "the probe names the namespace it could not make: %s", line)
		}
		if m != nil {
			links, err := exec.Command("ip", "-o", "link", "show").Output()
			require.NoError(t, err)
			assert.NotContains(t, string(links), "cpb"+string(m[1]), "the probe's bridge was left behind")
			spaces, err := exec.Command("ip", "netns", "list").Output()
			require.NoError(t, err)
			assert.NotContains(t, string(spaces), string(m[0]))
		}
	}
}
