#!/usr/bin/env bash
# PostgreSQL at 127.0.0.1:5432 for the postgres tests: Debian's server, the `test` database,
# trust auth on loopback. Nothing runs when a machine starts: installs it when missing, starts
# the cluster when down. Idempotent; about 1 s when it already runs.
set -euo pipefail

log() { printf '[provision-postgres] %s\n' "$*"; }

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
  log "installing Debian's postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends postgresql >/dev/null
fi
version=$(ls /etc/postgresql | sort -V | tail -n1)
conf=/etc/postgresql/$version/main

# Trust on loopback: the tests connect as postgres without a password. Pods on the local
# cluster's real node (10.244.0.0/24, scripts/cluster/node.sh) connect with a password, to the
# node bridge's gateway address; nothing else is let in.
hba=$conf/pg_hba.conf
if ! grep -q '^# autodevhub-ci v2' "$hba"; then
  log "trust auth on 127.0.0.1 and ::1, passwords from the real node's pods ($hba)"
  tmp=$(mktemp)
  {
    echo "# autodevhub-ci v2: the test suite connects as postgres on loopback"
    echo "local   all all                trust"
    echo "host    all all 127.0.0.1/32   trust"
    echo "host    all all ::1/128        trust"
    echo "host    all all 10.244.0.0/24  scram-sha-256"
    grep -v '^\(local\|host\|# autodevhub-ci\)' "$hba"
  } >"$tmp"
  install -o postgres -g postgres -m 0640 "$tmp" "$hba"
  rm -f "$tmp"
  if pg_isready -q -h 127.0.0.1 -p 5432; then
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  fi
fi

# Listen beyond loopback, for the pods (the bridge's address may not exist yet when PostgreSQL
# starts); pg_hba.conf above decides who gets in.
listen="$conf/conf.d/autodevhub-ci.conf"
if [ ! -f "$listen" ]; then
  mkdir -p "$conf/conf.d"
  echo "listen_addresses = '*'" >"$listen"
  if pg_isready -q -h 127.0.0.1 -p 5432; then
    log "restarting PostgreSQL $version to listen for the real node's pods"
    pg_ctlcluster --skip-systemctl-redirect "$version" main restart
  fi
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
fi
pg_isready -q -h 127.0.0.1 -p 5432 || {
  log "PostgreSQL did not start; see /var/log/postgresql/postgresql-$version-main.log"
  tail -n 20 "/var/log/postgresql/postgresql-$version-main.log" || true
  exit 1
}
if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1; then
  log "creating database test"
  psql -h 127.0.0.1 -U postgres -qc 'CREATE DATABASE test'
fi
log "PostgreSQL $version ready at 127.0.0.1:5432"
