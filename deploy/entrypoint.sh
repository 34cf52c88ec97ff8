#!/usr/bin/env bash
# The image's entrypoint: the official /entrypoint, after one optional step for the demo.
#
# HUB_DEMO_SANDBOX_FORWARDS="8701=sandbox-shopify:8701,8702=..." (set by .env.example, for
# `docker compose --profile demo up`) makes each demo sandbox answer on this container's loopback, as the
# sandboxes of `make demo` do. The connectors refuse to send a token or secret over plain http to a host
# that is not this machine; the sandboxes speak plain http, and their credentials are sandbox-only.
# Leave it empty in production: real platforms are reached over https and nothing is forwarded.
set -euo pipefail

IFS=',' read -r -a forwards <<< "${HUB_DEMO_SANDBOX_FORWARDS:-}"
for forward in "${forwards[@]}"; do
  forward="${forward// /}"
  [[ -z "${forward}" ]] && continue
  port="${forward%%=*}"
  target="${forward#*=}"
  # Listens on loopback only: nothing outside this container reaches the forward.
  socat "TCP-LISTEN:${port},bind=127.0.0.1,fork,reuseaddr" "TCP:${target}" &
done

exec /entrypoint "$@"
