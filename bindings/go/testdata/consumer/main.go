// SPDX-License-Identifier: Apache-2.0
// A program outside the module that `go get`s the binding: the go get test builds and runs it.

package main

import (
	"errors"
	"fmt"
	"os"

	vmnetbroker "github.com/vmnet-broker/vmnet-broker/bindings/go"
)

func main() {
	network, err := vmnetbroker.AcquireNetwork("host")
	if err != nil {
		fmt.Fprintln(os.Stderr, "acquire host:", err)
		os.Exit(1)
	}
	_, err = vmnetbroker.AcquireNetwork("no-such-network")
	fmt.Println("library", vmnetbroker.Version(), "network", network.Name,
		network.Bridge, "not found", errors.Is(err, vmnetbroker.ErrNotFound))
}
