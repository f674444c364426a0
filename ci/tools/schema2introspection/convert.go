package main

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"sort"
	"strconv"
	"strings"

	"github.com/dagger/dagger/cmd/codegen/introspection"
	"github.com/vektah/gqlparser/v2"
	gql "github.com/vektah/gqlparser/v2/ast"
)

// enumAliases maps enum type -> GraphQL value name -> the canonical value
// (the underlying value the alias stands for), for every value the SDK names.
type enumAliases map[string]map[string]string

// sdkAliases reads dagger.io/dagger's generated code: each enum's
// UnmarshalJSON maps GraphQL names to Go constants, and the constant
// declarations give each constant's value or the constant it aliases.
func sdkAliases(src []byte) (enumAliases, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "dagger.gen.go", src, 0)
	if err != nil {
		return nil, err
	}
	values := map[string]string{}  // const -> string value
	aliasOf := map[string]string{} // const -> const
	typeOf := map[string]string{}  // const -> enum type
	nameToConst := map[string]map[string]string{}
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.GenDecl:
			if d.Tok != token.CONST {
				continue
			}
			for _, spec := range d.Specs {
				vs := spec.(*ast.ValueSpec)
				if len(vs.Names) != 1 || len(vs.Values) != 1 {
					continue
				}
				name := vs.Names[0].Name
				if id, ok := vs.Type.(*ast.Ident); ok {
					typeOf[name] = id.Name
				}
				switch v := vs.Values[0].(type) {
				case *ast.BasicLit:
					if s, err := strconv.Unquote(v.Value); err == nil {
						values[name] = s
					}
				case *ast.Ident:
					aliasOf[name] = v.Name
				}
			}
		case *ast.FuncDecl:
			// func (v *T) UnmarshalJSON(dt []byte) error { ... switch s { case "X": *v = C } }
			if d.Name.Name != "UnmarshalJSON" || d.Recv == nil || len(d.Recv.List) != 1 {
				continue
			}
			star, ok := d.Recv.List[0].Type.(*ast.StarExpr)
			if !ok {
				continue
			}
			recv, ok := star.X.(*ast.Ident)
			if !ok {
				continue
			}
			ast.Inspect(d.Body, func(n ast.Node) bool {
				cc, ok := n.(*ast.CaseClause)
				if !ok || len(cc.List) != 1 || len(cc.Body) != 1 {
					return true
				}
				lit, ok := cc.List[0].(*ast.BasicLit)
				if !ok {
					return true
				}
				as, ok := cc.Body[0].(*ast.AssignStmt)
				if !ok || len(as.Rhs) != 1 {
					return true
				}
				c, ok := as.Rhs[0].(*ast.Ident)
				if !ok {
					return true
				}
				gqlName, err := strconv.Unquote(lit.Value)
				if err != nil || gqlName == "" {
					return true
				}
				if nameToConst[recv.Name] == nil {
					nameToConst[recv.Name] = map[string]string{}
				}
				nameToConst[recv.Name][gqlName] = c.Name
				return true
			})
		}
	}
	out := enumAliases{}
	for enum, names := range nameToConst {
		out[enum] = map[string]string{}
		for gqlName, c := range names {
			seen := map[string]bool{}
			for aliasOf[c] != "" && !seen[c] {
				seen[c] = true
				c = aliasOf[c]
			}
			v, ok := values[c]
			if !ok || typeOf[c] != enum {
				return nil, fmt.Errorf("enum %s: value %s: constant %s has no string value", enum, gqlName, c)
			}
			out[enum][gqlName] = v
		}
	}
	return out, nil
}

func normalize(s string) string {
	return strings.ToLower(strings.ReplaceAll(s, "_", ""))
}

func jsonString(v any) *string {
	b, _ := json.Marshal(v)
	s := string(b)
	return &s
}

