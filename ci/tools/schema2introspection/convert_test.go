package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
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
type File { name: String! size: Int }
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
}

// TestRealSchema converts the schema of the pinned Dagger version and checks
// the aliases the SDK at that version shows.
func TestRealSchema(t *testing.T) {
	dir := func(mod string) string {
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", mod).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", mod, err)
		}
		return strings.TrimSpace(string(out))
	}
	schema, err := os.ReadFile(filepath.Join(dir("github.com/dagger/dagger"), "docs/docs-graphql/schema.graphqls"))
	if err != nil {
		t.Fatal(err)
	}
	gen, err := os.ReadFile(filepath.Join(dir("dagger.io/dagger"), "dagger.gen.go"))
	if err != nil {
		t.Fatal(err)
	}
	al, err := sdkAliases(gen)
	if err != nil {
		t.Fatal(err)
	}
	resp, warnings, err := convert(string(schema), al, "v0.20.6")
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
		{"TypeDefKind", "STRING", "STRING_KIND"},
	} {
		if got := enumValue(t, resp.Schema, tc.enum, tc.value); got != tc.want {
			t.Errorf("%s.%s: @enumValue %q, want %q", tc.enum, tc.value, got, tc.want)
		}
	}
	if n := len(resp.Schema.Types); n < 100 {
		t.Errorf("only %d types", n)
	}
	if _, err := json.Marshal(resp); err != nil {
		t.Fatal(err)
	}
}
