//go:build race

package distributed_test

// raceBuild: built with -race, where sync.Pool drops some of what is put
// back (on purpose, to shake out misuse), so a pooled call is sometimes
// allocated anew.
const raceBuild = true
