// Package bulwarkgrpc puts bulwark's patterns in gRPC interceptors.
package bulwarkgrpc
