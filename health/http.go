package health

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"time"
)

// httpChecker is the http, https and http-content check: a GET of Path
// with Host, success when the status is in Status and, if Contains or
// Regexp is set, the first MaxBody bytes of the body contain or match it.
//
// Every probe uses a new connection ("Connection: close"), made on the
// calling goroutine: no keep-alive between probes, so each probe proves
// that the real still accepts connections, and no pooled connection can
// hide a dead listener or outlive a target. The body is read only when
// content is checked, and never beyond MaxBody.
type httpChecker struct {
	kind     string
	addr     netip.AddrPort
	src      netip.Addr
	url      *url.URL
	host     string
	status   []StatusRange
	contains []byte
	re       *regexp.Regexp
	maxBody  int
	tls      *tls.Config
	timeout  time.Duration
}

func newHTTPChecker(c Check, t *Target) (*httpChecker, error) {
	h := &httpChecker{
		kind:     c.Kind,
		addr:     netip.AddrPortFrom(t.Addr, c.Port),
		src:      c.Source,
		host:     c.Host,
		status:   c.Status,
		contains: []byte(c.Contains),
		maxBody:  c.MaxBody,
		timeout:  c.Timeout,
	}
	scheme := "http"
	if c.Kind == KindHTTPS {
		scheme = "https"
		name := c.TLSServerName
		if name == "" && c.Host != "" {
			name = c.Host
			if hn, _, err := net.SplitHostPort(c.Host); err == nil {
				name = hn
			}
		}
		if name == "" {
			name = t.Addr.String()
		}
		h.tls = &tls.Config{
			ServerName:         name,
			InsecureSkipVerify: !c.TLSVerify,
			RootCAs:            c.TLSRootCAs,
			MinVersion:         tls.VersionTLS12,
		}
	}
	u, err := url.Parse(c.Path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: path %q: %v", ErrBadCheck, c.Kind, c.Path, err)
	}
	u.Scheme, u.Host = scheme, h.addr.String()
	h.url = u
	if c.Regexp != "" {
		if h.re, err = regexp.Compile(c.Regexp); err != nil {
			return nil, fmt.Errorf("%w: %s: regexp: %v", ErrBadCheck, c.Kind, err)
		}
	}
	return h, nil
}

func (h *httpChecker) String() string {
	s := fmt.Sprintf("%s GET %s", h.kind, h.url)
	if h.host != "" {
		s += " Host " + h.host
	}
	return s
}

// Check requests the page and judges status and content.
func (h *httpChecker) Check(ctx context.Context) Result {
	start := time.Now()
	what := "GET " + h.url.String()
	conn, err := dialTCP(ctx, h.src, h.addr)
	if err != nil {
		return fail(start, "%s: connect to %s: %s", what, h.addr, describe(err, h.timeout))
	}
	defer conn.Close()
	conn.SetDeadline(deadline(ctx, h.timeout))
	if h.tls != nil {
		tc := tls.Client(conn, h.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(start, "%s: TLS handshake: %s", what, describe(err, h.timeout))
		}
		conn = tc
	}
	req := &http.Request{
		Method:     http.MethodGet,
		URL:        h.url,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     http.Header{"User-Agent": {"gvs-health/1"}, "Accept": {"*/*"}},
		Host:       h.host,
		Close:      true,
	}
	bw := bufio.NewWriterSize(conn, 512)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return fail(start, "%s: send request: %s", what, describe(err, h.timeout))
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 4096), req)
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return fail(start, "%s: connection closed before a response", what)
		}
		return fail(start, "%s: read response: %s", what, describe(err, h.timeout))
	}
	defer resp.Body.Close()
	if !statusIn(resp.StatusCode, h.status) {
		return fail(start, "%s: status %d (want %v)", what, resp.StatusCode, h.status)
	}
	if len(h.contains) == 0 && h.re == nil {
		return pass(start, "%s: status %d", what, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(h.maxBody)))
	found := false
	if h.re != nil {
		found = h.re.Match(body)
	} else {
		found = bytes.Contains(body, h.contains)
	}
	switch {
	case found:
		return pass(start, "%s: status %d, %s in the body", what, resp.StatusCode, h.want())
	case err != nil:
		return fail(start, "%s: status %d; reading the body (%d bytes so far, %s not in them): %s", what, resp.StatusCode, len(body), h.want(), describe(err, h.timeout))
	}
	return fail(start, "%s: status %d; content missing: %s not in the first %d bytes of the body", what, resp.StatusCode, h.want(), len(body))
}

// want names what the body must hold.
func (h *httpChecker) want() string {
	if h.re != nil {
		return fmt.Sprintf("regexp %q", h.re.String())
	}
	return fmt.Sprintf("%q", h.contains)
}

func statusIn(code int, set []StatusRange) bool {
	for _, r := range set {
		if r.Lo <= code && code <= r.Hi {
			return true
		}
	}
	return false
}
