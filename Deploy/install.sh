#!/usr/bin/env bash
# Installs Shoal's binaries and systemd units on this machine.
#   Deploy/install.sh head                    # this machine runs the head
#   Deploy/install.sh node HEAD_HOST:PORT     # this machine joins a head
set -euo pipefail
cd "$(dirname "$0")/.."
role=${1:-}
case "$role" in
  head|node) ;;
  *) echo "usage: $0 head | node HEAD_HOST:PORT" >&2; exit 2 ;;
esac
if [ "$role" = node ] && [ -z "${2:-}" ]; then
  echo "usage: $0 node HEAD_HOST:PORT" >&2; exit 2
fi
make deps
swift build -c release --product cluster --product trading -Xswiftc -static-stdlib
bin=$(swift build -c release --show-bin-path)
install -m 0755 "$bin/cluster" "$bin/trading" /usr/local/bin/
# The daemons run as a system user of their own, not as root; its session folder is private.
if ! id shoal >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/shoal --shell /usr/sbin/nologin shoal
fi
install -d /etc/shoal
install -d -m 0700 -o shoal -g shoal /var/lib/shoal
if [ ! -f /etc/shoal/shoal.env ]; then
  node_ip=$(hostname -I 2>/dev/null | awk '{print $1}')
  {
    echo "SHOAL_PORT=6390"
    echo "SHOAL_NODE_IP=${node_ip:-127.0.0.1}"
    echo "SHOAL_HEAD_ADDRESS=${2:-${node_ip:-127.0.0.1}:6390}"
  } > /etc/shoal/shoal.env
fi
install -m 0644 "Deploy/shoal-$role.service" /etc/systemd/system/
systemctl daemon-reload
systemctl enable --now "shoal-$role.service"
echo "shoal-$role is running; see: systemctl status shoal-$role, cluster status --address ..."
