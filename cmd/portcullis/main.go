// Command portcullis drops login-abuse traffic to a mail server in the
// kernel and manages what it drops.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := run(os.Args, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "portcullis: %s\n", oneLine(err))
		os.Exit(1)
	}
}
