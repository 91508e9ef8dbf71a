package redistest

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// EnvChild is set to "1" in the environment of a process started by Child.
const EnvChild = "BULWARK_CHILD"

// Child returns a command that runs the current test binary again with only
// the test testName ("TestX", or "TestX/sub" for a subtest; matched exactly),
// with EnvChild=1 and the extra environment entries env ("KEY=value") added
// to this process's environment. It is how a test gets a second process, for
// example a lease holder to SIGKILL: the named test checks IsChild and plays
// the child's part. The command is not started; set Stdout/Stderr as needed
// (they default to nothing). If it was started and not waited for when the
// test ends, it is killed and reaped at cleanup.
func Child(tb testing.TB, testName string, env ...string) *exec.Cmd {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatalf("redistest: finding the test binary: %v", err)
	}
	parts := strings.Split(testName, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	cmd := exec.Command(exe, "-test.run="+strings.Join(parts, "/"), "-test.count=1")
	cmd.Env = append(append(os.Environ(), EnvChild+"=1"), env...)
	cmd.SysProcAttr = sysProcAttr()
	tb.Cleanup(func() {
		if cmd.Process != nil && cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

// IsChild reports whether this process was started by Child.
func IsChild() bool { return os.Getenv(EnvChild) == "1" }
