package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/bulwark-go/bulwark/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// runCLI runs the command with args and returns its exit code and outputs.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		name      string
		args      []string
		code      int
		stdout    string // substring expected on stdout ("" for none)
		stderr    string // substring expected on stderr
		notStderr string
	}{
		{name: "no args", args: nil, code: exitUsage, stderr: "Usage:"},
		{name: "help", args: []string{"help"}, code: exitOK, stdout: "bulwark demo"},
		{name: "unknown command", args: []string{"frobnicate"}, code: exitUsage, stderr: `unknown command "frobnicate"`},
		{name: "demo help", args: []string{"demo", "--help"}, code: exitOK, stderr: "Usage: bulwark demo"},
		{name: "inspect help", args: []string{"inspect", "-h"}, code: exitOK, stderr: "--prefix"},
		{name: "unknown flag", args: []string{"demo", "--bogus"}, code: exitUsage, stderr: "flag provided but not defined: -bogus"},
		{name: "demo extra arg", args: []string{"demo", "now"}, code: exitUsage, stderr: "demo takes no arguments"},
		{name: "demo bad replicas", args: []string{"demo", "--replicas", "0"}, code: exitUsage, stderr: "--replicas must be between 1 and 9"},
		{name: "demo bad limit", args: []string{"demo", "--limit", "-1"}, code: exitUsage, stderr: "--limit must be at least 1"},
		{name: "demo bad load", args: []string{"demo", "--load", "0"}, code: exitUsage, stderr: "--load must be between"},
		{name: "demo short window", args: []string{"demo", "--window", "10ms"}, code: exitUsage, stderr: "--window must be at least 50ms"},
		{name: "demo fractional window", args: []string{"demo", "--window", "100500us"}, code: exitUsage, stderr: "whole number of milliseconds"},
		{name: "demo short duration", args: []string{"demo", "--window", "1s", "--duration", "2s"}, code: exitUsage, stderr: "at least three windows"},
		{name: "demo bad prefix", args: []string{"demo", "--short", "--prefix", "a{b}"}, code: exitUsage, stderr: "prefix"},
		{name: "inspect without redis", args: []string{"inspect"}, code: exitUsage, stderr: "--redis URL is required"},
		{name: "inspect bad scheme", args: []string{"inspect", "--redis", "http://127.0.0.1:6379"}, code: exitUsage, stderr: "bad --redis URL"},
		{name: "inspect no scheme", args: []string{"inspect", "--redis", "127.0.0.1:6379"}, code: exitUsage, stderr: "want redis://host:port"},
		{name: "inspect bad db", args: []string{"inspect", "--redis", "redis://127.0.0.1:6379/notadb"}, code: exitUsage, stderr: "bad --redis URL"},
		{name: "inspect empty prefix", args: []string{"inspect", "--redis", "redis://127.0.0.1:6379", "--prefix", ""}, code: exitUsage, stderr: "--prefix must not be empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			if tc.stdout != "" && !strings.Contains(stdout, tc.stdout) {
				t.Errorf("stdout = %q, want it to contain %q", stdout, tc.stdout)
			}
			if tc.stderr != "" && !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tc.stderr)
			}
		})
	}
}

func TestUnreachableRedis(t *testing.T) {
	addr := closedPort(t)
	for _, cmd := range [][]string{
		{"inspect", "--redis", "redis://" + addr},
		{"demo", "--redis", "redis://" + addr},
	} {
		code, _, stderr := runCLI(t, cmd...)
		if code != exitFailure {
			t.Errorf("%v: exit code = %d, want %d", cmd, code, exitFailure)
		}
		want := "redis at " + addr + " is unreachable"
		if !strings.Contains(stderr, want) {
			t.Errorf("%v: stderr = %q, want it to contain %q", cmd, stderr, want)
		}
	}
}

func TestParseFlagsAfterPositional(t *testing.T) {
	fs := newFlagSet("x", "x", &bytes.Buffer{})
	url := fs.String("redis", "", "")
	pos, err := parseFlags(fs, []string{"reset", "payments", "--redis", "redis://h:1"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(pos, " ") != "reset payments" || *url != "redis://h:1" {
		t.Errorf("positional = %q, redis = %q; want [reset payments], redis://h:1", pos, *url)
	}
}
