package libvirtconn

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/digitalocean/go-libvirt/socket"
	"github.com/digitalocean/go-libvirt/socket/dialers"
)

// Screenshots go over a connection of their own, driven here packet by
// packet: go-libvirt's stream handling takes the first packet of a call as
// its reply, and libvirtd may send the first stream packet of
// REMOTE_PROC_DOMAIN_SCREENSHOT before the reply — the image is then lost
// and the connection deadlocks. Telling the packets apart by their type
// (reply or stream) removes the race.

// libvirt's remote protocol numbers (remote_protocol.x).
const (
	remoteProgram        = 0x20008086
	procConnectOpen      = 1
	procConnectClose     = 2
	procAuthList         = 66
	procAuthPolkit       = 70
	procDomainScreenshot = 211
	authPolkit           = 2
)

// socketPath finds the unix socket of a local libvirt URI
// (qemu:///system, qemu+unix:///system?socket=PATH).
func socketPath(uri string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", err
	}
	if p := u.Query().Get("socket"); p != "" {
		return p, nil
	}
	if (u.Scheme != "qemu" && u.Scheme != "qemu+unix") || u.Host != "" || u.Path != "/system" {
		return "", fmt.Errorf("screenshots need a local qemu:///system URI (or ?socket=PATH), not %s", uri)
	}
	return "/var/run/libvirt/libvirt-sock", nil
}

// packetQueue receives every packet of the private connection; Route never
// blocks the socket's reader.
type packetQueue struct {
	mu      sync.Mutex
	packets []packet
	ready   chan struct{}
}

type packet struct {
	h    socket.Header
	body []byte
}

