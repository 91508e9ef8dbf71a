package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/format"
	"go/token"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"unicode"

	"github.com/bulwark-go/bulwark/openapi"
)

// coreModule is the module path whose checkout gen looks for above DIR.
const coreModule = "github.com/bulwark-go/bulwark"

func runOpenAPIGen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("openapi gen", "Usage: bulwark openapi gen FILE -o DIR [flags]", stderr)
	out := fs.String("o", "", "the directory to write (required)")
	module := fs.String("module", "", "the generated service's module path (default: the document's title, as a slug)")
	pkg := fs.String("package", "", "--policies-only: the Go package of policies.go (default: DIR's name)")
	policiesOnly := fs.Bool("policies-only", false, "write only policies.go, the compiled policies for a generated server")
	checkout := fs.String("bulwark", "", "a checkout of bulwark to point go.mod's replace directives at (default: the one DIR is inside, if any)")
	noTidy := fs.Bool("no-tidy", false, "do not run go mod tidy in DIR after writing")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		return usagef("want: bulwark openapi gen FILE -o DIR, got %q -o %q", pos, *out)
	}
	file := pos[0]
	spec, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	api, err := loadForGen(file, stdout)
	if err != nil {
		return err
	}
	g, err := newGenerator(api, spec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if *policiesOnly {
		name := *pkg
		if name == "" {
			abs, _ := filepath.Abs(*out)
			name = goPackageName(filepath.Base(abs))
		}
		if !token.IsIdentifier(name) || token.IsKeyword(name) {
			return usagef("--package %q is not a Go package name", name)
		}
		if err := g.write(filepath.Join(*out, "policies.go"), policiesTemplate, name); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", filepath.Join(*out, "policies.go"))
		return nil
	}
	if *pkg != "" && *pkg != "main" {
		return usagef("a service is package main; --package is for --policies-only")
	}
	g.Module = *module
	if g.Module == "" {
		g.Module = slug(g.Title)
	}
	if strings.ContainsAny(g.Module, " \t\r\n\"'`\\") {
		return usagef("--module %q is not a module path", g.Module)
	}
	if err := g.setReplace(*out, *checkout); err != nil {
		return err
	}
	// policies.go and openapi.yaml follow the document: always rewritten.
	// The other files are the service's own once written: kept.
	files := []struct {
		name, tmpl string
		keep       bool
	}{
		{"policies.go", policiesTemplate, false}, {"go.mod", goModTemplate, true}, {"main.go", mainTemplate, true},
		{"handlers.go", handlersTemplate, true}, {"main_test.go", mainTestTemplate, true}, {"Dockerfile", dockerTemplate, true},
	}
	for _, f := range files {
		path := filepath.Join(*out, f.name)
		if _, err := os.Stat(path); err == nil && f.keep {
			fmt.Fprintf(stdout, "kept %s (delete it to generate it again)\n", path)
			continue
		}
		if err := g.write(path, f.tmpl, "main"); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(*out, "openapi.yaml"), spec, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote a service for %d operation(s) into %s\n", len(g.Ops), *out)
	if *noTidy {
		return nil
	}
	if _, err := exec.LookPath("go"); err != nil {
		fmt.Fprintf(stdout, "no go command found: run go mod tidy in %s\n", *out)
		return nil
	}
	cmd := exec.CommandContext(ctx, "go", "mod", "tidy")
	cmd.Dir = *out
	cmd.Env = append(os.Environ(), "GOWORK=off")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go mod tidy in %s: %w", *out, err)
	}
	return nil
}

// generator holds what the templates need.
type generator struct {
	Title    string
	Module   string
	Base     string // the document's base path
	Spec     string // the document, as a Go string literal
	Ops      []genOp
	Replaces []genReplace
}

type genOp struct {
	Func     string // the handler's Go name
	Method   string
	Path     string // the document's template
	Pattern  string // the net/http.ServeMux pattern
	Example  string // a concrete path for the test
	Name     string // the stack's name
	Policy   string // the merged Spec as JSON (a Go literal)
	Declared bool
}

type genReplace struct{ Module, Dir string }

func newGenerator(api *openapi.API, spec []byte) (*generator, error) {
	g := &generator{Title: "service", Base: api.BasePath(), Spec: goString(string(spec))}
	if info := api.Document().Info; info != nil && info.Title != "" {
		g.Title = info.Title
	}
	used := map[string]bool{"main": true, "run": true, "routes": true, "newServer": true, "notImplemented": true,
		"API": true, "Middleware": true, "Transport": true, "Policies": true, "PolicyOf": true, "Spec": true}
	patterns := map[string]bool{}
	for _, op := range api.Operations() {
		pattern, example := muxPattern(g.Base, op.Path)
		key := op.Method + " " + pattern
		if patterns[key] {
			return nil, fmt.Errorf("%s %s: the route %q is taken by another operation", op.Method, op.Path, key)
		}
		patterns[key] = true
		if err := checkPattern(key); err != nil {
			return nil, fmt.Errorf("%s %s: %w", op.Method, op.Path, err)
		}
		js, err := json.Marshal(op.Spec)
		if err != nil {
			return nil, err
		}
		g.Ops = append(g.Ops, genOp{
			Func: uniqueIdent(handlerName(op), used), Method: op.Method, Path: op.Path,
			Pattern: key, Example: example, Name: op.Name, Policy: goString(string(js)), Declared: op.Declared,
		})
	}
	if err := checkPatterns(g.Ops); err != nil {
		return nil, err
	}
	return g, nil
}

