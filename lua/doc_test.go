package lua_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocListsEveryScript keeps the table in doc.go in step with the .lua
// files of the package.
func TestDocListsEveryScript(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*.lua")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no .lua files found")
	}
	for _, f := range files {
		if !strings.Contains(string(doc), " "+f+" ") {
			t.Errorf("doc.go does not list %s", f)
		}
	}
}
