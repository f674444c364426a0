package containers

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every scenario the e2e function runs is a test of package e2e: a renamed
// one would otherwise match nothing in -run, and prove nothing.
func TestE2EScenariosAreTests(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "e2e", "*_test.go"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	tests := map[string]bool{}
	for _, f := range files {
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, 0)
		require.NoError(t, err)
		for _, d := range af.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && strings.HasPrefix(fd.Name.Name, "Test") {
				tests[fd.Name.Name] = true
			}
		}
	}
	for _, s := range e2eScenarios {
		assert.True(t, tests[s.name], "%s is not a test of package e2e", s.name)
	}
	assert.NotContains(t, E2EScenarios(MaxInstances), "TestStyles", "each style needs its own VCL: not against the e2e function's services")
}

func TestE2E(t *testing.T) {
	e, err := E2E(2, "now")
	require.NoError(t, err)
	assert.Equal(t, []string{"go", "test", "-count=1", "-v", "-run"}, e.Args[:5])
	assert.Equal(t, "./e2e/", e.Args[len(e.Args)-1])
	assert.NotContains(t, e.Args[5], "TestFlyRegionFilter", "needs 3 instances")
	assert.Contains(t, e.Environ("tok"), "CDNPURGE_E2E_INSTANCES=cdn-1:9000,cdn-2:9000")
	assert.Contains(t, e.Environ("tok"), "CDNPURGE_E2E_TOKEN=tok")
	assert.Contains(t, e.Environ("tok"), "CDNPURGE_E2E=require")
	for _, n := range []int{0, MaxInstances + 1} {
		_, err := E2E(n, "now")
		assert.ErrorContains(t, err, "give 1 to 20")
	}
}

func TestCheckE2E(t *testing.T) {
	var ok strings.Builder
	for _, s := range E2EScenarios(3) {
		ok.WriteString("=== RUN   " + s + "\n--- PASS: " + s + " (0.01s)\n")
	}
	require.NoError(t, CheckE2E(3, ok.String()))

	skipped := strings.Replace(ok.String(), "--- PASS: TestSoftPurge (", "--- SKIP: TestSoftPurge (", 1)
	assert.ErrorContains(t, CheckE2E(3, skipped), "TestSoftPurge was skipped")
	sub := ok.String() + "    --- SKIP: TestJSONShapes/verify (0.00s)\n"
	assert.ErrorContains(t, CheckE2E(3, sub), "TestJSONShapes/verify was skipped")
	missing := strings.Replace(ok.String(), "--- PASS: TestFlyRegionFilter (", "", 1)
	assert.ErrorContains(t, CheckE2E(3, missing), "TestFlyRegionFilter did not pass")
	assert.NoError(t, CheckE2E(2, missing), "with 2 instances it is not run")
}

func TestVarnishIsVarnishdItself(t *testing.T) {
	v := E2EVarnish(2)
	e := v.Exec()
	assert.Equal(t, "varnishd", e.Args[0], "not the image's entrypoint")
	assert.Equal(t, TokenEnv, e.Token)
	assert.Contains(t, strings.Join(e.Args, " "), "-a :9000 -f /etc/varnish/default.vcl")
	vcl, err := v.VCL()
	require.NoError(t, err)
	assert.Contains(t, vcl, "instance cdn-2, origin origin:8080")
}