// checkPattern reports a pattern net/http.ServeMux would refuse.
func checkPattern(p string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("net/http cannot route %q: %v", p, r)
		}
	}()
	http.NewServeMux().HandleFunc(p, func(http.ResponseWriter, *http.Request) {})
	return nil
}

// checkPatterns reports routes that net/http.ServeMux finds in conflict
// (it would panic when the generated service starts).
func checkPatterns(ops []genOp) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the document's routes conflict in net/http: %v", r)
		}
	}()
	mux := http.NewServeMux()
	for _, op := range ops {
		mux.HandleFunc(op.Pattern, func(http.ResponseWriter, *http.Request) {})
	}
	return nil
}

var paramRe = regexp.MustCompile(`\{([^}]*)\}`)

// muxPattern turns an OpenAPI path template into a ServeMux pattern and a
// concrete example path: {name} segments become wildcards; a segment with
// a parameter and literal text around it ({id}.json) becomes a wildcard
// of the whole segment, since ServeMux wildcards are whole segments; a
// parameter name that is not a Go identifier is made one (r.PathValue
// takes the pattern's name).
func muxPattern(base, path string) (pattern, example string) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	pat := make([]string, len(segs))
	ex := make([]string, len(segs))
	for i, s := range segs {
		m := paramRe.FindStringSubmatchIndex(s)
		if m == nil {
			pat[i], ex[i] = s, s
			continue
		}
		name := s[m[2]:m[3]]
		if m[0] != 0 || m[1] != len(s) {
			name = fmt.Sprintf("seg%d", i)
		}
		if !token.IsIdentifier(name) {
			name = identOf(name, false) // ServeMux wildcards are Go identifiers
		}
		pat[i] = "{" + name + "}"
		ex[i] = paramRe.ReplaceAllString(s, "1")
	}
	p := base + "/" + strings.Join(pat, "/")
	if strings.HasSuffix(p, "/") {
		p += "{$}" // the path itself, not the subtree
	}
	return p, base + "/" + strings.Join(ex, "/")
}

func handlerName(op openapi.Operation) string {
	if op.ID != "" {
		return identOf(op.ID, false)
	}
	return identOf(strings.ToLower(op.Method)+" "+paramRe.ReplaceAllString(op.Path, "by $1"), false)
}

// identOf makes a Go identifier of s: words joined in camel case.
func identOf(s string, exported bool) string {
	words := strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	var b strings.Builder
	for i, w := range words {
		r := []rune(w)
		if i > 0 || exported {
			r[0] = unicode.ToUpper(r[0])
		} else {
			r[0] = unicode.ToLower(r[0])
		}
		b.WriteString(string(r))
	}
	id := b.String()
	if id == "" || unicode.IsDigit([]rune(id)[0]) {
		id = "op" + id
	}
	if token.IsKeyword(id) {
		id += "Op"
	}
	return id
}

func uniqueIdent(id string, used map[string]bool) string {
	out := id
	for i := 2; used[out]; i++ {
		out = id + strconv.Itoa(i)
	}
	used[out] = true
	return out
}

var notSlug = regexp.MustCompile(`[^a-z0-9]+`)

func slug(s string) string {
	out := strings.Trim(notSlug.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if out == "" {
		return "service"
	}
	return out
}

func goPackageName(s string) string {
	out := strings.ReplaceAll(slug(s), "-", "")
	if out == "" || unicode.IsDigit(rune(out[0])) {
		out = "policies"
	}
	return out
}

// goString returns s as a Go string literal: a raw one when it can be.
func goString(s string) string {
	if !strings.Contains(s, "`") && !strings.Contains(s, "\r") {
		return "`" + s + "`"
	}
	return strconv.Quote(s)
}

// setReplace points go.mod at a local checkout: the one given, or the one
// dir is inside.
func (g *generator) setReplace(dir, checkout string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	root := checkout
	if root == "" {
		root = findCheckout(abs)
	}
	if root == "" {
		return nil // resolved from the module proxy
	}
	root, err = filepath.Abs(root)
	if err != nil {
		return err
	}
	if findCheckout(root) != root {
		return usagef("--bulwark %s is not a checkout of %s", root, coreModule)
	}
	for _, m := range []struct{ mod, sub string }{{coreModule, ""}, {coreModule + "/openapi", "openapi"}, {coreModule + "/telemetry/bulwarkprom", "telemetry/bulwarkprom"}} {
		rel, err := filepath.Rel(abs, filepath.Join(root, m.sub))
		if err != nil {
			rel = filepath.Join(root, m.sub)
		}
		g.Replaces = append(g.Replaces, genReplace{Module: m.mod, Dir: filepath.ToSlash(rel)})
	}
	return nil
}

// findCheckout returns the nearest directory at or above dir holding the
// go.mod of the core module, or "".
func findCheckout(dir string) string {
	for d := dir; ; {
		if data, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil {
			first, _, _ := strings.Cut(string(data), "\n")
			if strings.TrimSpace(first) == "module "+coreModule {
				return d
			}
		}
		parent := filepath.Dir(d)
		if parent == d {
			return ""
		}
		d = parent
	}
}

func (g *generator) write(path, tmpl, pkg string) error {
	t, err := template.New(filepath.Base(path)).Parse(tmpl)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, struct {
		*generator
		Package string
	}{g, pkg}); err != nil {
		return err
	}
	out := buf.Bytes()
	if strings.HasSuffix(path, ".go") {
		if out, err = format.Source(out); err != nil {
			return fmt.Errorf("generated %s does not parse: %w", path, err)
		}
	}
	return os.WriteFile(path, out, 0o644)
}
