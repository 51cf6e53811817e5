// Command loadgen measures an HTTPS endpoint of polyvirt (agent or engine)
// under concurrent clients: N clients, each with a client certificate or a
// bearer token, send requests for a duration; it prints the throughput and
// the latency percentiles. With -hold it first opens many connections and
// holds them during the run (spread over source addresses of 127.0.0.0/8,
// each a client of its own for the server), and with -pid it samples the
// server's memory meanwhile. It is a benchmark tool (scripts/bench-*.sh,
// docs/benchmarks.md), not a test.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"polyvirt/internal/pki"
)

func main() {
	var (
		url      = flag.String("url", "", "URL to GET")
		clients  = flag.Int("c", 50, "concurrent clients")
		duration = flag.Duration("d", 20*time.Second, "how long to run")
		caFile   = flag.String("ca", "", "CA certificate (PEM)")
		certFile = flag.String("cert", "", "client certificate (PEM)")
		keyFile  = flag.String("key", "", "client key (PEM)")
		token    = flag.String("token-file", "", "file holding a bearer token")
		insecure = flag.Bool("insecure", false, "do not verify the server certificate")
		hold     = flag.Int("hold", 0, "connections to open (while the clients measure) and hold until the end")
		sources  = flag.Int("hold-sources", 1, "spread the held connections over this many source addresses (127.0.1.1, 127.0.1.2, …)")
		holdReq  = flag.Bool("hold-request", true, "each held connection sends one request of -url first (then stays open, kept alive); else it only shakes hands")
		source   = flag.String("source", "", "source address of the measuring clients")
		pid      = flag.Int("pid", 0, "the server's process id: its resident memory is sampled during the run")
		newConn  = flag.Bool("new-conn", false, "each request on a new connection (a probe such as curl: TCP and TLS handshakes counted)")
	)
	flag.Parse()
	if *url == "" {
		fmt.Fprintln(os.Stderr, "loadgen: -url is required")
		os.Exit(2)
	}
	cfg := &tls.Config{InsecureSkipVerify: *insecure}
	if *caFile != "" {
		ca, err := os.ReadFile(*caFile)
		check(err)
		var cert, key []byte
		if *certFile != "" {
			cert, err = os.ReadFile(*certFile)
			check(err)
			key, err = os.ReadFile(*keyFile)
			check(err)
		}
		cfg, err = pki.ClientTLS(cert, key, ca)
		check(err)
	}
	auth := ""
	if *token != "" {
		b, err := os.ReadFile(*token)
		check(err)
		auth = "Bearer " + string(trim(b))
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	if *source != "" {
		dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(*source)}
	}
	// The held connections are opened while the clients measure.
	rss := startRSS(*pid)
	var held []net.Conn
	holding := make(chan struct{})
	go func() {
		defer close(holding)
		if *hold > 0 {
			held = holdConns(*url, *hold, *sources, *holdReq, cfg, auth)
		}
	}()
	defer func() {
		<-holding
		for _, c := range held {
			c.Close()
		}
	}()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errors    int
		errKinds  = map[string]int{}
	)
	stop := time.Now().Add(*duration)
	var wg sync.WaitGroup
	for i := 0; i < *clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 1, DialContext: dialer.DialContext,
				DisableKeepAlives: *newConn}, Timeout: 30 * time.Second}
			var mine []time.Duration
			bad := 0
			kinds := map[string]int{}
			for time.Now().Before(stop) {
				req, _ := http.NewRequest("GET", *url, nil)
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					bad++
					kinds[errKind(err)]++
					time.Sleep(10 * time.Millisecond)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			errors += bad
			for k, n := range kinds {
				errKinds[k] += n
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	<-holding
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	n := len(latencies)
	if n == 0 {
		fmt.Printf("no successful requests (%d errors)\n", errors)
		os.Exit(1)
	}
	pct := func(p float64) time.Duration { return latencies[min(n-1, int(float64(n)*p))] }
	fmt.Printf("%d clients, %s: %d requests (%.0f/s), %d errors; latency p50 %s p90 %s p95 %s p99 %s max %s\n",
		*clients, *duration, n, float64(n)/duration.Seconds(), errors,
		pct(0.50).Round(10*time.Microsecond), pct(0.90).Round(10*time.Microsecond), pct(0.95).Round(10*time.Microsecond),
		pct(0.99).Round(10*time.Microsecond), latencies[n-1].Round(10*time.Microsecond))
	if errors > 0 {
		fmt.Printf("errors: %v\n", errKinds)
	}
	if len(held) > 0 {
		fmt.Printf("held connections still open at the end: %d of %d\n", stillOpen(held), len(held))
	}
	if rss != nil {
		peak, last := rss()
		fmt.Printf("server RSS: peak %.1f MiB, at the end %.1f MiB\n", float64(peak)/1024, float64(last)/1024)
	}
}

// errKind is a short name of an error, for counting.
func errKind(err error) string {
	msg := err.Error()
	for _, k := range []string{"status 429", "status 503", "EOF", "connection reset", "timeout", "refused"} {
		if strings.Contains(msg, k) {
			return k
		}
	}
	return msg
}

// holdConns opens n connections to the URL's server, spread over sources
// source addresses (127.0.1.1 on), each with its TLS handshake done and,
// with request, one request answered; it prints what the server answered
// and returns the connections still open.
func holdConns(rawURL string, n, sources int, request bool, cfg *tls.Config, auth string) []net.Conn {
	u, err := url.Parse(rawURL)
	check(err)
	tcfg := cfg.Clone()
	tcfg.NextProtos = []string{"http/1.1"}
	if tcfg.ServerName == "" {
		tcfg.ServerName = u.Hostname()
	}
	var (
		mu       sync.Mutex
		conns    []net.Conn
		outcomes = map[string]int{}
		wg       sync.WaitGroup
		next     atomic.Int64
	)
	t0 := time.Now()
	for w := 0; w < 256; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				src := net.IPv4(127, 0, byte(1+(i%sources)/250), byte(1+(i%sources)%250))
				d := &net.Dialer{Timeout: 10 * time.Second}
				if sources > 1 {
					d.LocalAddr = &net.TCPAddr{IP: src}
				}
				c, outcome := holdOne(d, u, tcfg, auth, request)
				mu.Lock()
				outcomes[outcome]++
				if c != nil {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	fmt.Printf("held connections: %d asked from %d source addresses in %s: %v\n", n, sources, time.Since(t0).Round(time.Millisecond), outcomes)
	return conns
}

// holdOne opens one held connection: it returns the connection when the
// server kept it, and what happened.
func holdOne(d *net.Dialer, u *url.URL, cfg *tls.Config, auth string, request bool) (net.Conn, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	raw, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, "dial: " + errKind(err)
	}
	c := tls.Client(raw, cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, "handshake: " + errKind(err)
	}
	if !request {
		return c, "handshake"
	}
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\n"
	if auth != "" {
		req += "Authorization: " + auth + "\r\n"
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		c.Close()
		return nil, "write: " + errKind(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil, "read: " + errKind(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_ = c.SetDeadline(time.Time{})
	if resp.StatusCode != 200 || resp.Close {
		c.Close()
		return nil, strconv.Itoa(resp.StatusCode)
	}
	return c, "200"
}

// stillOpen counts the connections the server has not closed (a read
// that waits rather than ends).
func stillOpen(conns []net.Conn) int {
	n := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			n++
		}
	}
	return n
}

// cpuTicks is a process's user and system time, in clock ticks.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

// startRSS samples a process's resident memory (KiB) until the returned
// function is called; it returns the peak and the last sample, and prints
// the CPU time the process used meanwhile.
func startRSS(pid int) func() (peak, last int64) {
	if pid <= 0 {
		return nil
	}
	var peak, last atomic.Int64
	done := make(chan struct{})
	cpu0, t0 := cpuTicks(pid), time.Now()
	sample := func() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				last.Store(v)
				if v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}
	sample()
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return func() (int64, int64) {
		close(done)
		sample()
		// Linux counts 100 ticks a second (USER_HZ).
		cpu := float64(cpuTicks(pid)-cpu0) / 100
		fmt.Printf("server CPU: %.1f s in %.0f s (%.2f cores)\n", cpu, time.Since(t0).Seconds(), cpu/time.Since(t0).Seconds())
		return peak.Load(), last.Load()
	}
}

func trim(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}
