package openapi

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"gopkg.in/yaml.v3"

	"github.com/bulwark-go/bulwark/policy"
)

// The extension names.
const (
	Extension        = "x-bulwark"
	TelstraExtension = "x-telstra"
)

// API is a loaded OpenAPI document: its operations, each with the
// policy.Spec its x-bulwark (and x-telstra) blocks declare, and a routing
// table compiled from its paths. An API is immutable and safe for
// concurrent use.
type API struct {
	doc         *openapi3.T
	ops         []*Operation
	router      *router
	basePath    string
	defaults    policy.Spec // the document's x-bulwark defaults
	hasDefaults bool
}

// Operation is one operation of the document.
type Operation struct {
	ID     string // operationId; may be empty
	Name   string // the name of its stack: Spec.Name, else ID, else "METHOD:path"
	Method string // upper case: GET, POST, ...
	Path   string // the path template: /pets/{petId}
	// Spec is the merged declaration: the document's x-bulwark defaults,
	// then the path item's x-bulwark, then the operation's x-telstra, then
	// its x-bulwark, each more specific layer winning field by field.
	Spec policy.Spec
	// Declared reports whether any x-bulwark or x-telstra block applies to
	// the operation (its own, its path item's or the defaults).
	Declared bool
}

// Load reads the OpenAPI 3 document (YAML or JSON) at path; see Parse.
func Load(path string) (*API, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Problems: []Problem{{Message: err.Error()}}}
	}
	a, err := parse(data)
	var e *Error
	if errors.As(err, &e) {
		e.File = path
	}
	return a, err
}

// Parse reads an OpenAPI 3 document (YAML or JSON) with kin-openapi and its
// x-bulwark and x-telstra blocks. A document with any problem is rejected
// whole: the error is an *Error (wrapping bulwark.ErrInvalidConfig) listing
// every problem with its line and column, so nothing half-applies.
func Parse(data []byte) (*API, error) { return parse(data) }

// Lint returns the problems of the document at path, sorted by position;
// nil when it is clean. The error is for a file that cannot be read.
func Lint(path string) ([]Problem, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	_, err = parse(data)
	var e *Error
	if errors.As(err, &e) {
		return e.Problems, nil
	}
	return nil, err
}

// Defaults returns the document's x-bulwark defaults, and whether it
// declares any.
func (a *API) Defaults() (policy.Spec, bool) {
	if a == nil {
		return policy.Spec{}, false
	}
	return a.defaults.Clone(), a.hasDefaults
}

// Document returns the kin-openapi document (nil for a nil API).
func (a *API) Document() *openapi3.T {
	if a == nil {
		return nil
	}
	return a.doc
}

// BasePath returns the path prefix of the document's first server URL
// ("/v1" for https://api.example.com/v1), which requests carry before
// the operations' paths; "" when there is none.
func (a *API) BasePath() string {
	if a == nil {
		return ""
	}
	return a.basePath
}

// Operations returns the document's operations, sorted by path, then method.
func (a *API) Operations() []Operation {
	if a == nil {
		return nil
	}
	out := make([]Operation, len(a.ops))
	for i, op := range a.ops {
		out[i] = *op
		out[i].Spec = op.Spec.Clone()
	}
	return out
}

// Match returns the operation serving method and the URL path urlPath
// (with the base path), as the middleware routes requests: literal
// segments before parameters, each parameter matching one non-empty
// segment; a HEAD request without an operation of its own is matched as GET,
// as net/http serves it. It allocates nothing.
func (a *API) Match(method, urlPath string) (Operation, bool) {
	if a == nil {
		return Operation{}, false
	}
	i := a.router.match(method, urlPath, a.basePath)
	if i < 0 {
		return Operation{}, false
	}
	return *a.ops[i], true
}

// layer is one x-bulwark or x-telstra block applying to an operation.
type layer struct {
	base    []string // where the block is in the document
	spec    policy.Spec
	telstra *telstraLayer
	root    bool
}

type parser struct {
	pos      positions
	problems []Problem
}

func (p *parser) add(path []string, key bool, msg string) {
	line, col := p.pos.find(path, key)
	p.problems = append(p.problems, Problem{Path: strings.Join(path, "."), Message: msg, Line: line, Column: col})
}

