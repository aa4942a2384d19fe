# Sourced by build.sh and ../local-cluster.sh: the pinned versions and where the cluster lives.
# shellcheck source=versions.env
. "$(dirname "${BASH_SOURCE[0]}")/versions.env"
STATE=${AUTODEVHUB_CI_STATE:-/var/lib/autodevhub-ci}
OUT=$STATE/cluster   # binaries (bin/), CRDs (crds/), wrapper modules (src/), clusters (run/)
BIN=$OUT/bin