func (q *packetQueue) Route(h *socket.Header, body []byte) {
	q.mu.Lock()
	q.packets = append(q.packets, packet{*h, append([]byte(nil), body...)})
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// next returns the next packet of a serial, waiting until ctx ends or the
// socket closes.
func (q *packetQueue) next(ctx context.Context, s *socket.Socket, serial int32) (packet, error) {
	for {
		q.mu.Lock()
		for i, p := range q.packets {
			if p.h.Serial == serial {
				q.packets = append(q.packets[:i], q.packets[i+1:]...)
				q.mu.Unlock()
				return p, nil
			}
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-s.Disconnected():
			return packet{}, fmt.Errorf("%w: libvirt closed the connection", ErrUnavailable)
		case <-ctx.Done():
			return packet{}, ctx.Err()
		}
	}
}

// rpc is one private connection.
type rpc struct {
	s      *socket.Socket
	q      *packetQueue
	serial int32
}

// call sends a call and waits for its reply packet (stream packets of the
// same serial are left queued).
func (r *rpc) call(ctx context.Context, proc uint32, args []byte) ([]byte, error) {
	r.serial++
	serial := r.serial
	if err := r.s.SendPacket(serial, proc, remoteProgram, args, socket.Call, socket.StatusOK); err != nil {
		return nil, err
	}
	var held []packet
	defer func() {
		r.q.mu.Lock()
		r.q.packets = append(held, r.q.packets...)
		r.q.mu.Unlock()
	}()
	for {
		p, err := r.q.next(ctx, r.s, serial)
		if err != nil {
			return nil, err
		}
		if p.h.Type == socket.Stream {
			held = append(held, p)
			continue
		}
		if p.h.Status == socket.StatusError {
			return nil, decodeRemoteError(p.body)
		}
		return p.body, nil
	}
}

// screenshot takes a screenshot over a private connection to uri.
func screenshot(ctx context.Context, uri string, d Domain, screen uint32, max int) ([]byte, string, error) {
	path, err := socketPath(uri)
	if err != nil {
		return nil, "", err
	}
	uuid, err := ParseUUID(d.UUID)
	if err != nil {
		return nil, "", err
	}
	q := &packetQueue{ready: make(chan struct{}, 1)}
	s := socket.New(dialers.NewLocal(dialers.WithSocket(path), dialers.WithLocalTimeout(5*time.Second)), q)
	if err := s.Connect(); err != nil {
		return nil, "", fmt.Errorf("%w at %s: %v", ErrUnavailable, path, err)
	}
	defer s.Disconnect()
	r := &rpc{s: s, q: q}

	// Handshake: auth-list (required even without authentication),
	// polkit when the daemon asks for it, then connect-open.
	body, err := r.call(ctx, procAuthList, nil)
	if err != nil {
		return nil, "", fmt.Errorf("auth list: %w", err)
	}
	if types, err := decodeUint32List(body); err == nil {
		for _, t := range types {
			if t == authPolkit {
				if _, err := r.call(ctx, procAuthPolkit, nil); err != nil {
					return nil, "", fmt.Errorf("polkit: %w", err)
				}
			}
		}
	}
	var x xdrBuf
	x.optString("qemu:///system")
	x.uint32(0)
	if _, err := r.call(ctx, procConnectOpen, x.Bytes()); err != nil {
		return nil, "", fmt.Errorf("connect open: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, _ = r.call(cctx, procConnectClose, nil)
	}()

	x.Reset()
	x.string(d.Name)
	x.Write(uuid[:])
	x.int32(d.ID)
	x.uint32(screen)
	x.uint32(0)
	body, err = r.call(ctx, procDomainScreenshot, x.Bytes())
	if err != nil {
		return nil, "", notFound(d.Name, err)
	}
	mime, _ := decodeOptString(body)

	serial := r.serial
	var img bytes.Buffer
	for {
		p, err := q.next(ctx, s, serial)
		if err != nil {
			return nil, "", err
		}
		if p.h.Status == socket.StatusError {
			return nil, "", decodeRemoteError(p.body)
		}
		if p.h.Status == socket.StatusOK {
			break // the server's answer to our finish
		}
		if len(p.body) == 0 {
			// End of the stream: confirm it; the server answers with OK.
			if err := s.SendPacket(serial, procDomainScreenshot, remoteProgram, nil, socket.Stream, socket.StatusOK); err != nil {
				return nil, "", err
			}
			continue
		}
		if img.Len()+len(p.body) > max {
			return nil, "", fmt.Errorf("screenshot larger than %d bytes", max)
		}
		img.Write(p.body)
	}
	if img.Len() == 0 {
		return nil, "", fmt.Errorf("screenshot of %s: libvirt sent no image", d.Name)
	}
	return img.Bytes(), mime, nil
}

// xdrBuf writes the XDR encoding of libvirt's argument structures.
type xdrBuf struct{ bytes.Buffer }

func (x *xdrBuf) uint32(v uint32) { _ = binary.Write(x, binary.BigEndian, v) }
func (x *xdrBuf) int32(v int32)   { _ = binary.Write(x, binary.BigEndian, v) }

func (x *xdrBuf) string(s string) {
	x.uint32(uint32(len(s)))
	x.WriteString(s)
	x.Write(make([]byte, (4-len(s)%4)%4))
}

func (x *xdrBuf) optString(s string) {
	x.uint32(1)
	x.string(s)
}

// xdrReader reads XDR values.
type xdrReader struct {
	b   []byte
	err error
}

func (r *xdrReader) uint32() uint32 {
	if r.err != nil || len(r.b) < 4 {
		r.err = errors.New("short XDR data")
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *xdrReader) string() string {
	n := int(r.uint32())
	pad := (4 - n%4) % 4
	if r.err != nil || n < 0 || len(r.b) < n+pad {
		r.err = errors.New("short XDR string")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n+pad:]
	return s
}

func (r *xdrReader) optString() string {
	if r.uint32() == 0 {
		return ""
	}
	return r.string()
}

func decodeOptString(b []byte) (string, error) {
	r := &xdrReader{b: b}
	s := r.optString()
	return s, r.err
}

func decodeUint32List(b []byte) ([]uint32, error) {
	r := &xdrReader{b: b}
	n := r.uint32()
	if n > 64 {
		return nil, errors.New("implausible list length")
	}
	out := make([]uint32, 0, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		out = append(out, r.uint32())
	}
	return out, r.err
}

// remoteError is libvirt's remote_error: a code and a message.
type remoteError struct {
	Code    uint32
	Message string
}

func (e remoteError) Error() string { return e.Message }

// decodeRemoteError reads remote_error (code, domain, message, ...).
func decodeRemoteError(b []byte) error {
	r := &xdrReader{b: b}
	code := r.uint32()
	_ = r.uint32() // domain
	msg := r.optString()
	if r.err != nil {
		return fmt.Errorf("libvirt error (undecodable: %v)", r.err)
	}
	if code == 42 { // VIR_ERR_NO_DOMAIN
		return fmt.Errorf("%w: %s", ErrNoDomain, msg)
	}
	return remoteError{Code: code, Message: msg}
}