func (p *parser) addPolicy(base []string, ps []policy.Problem) {
	for _, q := range ps {
		p.add(appendPath(base, q.Path), q.Key, q.Message)
	}
}

func appendPath(base []string, dotted string) []string {
	out := append([]string(nil), base...)
	if dotted != "" {
		out = append(out, strings.Split(dotted, ".")...)
	}
	return out
}

var methodOrder = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "QUERY"}

func parse(data []byte) (*API, error) {
	p := &parser{pos: newPositions(data)}
	var probe yaml.Node
	if err := yaml.Unmarshal(data, &probe); err != nil {
		return nil, &Error{Problems: []Problem{yamlProblem(err)}}
	}
	doc, err := loadDocument(data)
	if err != nil {
		return nil, &Error{Problems: []Problem{{Message: "not an OpenAPI document: " + err.Error(), Line: 1, Column: 1}}}
	}
	a := &API{doc: doc, basePath: serverBasePath(doc)}
	rootLayers := p.rootLayers(doc)
	for _, l := range rootLayers {
		a.defaults, a.hasDefaults = l.spec, true
	}
	var paths []string
	if doc.Paths != nil {
		paths = doc.Paths.InMatchingOrder()
		sort.Strings(paths)
	}
	for _, path := range paths {
		item := doc.Paths.Value(path)
		if item == nil {
			continue
		}
		itemLayers := rootLayers
		if v, ok := item.Extensions[Extension]; ok {
			base := []string{"paths", path, Extension}
			s, err := policy.Decode(v)
			p.addPolicy(base, policy.Problems(err))
			itemLayers = append(append([]layer(nil), rootLayers...), layer{base: base, spec: s})
		}
		ops := item.Operations()
		for _, m := range methodOrder {
			if op, ok := ops[m]; ok && op != nil {
				a.ops = append(a.ops, p.operation(path, m, op, itemLayers))
			}
		}
	}
	seen := map[string]*Operation{}
	for _, op := range a.ops {
		if op.ID == "" {
			continue
		}
		if first, dup := seen[op.ID]; dup {
			p.add([]string{"paths", op.Path, strings.ToLower(op.Method), "operationId"}, false,
				fmt.Sprintf("operationId %q is also %s %s's: operations would share their policies' state", op.ID, first.Method, first.Path))
			continue
		}
		seen[op.ID] = op
	}
	if len(p.problems) > 0 {
		return nil, &Error{Problems: sortProblems(p.problems)}
	}
	rt, err := compileRouter(a.ops)
	if err != nil {
		return nil, &Error{Problems: []Problem{{Message: err.Error()}}}
	}
	a.router = rt
	return a, nil
}

// loadDocument reads the document with kin-openapi, without external
// references; a panic inside the library is reported as an error.
func loadDocument(data []byte) (doc *openapi3.T, err error) {
	defer func() {
		if r := recover(); r != nil {
			doc, err = nil, fmt.Errorf("the OpenAPI reader failed: %v", r)
		}
	}()
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = false
	return loader.LoadFromData(data)
}

func yamlProblem(err error) Problem {
	msg := err.Error()
	var line int
	if _, e := fmt.Sscanf(strings.TrimPrefix(msg, "yaml: "), "line %d:", &line); e == nil {
		return Problem{Message: msg, Line: line, Column: 1}
	}
	return Problem{Message: msg, Line: 1, Column: 1}
}

func serverBasePath(doc *openapi3.T) string {
	if len(doc.Servers) == 0 || doc.Servers[0] == nil || strings.Contains(doc.Servers[0].URL, "{") {
		return ""
	}
	u, err := url.Parse(doc.Servers[0].URL)
	if err != nil {
		return ""
	}
	return strings.TrimRight(u.Path, "/")
}

