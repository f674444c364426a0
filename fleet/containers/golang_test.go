package containers

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The Go containers must build this module: either the image's own Go
// satisfies go.mod's go line, or GOTOOLCHAIN lets it fetch the release
// go.mod asks for (the official images set GOTOOLCHAIN=local, which
// refuses).
func TestGolangImageBuildsGoMod(t *testing.T) {
	b, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	g := regexp.MustCompile(`(?m)^go (\d+\.\d+(?:\.\d+)?)\s*$`).FindSubmatch(b)
	if g == nil {
		t.Fatal("go.mod: no go line")
	}
	want := string(g[1])
	m := regexp.MustCompile(`^golang:(\d+\.\d+(?:\.\d+)?)[-@]`).FindStringSubmatch(GolangImage)
	if m == nil {
		t.Fatalf("GolangImage %q: no Go release in its tag", GolangImage)
	}
	if !older(m[1], want) {
		return
	}
	if !slices.Contains(GoEnv(), Var{"GOTOOLCHAIN", "auto"}) {
		t.Fatalf("go.mod asks for go %s, the image %s has go %s and sets GOTOOLCHAIN=local: "+
			"GoEnv must set GOTOOLCHAIN=auto, or GolangImage must move to a Go release of at least %s",
			want, GolangImage, m[1], want)
	}
}

// older says whether Go release a (1.25.5) is older than b (1.26.0).
func older(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range 3 {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

func TestOlder(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{{"1.25.5", "1.26.0", true}, {"1.26", "1.26.0", false}, {"1.26.1", "1.26.0", false}, {"1.9", "1.26", true}} {
		if got := older(c.a, c.b); got != c.want {
			t.Errorf("older(%s, %s) = %v", c.a, c.b, got)
		}
	}
}
