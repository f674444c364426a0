package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dagger/dagger/cmd/codegen/introspection"
)

const sdl = `
schema { query: Query }
type Query {
  "A file."
  file(path: String!, mode: Mode = Fast): File!
  old: String @deprecated(reason: "use file")
}
type File implements Node & Syncer { id: ID! name: String! size: Int sync: ID! }
type Dir implements Node { id: ID! }
interface Node { id: ID! }
interface Syncer implements Node { id: ID! sync: ID! }
enum Mode { Fast Slow FAST SLOW_MODE }
enum Kind { STRING_KIND STRING }
`

const sdk = `package dagger
type Mode string
func (v *Mode) UnmarshalJSON(dt []byte) error {
	var s string
	switch s {
	case "Fast":
		*v = ModeFast
	case "Slow":
		*v = ModeSlow
	case "SLOW_MODE":
		*v = ModeSlowMode
	}
	return nil
}
const (
	ModeFast Mode = "Fast"
	ModeSlow Mode = "Slow"
	ModeSlowMode Mode = ModeSlow
)
type Kind string
func (v *Kind) UnmarshalJSON(dt []byte) error {
	var s string
	switch s {
	case "STRING_KIND":
		*v = KindStringKind
	case "STRING":
		*v = KindString
	}
	return nil
}
const (
	KindStringKind Kind = "STRING_KIND"
	KindString Kind = KindStringKind
)
`

func enumValue(t *testing.T, s *introspection.Schema, enum, value string) string {
	t.Helper()
	typ := s.Types.Get(enum)
	if typ == nil {
		t.Fatalf("no enum %s", enum)
	}
	for _, v := range typ.EnumValues {
		if v.Name == value {
			return v.Directives.EnumValue()
		}
	}
	t.Fatalf("enum %s has no value %s", enum, value)
	return ""
}

func TestConvertRestoresAliases(t *testing.T) {
	al, err := sdkAliases([]byte(sdk))
	if err != nil {
		t.Fatal(err)
	}
	resp, warnings, err := convert(sdl, al, "v0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %v", warnings)
	}
	s := resp.Schema
	for _, tc := range []struct{ enum, value, want string }{
		{"Mode", "Fast", ""},
		{"Mode", "Slow", ""},
		{"Mode", "FAST", "Fast"},      // not in the SDK: same name but for case
		{"Mode", "SLOW_MODE", "Slow"}, // an SDK alias (X T = Y)
		{"Kind", "STRING", "STRING_KIND"},
		{"Kind", "STRING_KIND", ""},
	} {
		if got := enumValue(t, s, tc.enum, tc.value); got != tc.want {
			t.Errorf("%s.%s: @enumValue %q, want %q", tc.enum, tc.value, got, tc.want)
		}
	}
	if resp.SchemaVersion != "v0.0.1" || s.QueryType.Name != "Query" {
		t.Errorf("version %q, query %q", resp.SchemaVersion, s.QueryType.Name)
	}
	q := s.Types.Get("Query")
	var file, old *introspection.Field
	for _, f := range q.Fields {
		switch f.Name {
		case "file":
			file = f
		case "old":
			old = f
		}
	}
	if file == nil || old == nil {
		t.Fatal("fields missing")
	}
	if file.TypeRef.Kind != introspection.TypeKindNonNull || file.TypeRef.OfType.Kind != introspection.TypeKindObject || file.TypeRef.OfType.Name != "File" {
		t.Errorf("file type: %+v", file.TypeRef)
	}
	if len(file.Args) != 2 || file.Args[1].DefaultValue == nil || *file.Args[1].DefaultValue != "Fast" || file.Args[1].TypeRef.Kind != introspection.TypeKindEnum {
		t.Errorf("file args: %+v", file.Args)
	}
	if !old.IsDeprecated || old.DeprecationReason == nil || *old.DeprecationReason != "use file" {
		t.Errorf("old: deprecated %v %v", old.IsDeprecated, old.DeprecationReason)
	}
	for _, tc := range []struct {
		typ  string
		want string
	}{
		// possibleTypes: by name; an interface that extends another is listed
		// (the engine does too); objects have none.
		{"Node", "OBJECT Dir, OBJECT File, INTERFACE Syncer"},
		{"Syncer", "OBJECT File"},
		{"File", ""},
	} {
		var got []string
		for _, p := range s.Types.Get(tc.typ).PossibleTypes {
			got = append(got, string(p.Kind)+" "+p.Name)
		}
		if strings.Join(got, ", ") != tc.want {
			t.Errorf("%s: possibleTypes %q, want %q", tc.typ, got, tc.want)
		}
	}
	if got := s.Types.Get("File").Interfaces; len(got) != 2 || got[0].Name != "Node" || got[1].Name != "Syncer" {
		t.Errorf("File: interfaces %+v", got)
	}
}

