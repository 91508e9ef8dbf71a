// Command bulwark shows and operates the Redis-backed patterns of package
// bulwark.
//
//	bulwark demo [--redis URL]                 three replicas share one limit; Redis goes away and comes back
//	bulwark inspect --redis URL [--prefix P]   list the limiters, breakers and bulkheads stored under a prefix
//	bulwark breaker reset|open NAME --redis URL
//	bulwark config get|set|history|rollback ...  live configuration of named policies
//	bulwark console --redis URL [--prefix P]   web console of the fleet
//	bulwark openapi lint|gen FILE              check a spec's x-bulwark blocks; generate a protected service
//
// Run "bulwark help" or "bulwark COMMAND --help" for the flags of each
// command. Exit codes: 0 success, 1 a failure at run time (Redis
// unreachable, unknown name), 2 bad usage (unknown command or flag, bad URL).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// quietLogger drops the Redis client's log lines.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// Exit codes of run.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed: Redis unreachable, unknown name
	exitUsage   = 2 // the command line was wrong: unknown command or flag, bad URL
)

func main() {
	// The client library logs dial failures itself; the commands report
	// them as errors, once.
	redis.SetLogger(quietLogger{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `bulwark: resilience patterns shared by the replicas of a service through Redis.

Usage:
  bulwark demo [--redis URL] [flags]          three simulated replicas share one global limit;
                                              Redis is taken away and brought back
  bulwark inspect --redis URL [--prefix P]    list limiters, breakers and bulkheads under a prefix
  bulwark breaker reset|open NAME --redis URL act on a fleet-wide circuit breaker
  bulwark config get|set|history|rollback     live configuration of named policies, no redeploy
  bulwark console --redis URL [--prefix P]    web console: replicas, policies, breakers, history
  bulwark openapi lint|gen FILE               check an OpenAPI document's policies; generate a service
  bulwark help                                show this text

Run "bulwark COMMAND --help" for the flags of a command.
A Redis URL looks like redis://[user:password@]host:port[/db] (rediss:// for TLS).
`

// run is the whole command: it parses args (without the program name),
// writes its output to stdout and diagnostics to stderr, and returns the
// exit code. It never calls os.Exit, so tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "demo":
		err = runDemo(ctx, rest, stdout, stderr)
	case "inspect":
		err = runInspect(ctx, rest, stdout, stderr)
	case "breaker":
		err = runBreaker(ctx, rest, stdout, stderr)
	case "config":
		return runConfig(ctx, rest, stdout, stderr)
	case "console":
		err = runConsole(ctx, rest, stdout, stderr)
	case "openapi":
		err = runOpenAPI(ctx, rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "bulwark: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	return exitCode(err, stderr)
}

// usageError marks an error in the command line: exit code 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// exitCode prints err, if any, and maps it to an exit code. flag.ErrHelp
// (the user asked for --help; the flag set already printed the help) is a
// success.
func exitCode(err error, stderr io.Writer) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "bulwark: %v\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "bulwark: %v\n", err)
		return exitFailure
	}
}

// newFlagSet returns a flag set that reports errors instead of exiting and
// writes its help to stderr, headed by synopsis.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args with fs, allowing flags after positional
// arguments ("breaker reset NAME --redis URL"). A parse error is a usage
// error; --help returns flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{err}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
