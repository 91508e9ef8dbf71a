// Package core holds the helpers every pattern package of this module shares
// and no user needs: the constructors of the module's configuration and
// argument errors, observer emission, time units and timers, and the numeric
// bounds of the Lua side.
package core
