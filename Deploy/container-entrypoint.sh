#!/bin/sh
# The Shoal container's entry point: `head` (head and a node daemon), `node` (a node daemon that
# joins SHOAL_HEAD_ADDRESS), or any other command (e.g. `cluster submit …`).
set -eu
ip=${SHOAL_NODE_IP:-$(hostname -i | awk '{print $1}')}
case "${1:-head}" in
  head) exec cluster start --head --block --port "$SHOAL_PORT" --node-ip-address "$ip" --node-id "${SHOAL_NODE_ID:-head}" ;;
  node)
    : "${SHOAL_HEAD_ADDRESS:?set SHOAL_HEAD_ADDRESS=HOST:PORT of the head}"
    exec cluster start --block --address "$SHOAL_HEAD_ADDRESS" --node-ip-address "$ip" ;;
  *) exec "$@" ;;
esac
