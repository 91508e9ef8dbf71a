package redistest

import (
	"flag"
	"fmt"
	"os"
	"sync"
)

// The servers ExampleServer started, stopped by Main.
var examples struct {
	mu      sync.Mutex
	servers []*Server
	dirs    []string
}

// ExampleServer starts a fresh redis-server for an Example function, which
// has no testing.TB: it is stopped by Main when the tests are done. It
// panics when no server can be started; Main skips the package's examples
// (with a message) when there is no redis-server binary and EnvRequireRedis
// is unset, so that happens only where Redis is required or broken.
func ExampleServer() *Server {
	bin, err := findServer()
	if err != nil {
		panic(fmt.Sprintf("redistest: examples need redis-server: %v", err))
	}
	dir, err := os.MkdirTemp("", "bulwark-redistest-example-")
	if err != nil {
		panic(fmt.Sprintf("redistest: %v", err))
	}
	s, err := newServer(BinaryRunner(bin), dir, nil, false, nil, 0)
	if err != nil {
		_ = os.RemoveAll(dir)
		panic(fmt.Sprintf("redistest: example server: %v", err))
	}
	examples.mu.Lock()
	examples.servers = append(examples.servers, s)
	examples.dirs = append(examples.dirs, dir)
	examples.mu.Unlock()
	return s
}

// stopExamples stops the servers ExampleServer started and removes their
// files.
func stopExamples() {
	examples.mu.Lock()
	defer examples.mu.Unlock()
	stopAll(examples.servers)
	for _, d := range examples.dirs {
		_ = os.RemoveAll(d)
	}
	examples.servers, examples.dirs = nil, nil
}

// skipExamplesWithoutServer makes the test binary skip its Example
// functions, saying why, when they could not get a server: no redis-server
// binary and EnvRequireRedis unset.
func skipExamplesWithoutServer() {
	if _, err := findServer(); err == nil || os.Getenv(EnvRequireRedis) != "" {
		return
	}
	if f := flag.Lookup("test.skip"); f != nil {
		skip := "^Example"
		if cur := f.Value.String(); cur != "" {
			skip = cur + "|^Example"
		}
		_ = f.Value.Set(skip)
		fmt.Fprintf(os.Stderr, "redistest: no redis-server binary: skipping the Example functions (install redis-server, or set %s=1 to make this a failure)\n", EnvRequireRedis)
	}
}