// rootLayers reads the document-level blocks.
func (p *parser) rootLayers(doc *openapi3.T) []layer {
	var out []layer
	if v, ok := doc.Extensions[TelstraExtension]; ok {
		p.addPolicy([]string{TelstraExtension}, decodeTelstraRoot(v))
	}
	v, ok := doc.Extensions[Extension]
	if !ok {
		return nil
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		p.add([]string{Extension}, false, "must be an object with the key defaults")
		return nil
	}
	for k := range m {
		if k != "defaults" {
			p.add([]string{Extension, k}, true, unknownKey(k, []string{"defaults"}))
		}
	}
	if d, ok := m["defaults"]; ok {
		base := []string{Extension, "defaults"}
		s, err := policy.Decode(d)
		p.addPolicy(base, policy.Problems(err))
		out = append(out, layer{base: base, spec: s, root: true})
	}
	return out
}

func isIdempotent(method string) bool {
	switch method {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE", "QUERY":
		return true
	}
	return false
}

func (p *parser) operation(path, method string, op *openapi3.Operation, inherited []layer) *Operation {
	lower := strings.ToLower(method)
	opPath := []string{"paths", path, lower}
	layers := append([]layer(nil), inherited...)
	if v, ok := op.Extensions[TelstraExtension]; ok {
		base := []string{"paths", path, lower, TelstraExtension}
		tl, ps := decodeTelstra(v)
		p.addPolicy(base, ps)
		layers = append(layers, layer{base: base, spec: tl.spec, telstra: &tl})
	}
	if v, ok := op.Extensions[Extension]; ok {
		base := []string{"paths", path, lower, Extension}
		s, err := policy.Decode(v)
		p.addPolicy(base, policy.Problems(err))
		layers = append(layers, layer{base: base, spec: s})
	}
	specs := make([]policy.Spec, len(layers))
	for i, l := range layers {
		specs[i] = l.spec
	}
	o := &Operation{ID: op.OperationID, Method: method, Path: path, Spec: policy.MergeAll(specs...), Declared: len(layers) > 0}
	if o.Spec.HasHedge() && !isIdempotent(method) {
		if l := owner(layers, "hedge"); l == nil || l.root {
			o.Spec.Hedge = nil // a default hedge applies to idempotent methods only
		} else {
			p.add(attribute(layers, opPath, policy.Problem{Path: "hedge"}), false,
				fmt.Sprintf("hedge on %s, which is not idempotent: a hedged request would run twice", method))
		}
	}
	for _, q := range policy.Problems(o.Spec.Validate()) {
		p.add(attribute(layers, opPath, q), q.Key, q.Message)
	}
	o.Name = o.Spec.Name
	if o.Name == "" {
		o.Name = o.ID
	}
	if o.Name == "" {
		o.Name = method + ":" + path
	} else if err := (policy.Spec{Name: o.Name}).Validate(); err != nil && o.Spec.Name == "" && o.Declared {
		p.add(append(opPath, "operationId"), false, fmt.Sprintf("operationId %q cannot name the operation's policies (metrics, RateLimit-Policy): it %s; set x-bulwark name",
			o.ID, policy.Problems(err)[0].Message))
	}
	return o
}

// owner returns the most specific layer setting the block (or field) path.
func owner(layers []layer, path string) *layer {
	for i := len(layers) - 1; i >= 0; i-- {
		if sets(layers[i].spec, path) {
			return &layers[i]
		}
	}
	return nil
}

// sets reports whether s sets the field at path, or something below it.
func sets(s policy.Spec, path string) bool {
	for _, c := range policy.Diff(policy.Spec{}, s) {
		if c.Path == path || strings.HasPrefix(c.Path, path+".") || strings.HasPrefix(path, c.Path+".") {
			return true
		}
	}
	return false
}

// attribute finds where in the document a problem of the merged Spec was
// written: the most specific layer that sets the field, else the one that
// declares its block, else the operation.
func attribute(layers []layer, opPath []string, q policy.Problem) []string {
	block, _, _ := strings.Cut(q.Path, ".")
	for _, exact := range []bool{true, false} {
		for i := len(layers) - 1; i >= 0; i-- {
			l := layers[i]
			want := q.Path
			if !exact {
				want = block
			}
			if want == "" || !sets(l.spec, want) {
				continue
			}
			if l.telstra != nil {
				if k, ok := l.telstra.telstraField(q.Path); ok {
					return appendPath(l.base, k)
				}
				return appendPath(l.base, "resiliency."+block)
			}
			return appendPath(l.base, want)
		}
	}
	return opPath
}
