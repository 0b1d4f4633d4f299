package health

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// httpServer serves the test pages on l inside its namespace.
func httpServer(t *testing.T, l net.Listener, tlsConf *tls.Config) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello gvs world\n")) })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/host", func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "www.example" {
			http.Error(w, "wrong host "+r.Host, http.StatusMisdirectedRequest)
			return
		}
		w.Write([]byte("vhost ok"))
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 200<<10) + "needle"))
	})
	mux.HandleFunc("/stall", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("partial "))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	})
	srv := &http.Server{Handler: mux, TLSConfig: tlsConf, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	if tlsConf != nil {
		go srv.ServeTLS(l, "", "")
	} else {
		go srv.Serve(l)
	}
	t.Cleanup(func() { srv.Close() })
}

// selfSigned returns a certificate for ip, and a pool trusting it.
func selfSigned(t *testing.T, ip string) (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gvs test real"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP(ip)},
		DNSNames:              []string{"www.example"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

func TestHTTPCheck(t *testing.T) {
	_, prober, real := newTopo(t)
	httpServer(t, listen(t, real, realV4+":80"), nil)
	httpServer(t, listen(t, real, "["+realV6+"]:8080"), nil)
	hang := listen(t, real, realV4+":81") // accepts and never answers
	serve(hang, func(c net.Conn) {
		time.Sleep(3 * time.Second)
		c.Close()
	})
	short := 300 * time.Millisecond
	r80 := tgt(realV4, 80)
	get := func(kind, path string) Check { return Check{Kind: kind, Path: path} }

	// Status.
	expect(t, run(t, prober, get(KindHTTP, "/ok"), r80), true, "GET http://198.18.1.2:80/ok: status 200")
	expect(t, run(t, prober, get(KindHTTP, "/fail"), r80), false, "GET http://198.18.1.2:80/fail: status 503 (want [200-399])")
	expect(t, run(t, prober, get(KindHTTP, "/nothing"), r80), false, "status 404")
	expect(t, run(t, prober, get(KindHTTP, "/moved"), r80), true, "status 302") // not followed
	only200 := get(KindHTTP, "/moved")
	only200.Status = []StatusRange{{200, 200}}
	expect(t, run(t, prober, only200, r80), false, "status 302 (want [200])")
	maint := get(KindHTTP, "/fail")
	maint.Status = []StatusRange{{503, 503}}
	expect(t, run(t, prober, maint, r80), true, "status 503")
	expect(t, run(t, prober, get(KindHTTP, "/ok"), tgt(realV6, 8080)), true, "GET http://[2001:db8:1::2]:8080/ok: status 200")

	// Host header.
	expect(t, run(t, prober, get(KindHTTP, "/host"), r80), false, "status 421")
	vhost := get(KindHTTP, "/host")
	vhost.Host = "www.example"
	expect(t, run(t, prober, vhost, r80), true, "status 200")

	// Content.
	content := func(path, contains, re string, maxBody int) Check {
		return Check{Kind: KindHTTPContent, Path: path, Contains: contains, Regexp: re, MaxBody: maxBody}
	}
	expect(t, run(t, prober, content("/ok", "gvs", "", 0), r80), true, `status 200, "gvs" in the body`)
	expect(t, run(t, prober, content("/ok", "nginx", "", 0), r80), false, `content missing: "nginx" not in the first 16 bytes`)
	expect(t, run(t, prober, content("/ok", "", `hello \w+ world`, 0), r80), true, "regexp")
	expect(t, run(t, prober, content("/ok", "", `^world`, 0), r80), false, "content missing")
	expect(t, run(t, prober, content("/fail", "maintenance", "", 0), r80), false, "status 503") // status first
	expect(t, run(t, prober, content("/big", "needle", "", 0), r80), false, "not in the first 65536 bytes")
	expect(t, run(t, prober, content("/big", "needle", "", 300<<10), r80), true, "in the body")
	stall := content("/stall", "complete", "", 0)
	stall.Timeout = short
	expect(t, run(t, prober, stall, r80), false, "reading the body (8 bytes so far")
	stall.Contains = "partial"
	expect(t, run(t, prober, stall, r80), true, `"partial" in the body`)
	withContent := get(KindHTTP, "/ok") // http may check content too
	withContent.Contains = "world"
	expect(t, run(t, prober, withContent, r80), true, `"world" in the body`)

	// Failures below HTTP.
	expect(t, run(t, prober, Check{Kind: KindHTTP, Timeout: short}, tgt(realV4, 81)), false, "read response: timeout after 300ms")
	expect(t, run(t, prober, get(KindHTTP, "/"), tgt(realV4, 82)), false, "connect to 198.18.1.2:82: connection refused")
	expect(t, run(t, prober, Check{Kind: KindHTTP, Timeout: short}, tgt(blackholeV4, 80)), false, "connect to 198.18.1.99:80: timeout after 300ms")
}

func TestHTTPSCheck(t *testing.T) {
	_, prober, real := newTopo(t)
	cert, roots := selfSigned(t, realV4)
	httpServer(t, listen(t, real, realV4+":443"), &tls.Config{Certificates: []tls.Certificate{cert}})
	r443 := tgt(realV4, 443)

	expect(t, run(t, prober, Check{Kind: KindHTTPS, Path: "/ok"}, r443), true, "GET https://198.18.1.2:443/ok: status 200")
	expect(t, run(t, prober, Check{Kind: KindHTTPS, Path: "/fail"}, r443), false, "status 503")
	expect(t, run(t, prober, Check{Kind: KindHTTPS, Path: "/ok", Contains: "gvs"}, r443), true, `"gvs" in the body`)
	// Verification: against the system roots the self-signed certificate
	// fails; against its own root it passes, by IP and by name.
	expect(t, run(t, prober, Check{Kind: KindHTTPS, Path: "/ok", TLSVerify: true}, r443), false, "TLS handshake: tls: failed to verify certificate")
	expect(t, run(t, prober, Check{Kind: KindHTTPS, Path: "/ok", TLSVerify: true, TLSRootCAs: roots}, r443), true, "status 200")
	expect(t, run(t, prober, Check{Kind: KindHTTPS, Path: "/host", Host: "www.example", TLSVerify: true, TLSRootCAs: roots}, r443), true, "status 200")
	expect(t, run(t, prober, Check{Kind: KindHTTPS, Path: "/ok", TLSVerify: true, TLSRootCAs: roots, TLSServerName: "other.example"}, r443), false, "certificate is valid for www.example, not other.example")
	// Plain HTTP to a TLS port fails with the server's answer.
	expect(t, run(t, prober, Check{Kind: KindHTTP, Path: "/ok"}, r443), false, "status 400")
}
