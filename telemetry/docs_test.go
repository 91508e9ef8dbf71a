package telemetry

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDocsListEveryMetric keeps doc.go and METRICS.md in step with the
// metric table.
func TestDocsListEveryMetric(t *testing.T) {
	for _, file := range []string{"doc.go", "METRICS.md"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, d := range metricDefs {
			for _, name := range []string{DefaultNamespace + "_" + d.prom, d.otel} {
				if !strings.Contains(text, name+" ") && !strings.Contains(text, name+"`") {
					t.Errorf("%s does not list %s", file, name)
				}
			}
			for _, l := range d.labels {
				if !strings.Contains(text, l) {
					t.Errorf("%s does not mention label %s of %s", file, l, d.prom)
				}
			}
		}
	}
}

// TestDocTableMatchesDefinitions checks every row of doc.go's table: its
// two names and its kind are those of one metric, and every metric has a
// row.
func TestDocTableMatchesDefinitions(t *testing.T) {
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.TrimPrefix(line, "//\t"))
		if !strings.HasPrefix(line, "//\tbulwark_") || len(f) < 3 {
			continue
		}
		found := false
		for _, d := range metricDefs {
			if f[0] != DefaultNamespace+"_"+d.prom {
				continue
			}
			found = true
			if f[1] != d.otel || f[2] != d.kind.String() {
				t.Errorf("doc.go row %q: want %s %s %s", line, f[0], d.otel, d.kind)
			}
			seen[f[0]] = true
		}
		if !found {
			t.Errorf("doc.go row %q names no metric", line)
		}
	}
	if len(seen) != len(metricDefs) {
		t.Errorf("doc.go's table has %d metrics, the definitions %d", len(seen), len(metricDefs))
	}
}

// TestImportsOnlyStandardLibraryAndCore keeps this package in the core
// module's promise: no dependency beyond the standard library and bulwark's
// own packages, so importing it adds nothing to a program's go.sum.
func TestImportsOnlyStandardLibraryAndCore(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, file := range files {
		f, err := parser.ParseFile(fset, file, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(path, "/")
			if strings.Contains(first, ".") && path != "github.com/bulwark-go/bulwark" && !strings.HasPrefix(path, "github.com/bulwark-go/bulwark/") {
				t.Errorf("%s imports %s", file, path)
			}
		}
	}
}
