package lua

import (
	_ "embed"
)

//go:embed config_set.lua
var configSetSrc string

// ConfigSet writes the live value of one named policy (package control):
// version counter, live value, history and announcement change together or
// not at all, and only when the caller read the latest value
// (compare-and-set).
//
//	KEYS[1]  version counter (integer)
//	KEYS[2]  live values: HASH, name -> "<version> <layer JSON>"
//	KEYS[3]  the policy's history: LIST of "<version> <record JSON>", newest first
//	ARGV[1]  policy name
//	ARGV[2]  version of the live value the caller read ("0": none)
//	ARGV[3]  new layer as JSON
//	ARGV[4]  history record as JSON
//	ARGV[5]  history records kept
//	ARGV[6]  pub/sub channel; message "config <name> <version>"
//
// Reply: {1, new version} when written, {0, current version} when ARGV[2]
// was stale.
var ConfigSet = newScript(configSetSrc)
