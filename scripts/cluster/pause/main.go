// The pod sandbox's process for the real node of the local cluster (containerd's sandbox_image):
// it holds the pod's namespaces, reaps the children it inherits, and exits on SIGINT or SIGTERM.
// Nothing can be pulled on the machines this runs on, so the image is built here from this file.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for received := range signals {
		if received != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
