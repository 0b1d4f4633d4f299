package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"time"
)

// Client talks to gvsd over its control socket. It is safe for concurrent
// use; requests are sent one at a time.
type Client struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
	next uint64
	// Timeout bounds each call (default 10 s).
	Timeout time.Duration
}

// Dial connects to the control socket at path.
func Dial(path string) (*Client, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("connect to gvsd at %s: %w", path, err)
	}
	return &Client{conn: c, r: bufio.NewReaderSize(c, 64<<10), Timeout: 10 * time.Second}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Call sends op with args (nil for none) and decodes the result into result
// (nil to ignore it). A daemon error is returned as *Error.
func (c *Client) Call(op string, args, result any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next++
	req := Request{Version: Version, ID: c.next, Op: op}
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return fmt.Errorf("encode %s arguments: %w", op, err)
		}
		req.Args = b
	}
	line, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if len(line) >= MaxRequest {
		return Errorf(CodeTooLarge, "%s request of %d bytes exceeds %d", op, len(line), MaxRequest)
	}
	_ = c.conn.SetDeadline(time.Now().Add(c.Timeout))
	if _, err := c.conn.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("send %s: %w", op, err)
	}
	reply, err := c.r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read reply to %s: %w", op, err)
	}
	var resp Response
	if err := json.Unmarshal(reply, &resp); err != nil {
		return fmt.Errorf("bad reply to %s: %w", op, err)
	}
	if resp.ID == 0 && resp.Error != nil {
		// An error about the connection rather than this request
		// (permission, too many connections, a line too large).
		return resp.Error
	}
	if resp.ID != req.ID {
		return fmt.Errorf("reply to %s: id %d, want %d", op, resp.ID, req.ID)
	}
	if resp.Error != nil {
		return resp.Error
	}
	if result != nil && len(resp.Result) > 0 {
		if err := json.Unmarshal(resp.Result, result); err != nil {
			return fmt.Errorf("decode %s result: %w", op, err)
		}
	}
	return nil
}
