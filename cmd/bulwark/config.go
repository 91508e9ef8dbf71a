package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/control"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/policy"
)

// exitRefused is the exit code of a configuration change refused because
// a field or value is invalid: nothing was written.
const exitRefused = 3

const configSynopsis = `Usage:
  bulwark config get      --redis URL [--prefix P] [NAME]
  bulwark config set      --redis URL [--prefix P] NAME path=value ... --reason TEXT
  bulwark config history  --redis URL [--prefix P] NAME [--limit N]
  bulwark config rollback --redis URL [--prefix P] NAME [VERSION] --reason TEXT

Reads and changes the live configuration of the fleet's named policies
(package control). A live value overrides the service's defaults field by
field; every replica applies a change on its next call (within about one
second) without a redeploy.

  get       without NAME, lists every policy; with NAME, shows its defaults,
            live value and the configuration replicas run, as JSON
  set       changes fields, e.g. ratelimit.limit=50, ratelimit.shadow=true,
            circuitbreaker.force=open, timeout=2s; "path=" removes a field
            (the default applies again). Prints the diff and the new version.
  history   the changes of NAME, newest first: version, time, who, why, diff
  rollback  back to VERSION (default: the value before the latest change);
            a rollback is a change of its own

Exit codes: 0 done (also when there was nothing to change), 1 failure
(Redis unreachable, concurrent change), 2 bad usage, 3 the change was
refused (unknown field, bad value): nothing was written.`

// runConfig is "bulwark config ...", returning its exit code.
func runConfig(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, configSynopsis)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	sub, rest := args[0], args[1:]
	fs := newFlagSet("config "+sub, configSynopsis, stderr)
	url := fs.String("redis", "", "Redis URL, e.g. redis://127.0.0.1:6379 (required)")
	prefix := fs.String("prefix", distributed.DefaultPrefix, "the key prefix the services use (distributed.WithPrefix)")
	reason := fs.String("reason", "", "why the change is made, for the history (set and rollback: required)")
	who := fs.String("who", defaultWho(), "who makes the change, for the history")
	limit := fs.Int("limit", 20, "history: how many changes to show (0: all kept)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseFlags(fs, rest)
	if err != nil {
		return exitCode(err, stderr)
	}
	var run func(context.Context, *control.Store, []string, io.Writer) error
	meta := control.Meta{Who: *who, Why: *reason}
	switch sub {
	case "get":
		run = func(ctx context.Context, s *control.Store, pos []string, w io.Writer) error {
			return configGet(ctx, s, pos, *asJSON, w)
		}
	case "set":
		run = func(ctx context.Context, s *control.Store, pos []string, w io.Writer) error {
			return configSet(ctx, s, pos, meta, *asJSON, w)
		}
	case "history":
		run = func(ctx context.Context, s *control.Store, pos []string, w io.Writer) error {
			return configHistory(ctx, s, pos, *limit, *asJSON, w)
		}
	case "rollback":
		run = func(ctx context.Context, s *control.Store, pos []string, w io.Writer) error {
			return configRollback(ctx, s, pos, meta, *asJSON, w)
		}
	default:
		return exitCode(usagef("unknown config command %q (get, set, history or rollback)", sub), stderr)
	}
	if (sub == "set" || sub == "rollback") && strings.TrimSpace(*reason) == "" {
		return exitCode(usagef("config %s needs --reason TEXT: the history says why each change was made", sub), stderr)
	}
	if *prefix == "" {
		return exitCode(usagef("--prefix must not be empty"), stderr)
	}
	if err := checkConfigArgs(sub, pos); err != nil {
		return exitCode(err, stderr)
	}
	client, err := connect(ctx, *url)
	if err != nil {
		return exitCode(err, stderr)
	}
	defer client.Close()
	store, err := control.New(client, control.WithPrefix(*prefix))
	if err != nil {
		return exitCode(usagef("%v", err), stderr)
	}
	err = run(ctx, store, pos, stdout)
	if errors.Is(err, bulwark.ErrInvalidConfig) || errors.Is(err, bulwark.ErrInvalidArgument) {
		fmt.Fprintf(stderr, "bulwark: change refused, nothing was written:\n")
		for _, p := range policy.Problems(err) {
			fmt.Fprintf(stderr, "  %s\n", p)
		}
		return exitRefused
	}
	return exitCode(err, stderr)
}

// checkConfigArgs checks the positional arguments of a config command
// before anything connects to Redis.
func checkConfigArgs(sub string, pos []string) error {
	switch sub {
	case "get":
		if len(pos) > 1 {
			return usagef("config get takes at most one NAME, got %q", pos)
		}
		return nil
	case "set":
		name, fields, err := oneName(pos, sub)
		if err != nil {
			return err
		}
		if len(fields) == 0 {
			return usagef("config set %s needs at least one path=value (such as ratelimit.limit=50)", name)
		}
		for _, f := range fields {
			if !strings.Contains(f, "=") {
				return usagef("%q is not path=value (such as ratelimit.limit=50)", f)
			}
		}
	case "history":
		if _, rest, err := oneName(pos, sub); err != nil || len(rest) > 0 {
			if err == nil {
				err = usagef("config history takes one NAME, got %q", pos)
			}
			return err
		}
	case "rollback":
		_, rest, err := oneName(pos, sub)
		if err != nil {
			return err
		}
		if len(rest) > 1 {
			return usagef("config rollback takes NAME and at most one VERSION, got %q", pos)
		}
		if len(rest) == 1 {
			if _, err := parseVersion(rest[0]); err != nil {
				return err
			}
		}
	}
	return nil
}

