package openapi

import (
	"github.com/bulwark-go/bulwark/control"
	"github.com/bulwark-go/bulwark/policy"
)

// WithLiveConfig makes every operation's stack follow its live
// configuration in Redis (package control): the document's x-bulwark
// values are the defaults, the live value stored under the operation's
// name (its stack's name: Spec.Name, else the operationId, else
// "METHOD:path") overrides them field by field, and every later change
// applies on the next request, without a redeploy and without losing the
// patterns' state where the change allows (see package control). Change
// a value with `bulwark config set NAME field=value --reason ...` or the
// console.
//
// r is the service's replica, built on the Redis (and prefix) the store
// given to WithStore uses; its Close stops the updates and closes the
// stacks. A nil r leaves the option out.
//
//	live, err := control.NewReplica(rdb, control.WithPrefix("shop"))
//	mw, err := api.Middleware(openapi.WithStore(store), openapi.WithLiveConfig(live))
func WithLiveConfig(r *control.Replica) Option { return func(o *options) { o.live = r } }

// buildStack builds one operation's stack: through the replica with
// WithLiveConfig, else from the document alone.
func (o *options) buildStack(name string, spec policy.Spec) (*policy.Stack, error) {
	if o.live != nil {
		return o.live.Build(name, spec, o.policyOptions()...)
	}
	return policy.Build(name, spec, o.policyOptions()...)
}
