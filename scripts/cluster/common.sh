# Sourced by build.sh and ../local-cluster.sh: the pinned versions and where the cluster lives.
# shellcheck source=versions.env
. "$(dirname "${BASH_SOURCE[0]}")/versions.env"
STATE=${AUTODEVHUB_CI_STATE:-/var/lib/autodevhub-ci}
OUT=$STATE/cluster   # binaries (bin/), CRDs (crds/), wrapper modules (src/), clusters (run/)
BIN=$OUT/bin
# Programs built from this repository's own Go sources are versioned by the hash of the source.
_cluster_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PAUSE_VERSION=$(sha256sum "$_cluster_dir/pause/main.go" | cut -c1-12)
COREDNS_BUILD=$COREDNS_VERSION-$(sha256sum "$_cluster_dir/coredns/main.go" | cut -c1-12)
