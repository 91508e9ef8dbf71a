// Package logs is the module's logging front: a nil-safe *slog.Logger
// wrapper whose repeated lines are rate-limited per key, so an outage
// writes a handful of lines instead of one per call, and an observer that
// turns the state changes among a pattern's events into log lines.
package logs
