package health

import (
	"bufio"
	"net"
	"testing"
	"time"
)

func TestTCPCheck(t *testing.T) {
	_, prober, real := newTopo(t)
	plain := listen(t, real, realV4+":8080")
	serve(plain, func(c net.Conn) { c.Close() })
	banner := listen(t, real, realV4+":2222")
	serve(banner, func(c net.Conn) {
		c.Write([]byte("SSH-2.0-gvs\r\n"))
		c.Close()
	})
	echo := listen(t, real, "["+realV6+"]:7")
	serve(echo, func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Write([]byte(line))
	})
	silent := listen(t, real, realV4+":2223") // accepts, says nothing
	serve(silent, func(c net.Conn) {
		time.Sleep(2 * time.Second)
		c.Close()
	})
	short := 300 * time.Millisecond

	expect(t, run(t, prober, Check{Kind: KindTCP}, tgt(realV4, 8080)), true, "connected to 198.18.1.2:8080")
	expect(t, run(t, prober, Check{Kind: KindTCP, Port: 8081}, tgt(realV4, 8080)), false, "connect to 198.18.1.2:8081: connection refused")
	expect(t, run(t, prober, Check{Kind: KindTCP, Timeout: short}, tgt(blackholeV4, 80)), false, "connect to 198.18.1.99:80: timeout after 300ms")
	expect(t, run(t, prober, Check{Kind: KindTCP, Timeout: short}, tgt(blackholeV6, 80)), false, "timeout after 300ms")

	expect(t, run(t, prober, Check{Kind: KindTCP, Expect: []byte("SSH-2.0")}, tgt(realV4, 2222)), true, `answer starts with "SSH-2.0"`)
	expect(t, run(t, prober, Check{Kind: KindTCP, Expect: []byte("220 ")}, tgt(realV4, 2222)), false, `expected "220 ", got "SSH-"`)
	expect(t, run(t, prober, Check{Kind: KindTCP, Expect: []byte("SSH-2.0-gvs\r\nmore")}, tgt(realV4, 2222)), false, "connection closed after")
	expect(t, run(t, prober, Check{Kind: KindTCP, Expect: []byte("+OK"), Timeout: short}, tgt(realV4, 2223)), false, "timeout after 300ms")
	expect(t, run(t, prober, Check{Kind: KindTCP, Send: []byte("PING gvs\n"), Expect: []byte("PING gvs")}, tgt(realV6, 7)), true, "[2001:db8:1::2]:7")
	expect(t, run(t, prober, Check{Kind: KindTCP, Source: mustAddr(proberV4)}, tgt(realV4, 8080)), true, "connected")
	expect(t, run(t, prober, Check{Kind: KindTCP, Source: mustAddr("198.18.1.50")}, tgt(realV4, 8080)), false, "cannot assign requested address")
}
