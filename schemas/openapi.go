package schemas

import _ "embed"

// OpenAPI is the OpenAPI 3.0 description of the HTTP API (openapi.yaml):
// every route of api.Routes, its parameters, bodies, answers and
// problem documents. The API tests check real answers against it.
//
//go:embed openapi.yaml
var OpenAPI []byte
