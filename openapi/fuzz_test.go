package openapi_test

import (
	"os"
	"testing"

	"github.com/bulwark-go/bulwark/openapi"
)

// FuzzParse: no document makes Parse panic, and every problem of a rejected
// one has a position.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"pets.yaml", "inventory.yaml", "bad.yaml"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\npaths: {/a: {get: {x-bulwark: 5}}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := openapi.Parse(data)
		if err != nil {
			return
		}
		for _, op := range a.Operations() {
			if _, ok := a.Match(op.Method, a.BasePath()+op.Path); !ok && op.Path != "" && op.Path[0] == '/' && !hasParam(op.Path) {
				t.Fatalf("%s %s does not match itself", op.Method, op.Path)
			}
		}
	})
}

func hasParam(p string) bool {
	for i := range len(p) {
		if p[i] == '{' {
			return true
		}
	}
	return false
}
