//go:build !race

package distributed_test

// raceBuild: built with -race (see race_on_test.go).
const raceBuild = false
