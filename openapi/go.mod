module github.com/bulwark-go/bulwark/openapi

go 1.26.0

require github.com/bulwark-go/bulwark v0.0.0

require (
	github.com/getkin/kin-openapi v0.153.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)

replace github.com/bulwark-go/bulwark => ..
