// Command etatcivil is the dematerialisation pipeline for French
// civil-status acts: server, workers and client in one binary.
package main

import (
	"os"

	"github.com/etatcivil/etatcivil/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
