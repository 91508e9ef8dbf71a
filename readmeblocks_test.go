package bulwark_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// A README block is one of:
//   - a whole file: it starts with a package clause and is built as is;
//   - a fragment: its first line is "// fragment: PARAMS", a Go parameter
//     list naming what the statements below assume (e.g.
//     "ctx context.Context, store *distributed.Store"). The test wraps the
//     statements in "func fragment(PARAMS) error { ...; return nil }" and
//     adds the imports of the packages they name.
//
// readmeImports maps the package names fragments may use to import paths.
var readmeImports = map[string]string{
	"bulwark":      "github.com/bulwark-go/bulwark",
	"local":        "github.com/bulwark-go/bulwark/local",
	"distributed":  "github.com/bulwark-go/bulwark/distributed",
	"lua":          "github.com/bulwark-go/bulwark/lua",
	"cluster":      "github.com/bulwark-go/bulwark/cluster",
	"semaphore":    "github.com/bulwark-go/bulwark/sync/semaphore",
	"singleflight": "github.com/bulwark-go/bulwark/sync/singleflight",
	"bulwarkhttp":  "github.com/bulwark-go/bulwark/bulwarkhttp",
	"policy":       "github.com/bulwark-go/bulwark/policy",
	"telemetry":    "github.com/bulwark-go/bulwark/telemetry",
	"bulwarkprom":  "github.com/bulwark-go/bulwark/telemetry/bulwarkprom",
	"bulwarkotel":  "github.com/bulwark-go/bulwark/telemetry/bulwarkotel",
	"openapi":      "github.com/bulwark-go/bulwark/openapi",
	"bulwarkgrpc":  "github.com/bulwark-go/bulwark/bulwarkgrpc",
	"bulwarktest":  "github.com/bulwark-go/bulwark/bulwarktest",
	"control":      "github.com/bulwark-go/bulwark/control",
	"redis":        "github.com/redis/go-redis/v9",
	"prometheus":   "github.com/prometheus/client_golang/prometheus",
	"promhttp":     "github.com/prometheus/client_golang/prometheus/promhttp",
	"grpc":         "google.golang.org/grpc",
	"context":      "context",
	"errors":       "errors",
	"fmt":          "fmt",
	"http":         "net/http",
	"httptest":     "net/http/httptest",
	"log":          "log",
	"slog":         "log/slog",
	"os":           "os",
	"time":         "time",
	"strings":      "strings",
	"testing":      "testing",
	"netip":        "net/netip",
}

type readmeBlock struct {
	line int // of the opening fence in README.md
	text string
}

// readmeGoBlocks returns every ```go block of README.md.
func readmeGoBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []readmeBlock
	var cur *readmeBlock
	for i, line := range strings.Split(string(data), "\n") {
		switch {
		case cur == nil && strings.TrimSpace(line) == "```go":
			cur = &readmeBlock{line: i + 1}
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	if cur != nil {
		t.Fatalf("README.md:%d: a ```go block is never closed", cur.line)
	}
	return blocks
}

var (
	fragmentRE = regexp.MustCompile(`^// fragment:(.*)\n`)
	packageRE  = regexp.MustCompile(`(?m)^package \w+`)
	selectorRE = regexp.MustCompile(`\b([a-z][a-z0-9]*)\.[A-Za-z_]`)
)

// readmeFile turns a block into a Go source file, or says why it cannot.
func readmeFile(b readmeBlock) (string, error) {
	if packageRE.MatchString(b.text) && !fragmentRE.MatchString(b.text) {
		return b.text, nil
	}
	m := fragmentRE.FindStringSubmatch(b.text)
	if m == nil {
		return "", fmt.Errorf("neither a whole file (package clause) nor a fragment (first line \"// fragment: PARAMS\")")
	}
	params := strings.TrimSpace(m[1])
	body := b.text[len(m[0]):]
	used := map[string]bool{}
	for _, s := range selectorRE.FindAllStringSubmatch(params+"\n"+stripComments(body), -1) {
		if _, ok := readmeImports[s[1]]; ok {
			used[s[1]] = true
		}
	}
	names := make([]string, 0, len(used))
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	var src strings.Builder
	src.WriteString("package main\n\nimport (\n")
	for _, n := range names {
		fmt.Fprintf(&src, "\t%s %q\n", n, readmeImports[n])
	}
	src.WriteString(")\n\nfunc main() {}\n\n")
	// The trailing return may be unreachable after a block that returns
	// itself: vet runs with -unreachable=false.
	fmt.Fprintf(&src, "func fragment(%s) error {\n%s\treturn nil\n}\n", params, body)
	return src.String(), nil
}

// stripComments drops // comments, so a package named only in a comment
// is not imported.
func stripComments(s string) string {
	var out strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if i := strings.Index(line, "//"); i >= 0 && !strings.Contains(line[:i], `"`) {
			line = line[:i]
		}
		out.WriteString(line + "\n")
	}
	return out.String()
}

