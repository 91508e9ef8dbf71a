module github.com/bulwark-go/bulwark/cmd/bulwark

go 1.26.0

require (
	github.com/alicebob/miniredis/v2 v2.40.0
	github.com/bulwark-go/bulwark v0.0.0
	github.com/bulwark-go/bulwark/openapi v0.0.0
	github.com/redis/go-redis/v9 v9.23.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/getkin/kin-openapi v0.153.0 // indirect
	github.com/go-openapi/jsonpointer v0.22.5 // indirect
	github.com/go-openapi/swag/jsonname v0.25.5 // indirect
	github.com/rogpeppe/go-internal v1.16.0 // indirect
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3 // indirect
	github.com/yuin/gopher-lua v1.1.1 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	go.yaml.in/yaml/v4 v4.0.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)

replace (
	github.com/bulwark-go/bulwark => ../..
	github.com/bulwark-go/bulwark/openapi => ../../openapi
	github.com/bulwark-go/bulwark/telemetry/bulwarkprom => ../../telemetry/bulwarkprom
)
