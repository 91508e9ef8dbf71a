//go:build !linux

package main

import (
	"syscall"
	"time"
)

// sysProcAttr is nil outside Linux: servers are stopped by the program's
// cleanup only.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// processCPU is not measured outside Linux; the report shows 0.
func processCPU() time.Duration { return 0 }
