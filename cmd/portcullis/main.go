// Command portcullis drops login-abuse traffic to a mail server in the
// kernel and manages what it drops.
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	err := run(os.Args, os.Stdout, os.Stderr)
	var code exitStatus
	if errors.As(err, &code) {
		os.Exit(int(code)) // the command has printed its own line
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "portcullis: %s\n", oneLine(err))
		os.Exit(1)
	}
}
