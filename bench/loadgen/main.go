// Command loadgen is an open-loop HTTP load generator for the gateway benchmark: each user
// calls one URL on a fixed schedule over one keep-alive connection of its own, and a request's
// latency is counted from the moment it was due, not sent, so a server that falls behind shows
// its queueing in full (no coordinated omission). Written in Go with the standard library only,
// so the generator costs little CPU beside the Python processes it measures. Bounded: at most
// rate*duration requests, and every request times out.
//
//	loadgen -url http://127.0.0.1:8000/api/v1/auth/me -tokens FILE -rate 1000 -duration 20s
//
// One bearer token per line in FILE, one user per token; each user sends from its own
// X-Forwarded-For address. Prints one JSON object.
//
// -url may list several URLs, comma-separated (gateway replicas): user i calls the i-th modulo
// their number, a client-side round robin. -closed makes the load closed loop instead: every
// user sends its next request as soon as the last is answered, for the duration, at most -max
// requests in all (-rate is then ignored and latency is counted from each request's send).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

type result struct {
	OfferedRPS  float64 `json:"offered_rps"`
	Users       int     `json:"users"`
	Seconds     float64 `json:"seconds"`
	OK          int     `json:"ok"`
	AchievedRPS float64 `json:"achieved_ok_rps"`
	Errors      int     `json:"errors"`
	Non2xx      int     `json:"non_2xx"`
	P50         float64 `json:"p50_ms"`
	P95         float64 `json:"p95_ms"`
	P99         float64 `json:"p99_ms"`
	Max         float64 `json:"max_ms"`
}

func main() {
	url := flag.String("url", "", "URL to GET; several, comma-separated, are shared round robin")
	tokenFile := flag.String("tokens", "", "file with one bearer token per line")
	rate := flag.Float64("rate", 1000, "requests per second, all users together")
	duration := flag.Duration("duration", 20*time.Second, "how long to send")
	timeout := flag.Duration("timeout", 5*time.Second, "per-request timeout")
	closed := flag.Bool("closed", false, "closed loop: each user sends back to back")
	maxRequests := flag.Int("max", 1000000, "closed loop: at most this many requests in all")
	flag.Parse()
	urls := strings.Split(*url, ",")
	tokens, err := readTokens(*tokenFile)
	if err != nil || *url == "" || len(tokens) == 0 || *rate <= 0 {
		fmt.Fprintln(os.Stderr, "usage: loadgen -url URL -tokens FILE [-rate N] [-duration D]", err)
		os.Exit(2)
	}
	users := len(tokens)
	interval := time.Duration(float64(time.Second) * float64(users) / *rate)
	perUser := int(*rate * duration.Seconds() / float64(users))
	if *closed {
		perUser = *maxRequests / users
	}

	var mu sync.Mutex
	latencies := make([]time.Duration, 0, perUser*users)
	errors, non2xx := 0, 0
	var wg sync.WaitGroup
	start := time.Now().Add(100 * time.Millisecond)
	stop := start.Add(*duration)
	for i, token := range tokens {
		wg.Add(1)
		go func(index int, token string) {
			defer wg.Done()
			client := &http.Client{
				Timeout: *timeout,
				Transport: &http.Transport{
					MaxIdleConnsPerHost: 1,
					MaxConnsPerHost:     1,
					DisableCompression:  true,
				},
			}
			offset := time.Duration(int64(interval) * int64(index) / int64(users))
			target := urls[index%len(urls)]
			if *closed {
				time.Sleep(time.Until(start))
			}
			for k := 0; k < perUser; k++ {
				due := start.Add(offset + time.Duration(k)*interval)
				if *closed {
					due = time.Now()
					if due.After(stop) {
						break
					}
				} else if wait := time.Until(due); wait > 0 {
					time.Sleep(wait)
				}
				req, _ := http.NewRequest(http.MethodGet, target, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.3.%d.%d", index/250, index%250+1))
				resp, err := client.Do(req)
				if err != nil {
					mu.Lock()
					errors++
					mu.Unlock()
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				took := time.Since(due)
				mu.Lock()
				if resp.StatusCode/100 != 2 {
					non2xx++
				} else {
					latencies = append(latencies, took)
				}
				mu.Unlock()
			}
		}(i, token)
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	sort.Slice(latencies, func(a, b int) bool { return latencies[a] < latencies[b] })
	pct := func(q float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		i := int(q * float64(len(latencies)))
		if i >= len(latencies) {
			i = len(latencies) - 1
		}
		return float64(latencies[i].Microseconds()) / 1000
	}
	out := result{
		OfferedRPS: *rate, Users: users, Seconds: elapsed, OK: len(latencies),
		AchievedRPS: float64(len(latencies)) / elapsed, Errors: errors, Non2xx: non2xx,
		P50: pct(0.50), P95: pct(0.95), P99: pct(0.99), Max: pct(1.0),
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
}

func readTokens(path string) ([]string, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var tokens []string
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 64*1024), 64*1024)
	for scanner.Scan() {
		if line := strings.TrimSpace(scanner.Text()); line != "" {
			tokens = append(tokens, line)
		}
	}
	return tokens, scanner.Err()
}
