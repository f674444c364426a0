package purge

import (
	"runtime/debug"
	"strings"
)

// modulePath is this module's path, as build information names it.
const modulePath = "github.com/cdnpurge/cdnpurge"

// Version is the version of this module that the running program was built
// with ("1.2.3"), as Go's build information records it; "dev" for a build
// from a working tree. The default User-Agent carries it.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	v := ""
	if bi.Main.Path == modulePath {
		v = bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == modulePath {
			v = d.Version
			if d.Replace != nil {
				v = d.Replace.Version
			}
		}
	}
	if v == "" || v == "(devel)" {
		return "dev"
	}
	return strings.TrimPrefix(v, "v")
}
