package bulwarktest

import "testing"

func TestMain(m *testing.M) { Main(m) }

// eachBackend runs f as a subtest per backend, named after it.
func eachBackend(t *testing.T, f func(t *testing.T, b Backend)) {
	t.Helper()
	for _, b := range Backends {
		t.Run(b.String(), func(t *testing.T) { f(t, b) })
	}
}
