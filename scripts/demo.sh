#!/usr/bin/env bash
# make demo: a client, a router, gvs and three backends in network
# namespaces (addresses from 198.18.0.0/15), gvsd balancing a NAT service
# over the backends with weights 3:2:1, a bounded burst of HTTP requests on
# new connections, the per-real distribution and gvs's counters; everything
# is removed at the end, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/bin}
REQS=${REQS:-600}
P="gvsdemo$$"
VIP=198.18.250.10
WORK=$(mktemp -d)
GVSD_PID=""

ns() { echo "$P-$1"; }
x() { ip netns exec "$(ns "$1")" "${@:2}"; }

cleanup() {
  set +e
  [ -n "$GVSD_PID" ] && kill "$GVSD_PID" 2>/dev/null && wait "$GVSD_PID" 2>/dev/null
  for n in cl rt gvs b1 b2 b3 sw; do
    ip netns pids "$(ns $n)" 2>/dev/null | xargs -r kill 2>/dev/null
    ip netns del "$(ns $n)" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ "$(id -u)" != 0 ]; then echo "make demo needs root (network namespaces)"; exit 1; fi

echo "== building"
mkdir -p "$BIN"
go build -o "$BIN/gvsd" ./cmd/gvsd
go build -o "$BIN/gvs-backend" ./cmd/gvs-backend
go build -o "$BIN/gvsctl" ./cmd/gvsctl

echo "== namespaces: client -> router -> gvs (one-arm, NAT) -> 3 backends"
for n in sw cl rt gvs b1 b2 b3; do ip netns add "$(ns $n)"; x $n ip link set lo up; done
x sw ip link add br0 type bridge
x sw ip link set br0 up
# veth to the LAN bridge: $1 namespace, $2 address
lan() {
  ip link add "$1" netns "$(ns $1)" type veth peer name "p-$1" netns "$(ns sw)"
  x sw ip link set "p-$1" master br0 up
  x "$1" ip link set "$1" name eth0
  x "$1" ip addr add "$2" dev eth0
  x "$1" ip link set eth0 up
}
lan gvs 198.18.1.1/24
lan rt 198.18.1.254/24
for i in 1 2 3; do lan b$i 198.18.1.1$i/24; done
ip link add c0 netns "$(ns cl)" type veth peer name c1 netns "$(ns rt)"
x cl ip link set c0 name eth0; x cl ip addr add 198.18.0.2/24 dev eth0; x cl ip link set eth0 up
x rt ip link set c1 name eth1; x rt ip addr add 198.18.0.1/24 dev eth1; x rt ip link set eth1 up
x cl ip route add default via 198.18.0.1
x rt sysctl -qw net.ipv4.ip_forward=1
x rt ip route add $VIP/32 via 198.18.1.1
x gvs ip route add default via 198.18.1.254
x gvs sysctl -qw net.ipv4.ip_forward=0
for i in 1 2 3; do
  x b$i ip route add default via 198.18.1.1   # NAT: replies go back through gvs
  x b$i ethtool -K eth0 tx off >/dev/null 2>&1 || true
done
x cl ethtool -K eth0 tx off >/dev/null 2>&1 || true
x rt ethtool -K eth1 tx off >/dev/null 2>&1 || true
x rt ethtool -K eth0 tx off >/dev/null 2>&1 || true

echo "== backends"
for i in 1 2 3; do ip netns exec "$(ns b$i)" "$BIN/gvs-backend" --name "backend$i" --http :8080 & done

cat > "$WORK/gvsd.toml" <<CONF
[global]
workers = 1
sessions = 65536

[[port]]
name = "eth0"
driver = "${DRIVER:-auto}"

[[service]]
proto = "tcp"
vip = "$VIP"
port = 80
scheduler = "wrr"
method = "nat"
  [[service.real]]
  addr = "198.18.1.11"
  port = 8080
  weight = 3
  [[service.real]]
  addr = "198.18.1.12"
  port = 8080
  weight = 2
  [[service.real]]
  addr = "198.18.1.13"
  port = 8080
  weight = 1
CONF
for i in 1 2 3; do x gvs ping -c1 -W1 198.18.1.1$i >/dev/null 2>&1 || true; done

echo "== gvsd"
ip netns exec "$(ns gvs)" "$BIN/gvsd" --config "$WORK/gvsd.toml" --socket "$WORK/gvsd.sock" >"$WORK/gvsd.out" 2>"$WORK/gvsd.log" &
GVSD_PID=$!
for _ in $(seq 100); do
  grep -q "gvs started" "$WORK/gvsd.log" 2>/dev/null && break
  kill -0 $GVSD_PID 2>/dev/null || { cat "$WORK/gvsd.log"; exit 1; }
  sleep 0.1
done
sed 's/^/  gvsd: /' "$WORK/gvsd.log"
for i in 1 2 3; do
  for _ in $(seq 50); do x b$i bash -c "exec 3<>/dev/tcp/127.0.0.1/8080" 2>/dev/null && break; sleep 0.1; done
done

echo "== $REQS HTTP requests from the client to $VIP:80, one new connection each"
start=$(date +%s%N)
x cl bash -c "for i in \$(seq $REQS); do curl -s --max-time 2 http://$VIP/ || echo FAILED; done" >"$WORK/answers"
echo "  took $(( ($(date +%s%N) - start) / 1000000 )) ms"
echo "== distribution (weights 3:2:1)"
sort "$WORK/answers" | uniq -c | sed 's/^/  /'
sleep 0.2   # the workers publish their counters every 20 ms
echo "== gvsctl -Ln --stats (ipvsadm's view, from gvsd's control socket)"
"$BIN/gvsctl" --socket "$WORK/gvsd.sock" -Ln --stats | sed 's/^/  /'
kill -TERM $GVSD_PID; wait $GVSD_PID || true; GVSD_PID=""
tail -n 3 "$WORK/gvsd.log" | sed "s/^/  gvsd: /"
echo "== gvs counters"
sed 's/^/  /' "$WORK/gvsd.out"
grep -q FAILED "$WORK/answers" && { echo "some requests failed"; exit 1; }
echo "== done"
