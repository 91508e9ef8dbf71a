package redistest

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// Runner starts the processes behind Servers. The zero configuration of
// every Start function uses the redis-server binary of this machine (see
// RequireServer); another Runner runs the same redis-server somewhere else,
// for example in a container sharing the host's network, and the Server,
// Cluster and Sentinel code on top stays the same.
//
// A Runner must start a redis-server that reads its configuration from
// args[0] (an absolute path inside dir), listens on the loopback port that
// configuration names and writes its log file into dir, which it can read
// and write.
type Runner interface {
	// Start starts redis-server with args in the working directory dir,
	// its standard output and error appended to the file stdout. It returns
	// once the process runs, not once it answers.
	Start(dir string, args []string, stdout string) (Process, error)
	// String names the runner for messages ("redis-server /usr/bin/redis-server").
	String() string
}

// Process is one running server started by a Runner.
type Process interface {
	// Kill ends the process at once (SIGKILL, also when paused) and
	// returns when it is gone and its resources are released.
	Kill() error
	// Pause freezes the process (SIGSTOP or a cgroup freeze); Resume
	// thaws it.
	Pause() error
	// Resume continues a paused process.
	Resume() error
	// Done is closed when the process has exited.
	Done() <-chan struct{}
	// Pid is the host's process id of the server.
	Pid() int
}

// BinaryRunner returns the Runner that executes the redis-server binary at
// path as a child process (SIGKILLed when the test binary dies, on Linux).
func BinaryRunner(path string) Runner { return binaryRunner(path) }

type binaryRunner string

func (r binaryRunner) String() string { return "redis-server " + string(r) }

func (r binaryRunner) Start(dir string, args []string, stdout string) (Process, error) {
	out, err := os.OpenFile(stdout, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(string(r), args...)
	cmd.Dir = dir
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	_ = out.Close() // the child holds its own descriptor
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", string(r), err)
	}
	p := &childProcess{proc: cmd.Process, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

type childProcess struct {
	proc *os.Process
	done chan struct{}
}

func (p *childProcess) Kill() error {
	_ = p.proc.Signal(syscall.SIGCONT)
	_ = p.proc.Kill()
	<-p.done
	return nil
}

func (p *childProcess) Pause() error          { return p.proc.Signal(syscall.SIGSTOP) }
func (p *childProcess) Resume() error         { return p.proc.Signal(syscall.SIGCONT) }
func (p *childProcess) Done() <-chan struct{} { return p.done }
func (p *childProcess) Pid() int              { return p.proc.Pid }

// requireRunner returns r, or the binary runner RequireServer finds when r
// is nil (skipping or failing the test as RequireServer does).
func requireRunner(tb testing.TB, r Runner) Runner {
	tb.Helper()
	if r != nil {
		return r
	}
	return BinaryRunner(RequireServer(tb))
}
