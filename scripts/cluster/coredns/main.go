// Cluster DNS for the real node of the local cluster: CoreDNS with only the plugins it needs
// (the full build pulls in every cloud provider's SDK). It runs on the host, on the pod bridge's
// gateway address, answers <service>.<namespace>.svc.cluster.local from the API server and
// forwards other names to the host's resolvers.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

// The order plugins run in, as CoreDNS's plugin.cfg has them.
var directives = []string{"bind", "ready", "health", "errors", "cache", "kubernetes", "forward"}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
