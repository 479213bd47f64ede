// Package schemas embeds the schemas of etatcivil's public formats: JSON
// Schemas such as manifest.schema.json (the batch manifest, JSON Schema
// 2020-12) and registries.schema.json, and the official SEDA 2.3 XML
// schemas (seda-2.3/, unchanged, with their catalog.xml) that archive
// transfers must validate against.
// The files are the contract: hubs may validate their manifests with them,
// and the server compiles the same bytes, so both sides apply one rule set.
package schemas

import "embed"

// FS holds every *.json file of this directory. New schemas dropped here
// are picked up without touching this file.
//
//go:embed *.json
var FS embed.FS

// SEDA holds the official SEDA 2.3 schemas (seda-2.3/*.xsd) and the
// catalog that maps the W3C schemas they import to the local copies.
//
//go:embed seda-2.3
var SEDA embed.FS

// Lot is our XML Schema for INSEE-shaped lots (namespace
// urn:etatcivil:lot:1): the format the insee connector sends and the
// registry simulator validates.
//
//go:embed etatcivil-lot-1.xsd
var Lot []byte
