package cluster_test

import (
	"github.com/bulwark-go/bulwark/cluster"
	"github.com/bulwark-go/bulwark/distributed"
)

// Membership is what a distributed.Store counts replicas with. The check
// lives in a test because package distributed imports cluster (for the
// breaker's broadcast).
var _ distributed.ReplicaCounter = (*cluster.Membership)(nil)
