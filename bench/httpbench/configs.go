package httpbench

import (
	"fmt"
	"strings"
)

// nginxConfig renders a backend's nginx configuration: one process
// (master_process off, worker_processes 1), no access log, `return 200
// "ok\n"` on every path, keep-alive connections that last the whole run, a
// large listen backlog. dir holds the pid and temp files.
func nginxConfig(dir string) string {
	return fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 16384;
pid %[1]s/nginx.pid;
error_log stderr error;
events {
  worker_connections 8192;
  multi_accept on;
}
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  client_body_temp_path %[1]s;
  proxy_temp_path %[1]s;
  fastcgi_temp_path %[1]s;
  uwsgi_temp_path %[1]s;
  scgi_temp_path %[1]s;
  server {
    listen %[2]d backlog=65535;
    location / {
      default_type text/plain;
      return 200 "ok\n";
    }
  }
}
`, dir, VIPPort)
}

// nftTable is the name of the nftables table of the nftables contender.
const nftTable = "gvshttp"

// nftRuleset renders the nftables contender: DNAT of VIP:port to the
// backends in turn (numgen inc), as in ENVIRONMENT.md's comparator.
func nftRuleset(vip string, port int, backends []string) string {
	var m []string
	for i, b := range backends {
		m = append(m, fmt.Sprintf("%d : %s", i, b))
	}
	return fmt.Sprintf(`table ip %s {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr %s tcp dport %d dnat to numgen inc mod %d map { %s }
	}
}
`, nftTable, vip, port, len(backends), strings.Join(m, ", "))
}

// haproxyMaxconn stays below what the 20000-descriptor hard limit allows
// (two descriptors per proxied connection); CAP_SYS_RESOURCE is absent, so
// HAProxy cannot raise the limit.
const haproxyMaxconn = 8000

// haproxyConfig renders the HAProxy contender: mode tcp, roundrobin,
// listening on vip:port, nbthread threads.
func haproxyConfig(vip string, port int, backends []string, nbthread int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
  nbthread %d
  maxconn %d

defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s

frontend fe
  bind %s:%d backlog 65535
  maxconn %d
  default_backend be

backend be
  balance roundrobin
`, nbthread, haproxyMaxconn, vip, port, haproxyMaxconn)
	for i, a := range backends {
		fmt.Fprintf(&b, "  server s%d %s:%d\n", i, a, port)
	}
	return b.String()
}

// gvsdConfig renders gvsd's configuration: the afxdp driver on the lb's
// eth0, workers poll-mode workers, one tcp service VIP:port, rr over the
// backends with method (dr or nat).
func gvsdConfig(vip string, port int, method string, backends []string, workers int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `[global]
workers = %d
sessions = 262144

[global.timeouts]
tcp_fin = "5s"

[[port]]
name = "eth0"
driver = "afxdp"

[[service]]
proto = "tcp"
vip = %q
port = %d
scheduler = "rr"
method = %q
`, workers, vip, port, method)
	for _, a := range backends {
		fmt.Fprintf(&b, "\n  [[service.real]]\n  addr = %q\n", a)
	}
	return b.String()
}