// convert builds the introspection response for the SDL.
func convert(sdl string, aliases enumAliases, version string) (*introspection.Response, []string, error) {
	schema, err := gqlparser.LoadSchema(&gql.Source{Name: "schema.graphqls", Input: sdl})
	if err != nil {
		return nil, nil, fmt.Errorf("parse schema: %w", err)
	}
	var warnings []string
	c := conv{schema}
	s := &introspection.Schema{}
	if schema.Query == nil {
		return nil, nil, fmt.Errorf("schema has no query type")
	}
	s.QueryType.Name = schema.Query.Name
	if schema.Mutation != nil {
		s.MutationType = &struct {
			Name string `json:"name,omitempty"`
		}{schema.Mutation.Name}
	}
	if schema.Subscription != nil {
		s.SubscriptionType = &struct {
			Name string `json:"name,omitempty"`
		}{schema.Subscription.Name}
	}
	names := make([]string, 0, len(schema.Types))
	for n := range schema.Types {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		def := schema.Types[n]
		t := &introspection.Type{
			Kind:        introspection.TypeKind(def.Kind),
			Name:        def.Name,
			Description: def.Description,
			Directives:  directives(def.Directives),
			Interfaces:  []*introspection.Type{},
		}
		switch def.Kind {
		case gql.Object, gql.Interface:
			for _, f := range def.Fields {
				if strings.HasPrefix(f.Name, "__") {
					continue
				}
				dep, reason := deprecation(f.Directives)
				field := &introspection.Field{
					Name:              f.Name,
					Description:       f.Description,
					TypeRef:           c.typeRef(f.Type),
					Args:              c.inputValues(f.Arguments),
					IsDeprecated:      dep,
					DeprecationReason: reason,
					Directives:        directives(f.Directives),
				}
				t.Fields = append(t.Fields, field)
			}
			for _, i := range def.Interfaces {
				t.Interfaces = append(t.Interfaces, &introspection.Type{Kind: introspection.TypeKindInterface, Name: i})
			}
			if def.Kind == gql.Interface {
				t.PossibleTypes = c.possibleTypes(def)
			}
		case gql.InputObject:
			for _, f := range def.Fields {
				t.InputFields = append(t.InputFields, c.inputValue(f.Name, f.Description, f.Type, f.DefaultValue, f.Directives))
			}
		case gql.Enum:
			known := aliases[def.Name]
			var declared []string
			for _, ev := range def.EnumValues {
				dep, reason := deprecation(ev.Directives)
				v := introspection.EnumValue{
					Name: ev.Name, Description: ev.Description, IsDeprecated: dep, DeprecationReason: reason,
					Directives: directives(ev.Directives),
				}
				canonical, ok := known[ev.Name]
				if !ok {
					// Not named by the SDK: its Go name collides with a value
					// declared before it, whose alias it is.
					for _, d := range declared {
						if normalize(d) == normalize(ev.Name) {
							canonical, ok = cmpOr(known[d], d), true
							break
						}
					}
					if !ok && known != nil {
						warnings = append(warnings, fmt.Sprintf("enum %s: value %s: not in the SDK and no alias found", def.Name, ev.Name))
					}
				}
				if ok && canonical != ev.Name && v.Directives.Directive("enumValue") == nil {
					v.Directives = append(v.Directives, &introspection.Directive{
						Name: "enumValue",
						Args: []*introspection.DirectiveArg{{Name: "value", Value: jsonString(canonical)}},
					})
				}
				declared = append(declared, ev.Name)
				t.EnumValues = append(t.EnumValues, v)
			}
		case gql.Union:
			// Dagger's API has no unions today; if one appears, its members
			// are its possible types, as introspection reports them.
			t.PossibleTypes = c.possibleTypes(def)
		}
		s.Types = append(s.Types, t)
	}
	dirNames := make([]string, 0, len(schema.Directives))
	for n := range schema.Directives {
		dirNames = append(dirNames, n)
	}
	sort.Strings(dirNames)
	for _, n := range dirNames {
		d := schema.Directives[n]
		dd := &introspection.DirectiveDef{Name: d.Name, Description: d.Description, Args: c.inputValues(d.Arguments)}
		for _, l := range d.Locations {
			dd.Locations = append(dd.Locations, string(l))
		}
		s.Directives = append(s.Directives, dd)
	}
	return &introspection.Response{Schema: s, SchemaVersion: version}, warnings, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// conv holds the parsed schema while types are converted.
type conv struct{ schema *gql.Schema }

func (c conv) typeRef(t *gql.Type) *introspection.TypeRef {
	if t == nil {
		return nil
	}
	if t.NonNull {
		inner := *t
		inner.NonNull = false
		return &introspection.TypeRef{Kind: introspection.TypeKindNonNull, OfType: c.typeRef(&inner)}
	}
	if t.Elem != nil {
		return &introspection.TypeRef{Kind: introspection.TypeKindList, OfType: c.typeRef(t.Elem)}
	}
	var kind introspection.TypeKind
	if def := c.schema.Types[t.NamedType]; def != nil {
		kind = introspection.TypeKind(def.Kind)
	}
	return &introspection.TypeRef{Kind: kind, Name: t.NamedType}
}

// possibleTypes lists what implements an interface (or belongs to a union),
// by name, as introspection's possibleTypes does. Codegen (v0.21+) builds each
// interface's Concrete() switch from it; without it the switch is silently
// left out. gqlparser also lists interfaces that extend the interface, as the
// engine does; codegen keeps only the objects.
func (c conv) possibleTypes(def *gql.Definition) []*introspection.Type {
	defs := c.schema.GetPossibleTypes(def)
	out := make([]*introspection.Type, 0, len(defs))
	for _, d := range defs {
		out = append(out, &introspection.Type{Kind: introspection.TypeKind(d.Kind), Name: d.Name})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (c conv) inputValues(args gql.ArgumentDefinitionList) introspection.InputValues {
	out := introspection.InputValues{}
	for _, a := range args {
		out = append(out, c.inputValue(a.Name, a.Description, a.Type, a.DefaultValue, a.Directives))
	}
	return out
}

func (c conv) inputValue(name, desc string, t *gql.Type, def *gql.Value, dirs gql.DirectiveList) introspection.InputValue {
	dep, reason := deprecation(dirs)
	v := introspection.InputValue{Name: name, Description: desc, TypeRef: c.typeRef(t), Directives: directives(dirs),
		IsDeprecated: dep, DeprecationReason: reason}
	if def != nil {
		s := def.String()
		v.DefaultValue = &s
	}
	return v
}

func deprecation(dirs gql.DirectiveList) (bool, *string) {
	d := dirs.ForName("deprecated")
	if d == nil {
		return false, nil
	}
	reason := "No longer supported"
	if a := d.Arguments.ForName("reason"); a != nil && a.Value != nil {
		reason = a.Value.Raw
	}
	return true, &reason
}

func directives(dirs gql.DirectiveList) introspection.Directives {
	out := introspection.Directives{}
	for _, d := range dirs {
		if d.Name == "deprecated" {
			continue
		}
		dd := &introspection.Directive{Name: d.Name}
		for _, a := range d.Arguments {
			val, err := a.Value.Value(nil)
			if err != nil {
				val = a.Value.Raw
			}
			dd.Args = append(dd.Args, &introspection.DirectiveArg{Name: a.Name, Value: jsonString(val)})
		}
		out = append(out, dd)
	}
	return out
}
