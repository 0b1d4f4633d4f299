package ipvsadm

// Usage is gvsctl's help text.
const Usage = `Usage (ipvsadm's grammar):
  gvsctl -A|E -t|u|--any VIP[:PORT] [-s SCHED] [-p [TIMEOUT]] [-M NETMASK] [-b FLAGS] [-o]
              [-g|-m|-i|--fullnat|--l3dsr DSCP] [--laddr ADDR ...] [--slow-start DURATION]
              [--on-remove drain|drop] [--maglev-size N] [--client-port IFACE]
  gvsctl -D -t|u|--any VIP[:PORT]
  gvsctl -C
  gvsctl -R                      < rules (ipvsadm -S format)
  gvsctl -S [-n] [--format ipvsadm|toml]
  gvsctl -a|e -t|u|--any VIP[:PORT] -r RIP[:PORT] [-g|-m|-i|--fullnat|--l3dsr [DSCP]] [-w WEIGHT]
              [--state up|drain|down]
  gvsctl -d -t|u|--any VIP[:PORT] -r RIP[:PORT]
  gvsctl -L|l [-n] [--stats|--rate|-c] [--exact] [--nosort] [-t|u|--any VIP[:PORT]]
  gvsctl -Z [-t|u|--any VIP[:PORT]]
  gvsctl -h | -v
Subcommands (what ipvsadm lacks):
  gvsctl reload                  re-read gvsd's configuration file
  gvsctl health                  health-check state of every real
  gvsctl vrrp                    VRRP instances
  gvsctl bgp [drain|undrain]     BGP sessions and announced VIPs; drain adds the [bgp.drain]
                                 attributes (communities, MED, AS-path prepend)
  gvsctl conns [--service [PROTO:]VIP:PORT] [--real ADDR:PORT] [--client ADDR] [--limit N]
                                 sessions (default limit 1000; 0: all)
  gvsctl stats [--service [PROTO:]VIP:PORT] [--watch [INTERVAL]] [--count N]
                                 services, reals, workers, ports (rates over the daemon's
                                 last interval); --watch redraws every INTERVAL (default 1s,
                                 at least 0.5s) until Ctrl-C
  gvsctl version                 versions of gvsctl and gvsd

Commands:
  --add-service     -A   add a virtual service
  --edit-service    -E   edit a virtual service: persistence, netmask and flags as
                         given (absent: off, as ipvsadm); other settings not given
                         (scheduler included) are kept
  --delete-service  -D   delete a virtual service
  --clear           -C   delete every virtual service
  --restore         -R   add the rules read from stdin (ipvsadm -S format)
  --save            -S   print the rules (ipvsadm -S format, or the TOML configuration)
  --add-server      -a   add a real server
  --edit-server     -e   edit a real server: what is given changes, the rest is kept
  --delete-server   -d   delete a real server
  --list            -L|-l  list the table (no command at all does the same)
  --zero            -Z   zero the counters of a service or of all
  --help            -h   this help
  --version         -v   versions of gvsctl and gvsd

Options:
  --tcp-service  -t VIP[:PORT]   a TCP service; IPv6 as [2001:db8::1]:80
  --udp-service  -u VIP[:PORT]   a UDP service
  --any VIP[:PORT]               a service for TCP and UDP (gvs); port 0: every port
                                 (also --any-service)
  --scheduler    -s SCHED        rr wrr lc wlc sed nq sh dh lblc lblcr fo ovf twos mh
                                 (default wlc)
  --persistent   -p [TIMEOUT]    persistence, in seconds (default 300)
  --netmask      -M NETMASK      persistence granularity: 255.255.255.0 or a prefix
                                 length (IPv6: a prefix length)
  --sched-flags  -b FLAGS        sh-fallback,sh-port (mh-..., flag-1, flag-2)
  --ops          -o              one-packet scheduling (UDP); -o json is the output format
  --real-server  -r RIP[:PORT]   a real server; the port defaults to the service's
  --gatewaying   -g              direct routing (dr, L2 DSR; the default)
  --masquerading -m              NAT
  --ipip         -i              IP-in-IP tunnel (also --tunnel)
  --fullnat                      full NAT (gvs; source from --laddr)
  --l3dsr [DSCP]                 L3 DSR (gvs) with the service's DSCP (1..63): required
                                 on -A/-E; on -a/-e it sets the service's when it has none
  --laddr ADDR                   -A/-E: a local address for fullnat and tunnel (repeatable)
  --slow-start DURATION          -A/-E: ramp a new real's share up over DURATION (gvs)
  --on-remove drain|drop         -A/-E: sessions of a removed real (gvs; default drain)
  --maglev-size N                -A/-E: mh lookup table size, a prime (gvs)
  --client-port IFACE            -A/-E: the port clients arrive on (gvs)
  --state up|drain|down          -a/-e: administrative state of the real (gvs)
  --weight       -w WEIGHT       real server weight (default 1)
  --numeric      -n              numeric output (gvsctl is always numeric)
  --connection   -c              -L: list the sessions
  --stats                        -L: counters
  --rate                         -L: rates
  --exact        -X              -L: exact numbers, no K/M/G/T
  --nosort                       -L: do not sort services and reals
  --format ipvsadm|toml          -S: the format
  --socket PATH                  gvsd's control socket (default $GVS_SOCKET, else
                                 /run/gvs/gvsd.sock)
  --output       -o json|text    read commands: print the API result as JSON

On -A/-E a forwarding method sets the service's method (default dr); on -a/-e
it overrides it for one real (default: the service's). A real without a port
uses the service's. Addresses are numeric (no DNS); -n is implied. The rules
of -R and the output of -S are in this same language. Exit status: 0 on
success, 1 when gvsd refuses or cannot be reached, 2 on bad usage.
`
