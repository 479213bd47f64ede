// Package schemas embeds the JSON Schemas of etatcivil's public formats,
// such as manifest.schema.json (the batch manifest, JSON Schema 2020-12).
// The files are the contract: hubs may validate their manifests with them,
// and the server compiles the same bytes, so both sides apply one rule set.
package schemas

import "embed"

// FS holds every *.json file of this directory. New schemas dropped here
// are picked up without touching this file.
//
//go:embed *.json
var FS embed.FS