func parseVersion(s string) (uint64, error) {
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "v"), 10, 64)
	if err != nil || v == 0 {
		return 0, usagef("bad VERSION %q: want a version number from the history", s)
	}
	return v, nil
}

func defaultWho() string {
	u := os.Getenv("USER")
	if u == "" {
		u = "unknown"
	}
	h, _ := os.Hostname()
	if h == "" {
		return u
	}
	return u + "@" + h
}

func oneName(pos []string, cmd string) (string, []string, error) {
	if len(pos) == 0 {
		return "", nil, usagef("config %s needs a policy NAME", cmd)
	}
	return pos[0], pos[1:], nil
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func configGet(ctx context.Context, s *control.Store, pos []string, asJSON bool, w io.Writer) error {
	if len(pos) > 1 {
		return usagef("config get takes at most one NAME, got %q", pos)
	}
	if len(pos) == 0 {
		es, err := s.List(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(w, es)
		}
		if len(es) == 0 {
			fmt.Fprintf(w, "no policies under prefix %q (no live value written, no replica registered)\n", s.Prefix())
			return nil
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tVERSION\tLIVE VALUE\tDEFAULTS")
		for _, e := range es {
			layer, _ := json.Marshal(e.Layer)
			defs := "(none registered)"
			if e.Defaults != nil {
				b, _ := json.Marshal(e.Defaults)
				defs = string(b)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", e.Name, e.Version, layer, defs)
		}
		return tw.Flush()
	}
	e, err := s.Get(ctx, pos[0])
	if err != nil {
		return err
	}
	out := struct {
		Name      string       `json:"name"`
		Version   uint64       `json:"version"`
		Defaults  *policy.Spec `json:"defaults"`
		Live      policy.Spec  `json:"live"`
		Effective policy.Spec  `json:"effective"`
	}{e.Name, e.Version, e.Defaults, e.Layer, e.Effective()}
	return printJSON(w, out)
}

func configSet(ctx context.Context, s *control.Store, pos []string, m control.Meta, asJSON bool, w io.Writer) error {
	name, fields, err := oneName(pos, "set")
	if err != nil {
		return err
	}
	r, err := s.Assign(ctx, name, fields, m)
	if err != nil {
		return err
	}
	return printRecord(w, r, asJSON)
}

func configRollback(ctx context.Context, s *control.Store, pos []string, m control.Meta, asJSON bool, w io.Writer) error {
	name, rest, err := oneName(pos, "rollback")
	if err != nil {
		return err
	}
	var to uint64
	if len(rest) > 0 {
		if to, err = parseVersion(rest[0]); err != nil {
			return err
		}
	}
	r, err := s.Rollback(ctx, name, to, m)
	if err != nil {
		return err
	}
	return printRecord(w, r, asJSON)
}

func printRecord(w io.Writer, r control.Record, asJSON bool) error {
	if asJSON {
		return printJSON(w, r)
	}
	if len(r.Diff) == 0 {
		fmt.Fprintf(w, "%s: no change (still version %d)\n", r.Name, r.Version)
		return nil
	}
	for _, c := range r.Diff {
		fmt.Fprintf(w, "  %s\n", c)
	}
	for _, f := range r.Fresh {
		fmt.Fprintf(w, "  fresh state: %s\n", f)
	}
	if r.RollbackOf != 0 {
		fmt.Fprintf(w, "%s: version %d (rollback to version %d)\n", r.Name, r.Version, r.RollbackOf)
	} else {
		fmt.Fprintf(w, "%s: version %d\n", r.Name, r.Version)
	}
	return nil
}

func configHistory(ctx context.Context, s *control.Store, pos []string, limit int, asJSON bool, w io.Writer) error {
	name, rest, err := oneName(pos, "history")
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("config history takes one NAME, got %q", pos)
	}
	hist, err := s.History(ctx, name, limit)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(w, hist)
	}
	if len(hist) == 0 {
		fmt.Fprintf(w, "%s: no changes\n", name)
		return nil
	}
	for _, r := range hist {
		fmt.Fprintf(w, "version %d  %s  %s: %s\n", r.Version, r.Time.Format(time.RFC3339), r.Who, r.Why)
		if r.RollbackOf != 0 {
			fmt.Fprintf(w, "  rollback to version %d\n", r.RollbackOf)
		}
		for _, c := range r.Diff {
			fmt.Fprintf(w, "  %s\n", c)
		}
		for _, f := range r.Fresh {
			fmt.Fprintf(w, "  fresh state: %s\n", f)
		}
	}
	return nil
}