// TestReadmeGoBlocksBuild builds every ```go block of README.md in a
// workspace of its own that uses every module of the repository, so a
// README that drifts from the API fails CI.
func TestReadmeGoBlocksBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: building the README's blocks takes a go build")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the README's blocks: %v", err)
	}
	blocks := readmeGoBlocks(t)
	if len(blocks) == 0 {
		t.Fatal("README.md has no ```go block")
	}
	out, err := exec.Command(gobin, "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	mods := strings.Fields(string(out))
	dir := t.TempDir()
	work := "go 1.26.0\n\nuse (\n\t.\n"
	for _, m := range mods {
		work += "\t" + m + "\n"
	}
	work += ")\n"
	must(t, os.WriteFile(filepath.Join(dir, "go.work"), []byte(work), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module readmeblocks\n\ngo 1.26.0\n"), 0o644))
	where := map[string]int{}
	for i, b := range blocks {
		src, err := readmeFile(b)
		if err != nil {
			t.Errorf("README.md:%d: %v", b.line, err)
			continue
		}
		pkg := fmt.Sprintf("block%02d", i)
		where[pkg] = b.line
		must(t, os.MkdirAll(filepath.Join(dir, pkg), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, pkg, "main.go"), []byte(src), 0o644))
	}
	cmd := exec.Command(gobin, "vet", "-unreachable=false", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK="+filepath.Join(dir, "go.work"), "GOFLAGS=-buildvcs=false")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := stderr.String()
		for pkg, line := range where {
			msg = strings.ReplaceAll(msg, pkg+"/main.go", fmt.Sprintf("README.md block at line %d", line))
		}
		t.Fatalf("README blocks do not build (go vet): %v\n%s", err, msg)
	}
	t.Logf("%d README blocks built and vetted", len(blocks))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestReadmeFragmentWrapping checks the wrapping rules on small blocks.
func TestReadmeFragmentWrapping(t *testing.T) {
	src, err := readmeFile(readmeBlock{text: "// fragment: ctx context.Context\nd := time.Second // see local.X\n_ = d\n_ = ctx\n"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(src, `time "time"`) || !strings.Contains(src, `context "context"`) || strings.Contains(src, "bulwark/local") {
		t.Errorf("imports of a fragment: got\n%s", src)
	}
	if _, err := readmeFile(readmeBlock{text: "x := 1\n"}); err == nil {
		t.Error("a block that is neither a file nor a fragment was accepted")
	}
	whole := "package main\n\nfunc main() {}\n"
	if src, err := readmeFile(readmeBlock{text: whole}); err != nil || src != whole {
		t.Errorf("a whole file: got %q, %v; want it unchanged", src, err)
	}
}

// TestReadmeQuickstartIsTheExample keeps the README's complete program
// identical to examples/quickstart/main.go (less the file's doc comment),
// which a test of the examples module runs against a real Redis.
func TestReadmeQuickstartIsTheExample(t *testing.T) {
	data, err := os.ReadFile("examples/quickstart/main.go")
	if err != nil {
		t.Fatal(err)
	}
	file := string(data)
	file = file[strings.Index(file, "package main"):]
	for _, b := range readmeGoBlocks(t) {
		if strings.HasPrefix(b.text, "package main") && strings.Contains(b.text, "distributed.New") {
			if b.text != file {
				t.Fatalf("README.md:%d: the complete program differs from examples/quickstart/main.go", b.line)
			}
			return
		}
	}
	t.Fatal("README.md has no complete program (a package main block that builds a store)")
}