// module returns the directory and version of a module the tools module
// pins, downloading it if needed (go list -m alone gives no directory then).
func module(t *testing.T, path string) (dir, version string) {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", path).Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v", path, err)
	}
	var m struct{ Dir, Version string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		t.Fatalf("go mod download %s: %s (%v)", path, out, err)
	}
	return m.Dir, m.Version
}

// TestRealSchema converts the schema of the pinned Dagger version and checks
// the aliases the SDK at that version shows.
func TestRealSchema(t *testing.T) {
	daggerDir, version := module(t, "github.com/dagger/dagger")
	sdkDir, _ := module(t, "dagger.io/dagger")
	schema, err := os.ReadFile(filepath.Join(daggerDir, "docs/docs-graphql/schema.graphqls"))
	if err != nil {
		t.Fatal(err)
	}
	gen, err := os.ReadFile(filepath.Join(sdkDir, "dagger.gen.go"))
	if err != nil {
		t.Fatal(err)
	}
	al, err := sdkAliases(gen)
	if err != nil {
		t.Fatal(err)
	}
	resp, warnings, err := convert(string(schema), al, version)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %v", warnings)
	}
	for _, tc := range []struct{ enum, value, want string }{
		{"ImageLayerCompression", "GZIP", "Gzip"},
		{"ImageLayerCompression", "ESTARGZ", "EStarGZ"},
		{"ImageMediaTypes", "OCI", "OCIMediaTypes"},
		{"ImageMediaTypes", "OCIMediaTypes", ""},
		{"ModuleSourceKind", "LOCAL", "LOCAL_SOURCE"},
		{"TypeDefKind", "STRING", "STRING_KIND"},
	} {
		if got := enumValue(t, resp.Schema, tc.enum, tc.value); got != tc.want {
			t.Errorf("%s.%s: @enumValue %q, want %q", tc.enum, tc.value, got, tc.want)
		}
	}
	// Since v0.21 the schema has interfaces; codegen writes each one's
	// Concrete() from its possible types.
	var exportable []string
	for _, p := range resp.Schema.Types.Get("Exportable").PossibleTypes {
		exportable = append(exportable, p.Name)
	}
	if got, want := strings.Join(exportable, " "), "Changeset Container Directory File"; got != want {
		t.Errorf("Exportable: possibleTypes %q, want %q", got, want)
	}
	if n := len(resp.Schema.Types); n < 100 {
		t.Errorf("only %d types", n)
	}
	if _, err := json.Marshal(resp); err != nil {
		t.Fatal(err)
	}

	// Some releases' SDL keeps the @enumValue directives (v0.21.8 does, for 23
	// values), others drop them all (v0.20.6). Where they are kept, the
	// aliases restored from the SDK with the directives removed must be
	// exactly the SDL's own.
	applied := regexp.MustCompile(`(?m)^(\s+\w+)\s*@enumValue\([^)]*\)`) // "  GZIP @enumValue(...)", not the definition
	stripped := applied.ReplaceAllString(string(schema), "$1")
	if stripped == string(schema) {
		t.Logf("the %s SDL has no @enumValue: the SDK is the only source of aliases", version)
		return
	}
	restored, _, err := convert(stripped, al, version)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, typ := range resp.Schema.Types {
		if typ.Kind != introspection.TypeKindEnum {
			continue
		}
		for _, v := range typ.EnumValues {
			if v.Directives.EnumValue() != "" {
				n++
			}
			if got, want := enumValue(t, restored.Schema, typ.Name, v.Name), v.Directives.EnumValue(); got != want {
				t.Errorf("%s.%s: restored from the SDK %q, the SDL says %q", typ.Name, v.Name, got, want)
			}
		}
	}
	if n == 0 {
		t.Error("the SDL has @enumValue applications but none reached the introspection")
	}
}
