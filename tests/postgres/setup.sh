#!/usr/bin/env bash
# Makes sure PostgreSQL server binaries are installed (the tests start their own throwaway
# cluster with pg-cluster.sh). Idempotent. On a machine without them, installs Debian's
# postgresql package WITHOUT its default system cluster and without starting any service.
set -euo pipefail
for d in /usr/lib/postgresql/*/bin; do
  [[ -x "$d/pg_ctl" && -x "$d/initdb" ]] && { echo "postgres: $d"; exit 0; }
done
command -v pg_ctl >/dev/null && command -v initdb >/dev/null && { echo "postgres: $(dirname "$(command -v pg_ctl)")"; exit 0; }

echo "postgres: installing server binaries (no system cluster, no service started)"
sudo=""; [[ "$(id -u)" != "0" ]] && sudo="sudo"
$sudo mkdir -p /etc/postgresql-common
# postgresql-common reads this before creating the "main" cluster on install.
echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
# invoke-rc.d asks policy-rc.d whether to start services: 101 = no.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [[ ! -e "$policy" ]]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null; $sudo chmod +x "$policy"; made_policy=1
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
[[ $made_policy == 1 ]] && $sudo rm -f "$policy"
for d in /usr/lib/postgresql/*/bin; do [[ -x "$d/pg_ctl" ]] && { echo "postgres: $d"; exit 0; }; done
echo "postgres: install finished but no pg_ctl found" >&2; exit 1
