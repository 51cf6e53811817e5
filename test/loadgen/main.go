// Command loadgen measures an HTTPS endpoint of polyvirt (agent or engine)
// under concurrent clients: N clients, each with a client certificate or a
// bearer token, send requests for a duration; it prints the throughput and
// the latency percentiles. It is a benchmark tool (scripts/bench-*.sh), not
// a test.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
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
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errors    int
	)
	stop := time.Now().Add(*duration)
	var wg sync.WaitGroup
	for i := 0; i < *clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 1}, Timeout: 30 * time.Second}
			var mine []time.Duration
			bad := 0
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
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			errors += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	n := len(latencies)
	if n == 0 {
		fmt.Printf("no successful requests (%d errors)\n", errors)
		os.Exit(1)
	}
	pct := func(p float64) time.Duration { return latencies[min(n-1, int(float64(n)*p))] }
	fmt.Printf("%d clients, %s: %d requests (%.0f/s), %d errors; latency p50 %s p90 %s p99 %s max %s\n",
		*clients, *duration, n, float64(n)/duration.Seconds(), errors,
		pct(0.50).Round(10*time.Microsecond), pct(0.90).Round(10*time.Microsecond),
		pct(0.99).Round(10*time.Microsecond), latencies[n-1].Round(10*time.Microsecond))
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
