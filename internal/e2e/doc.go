// Package e2e drives the real binaries (bin/etatcivil built by make) end
// to end: a server process, the upload client, kills and restarts, and
// the memory of every etatcivil process under hostile input.
package e2e
