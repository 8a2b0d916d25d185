// alive.go - reference, not weft: N goroutines alive at once, each blocked
// receiving on one unbuffered channel, as bench/mem's alive.1m run keeps N
// green threads blocked in weft_chan_recv on one channel.
//
//	alive N
//
// Prints "N MS RSS": the ms from the first go statement until every
// goroutine has started (each says so before it blocks), and the resident
// memory of the process with all of them alive (VmRSS, MiB).  Then it
// closes the channel and waits for them all.  Run by bench/alive_go.sh.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func rssMiB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if f := strings.Fields(s.Text()); len(f) >= 2 && f[0] == "VmRSS:" {
			kib, _ := strconv.ParseFloat(f[1], 64)
			return kib / 1024
		}
	}
	return -1
}

func main() {
	n, err := strconv.Atoi(os.Args[len(os.Args)-1])
	if len(os.Args) != 2 || err != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "usage: alive N")
		os.Exit(2)
	}
	ch := make(chan int)
	var started, done sync.WaitGroup
	started.Add(n)
	done.Add(n)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			<-ch
			done.Done()
		}()
	}
	started.Wait()
	ms := float64(time.Since(t0).Microseconds()) / 1000
	time.Sleep(100 * time.Millisecond) // as bench/mem settles before reading
	fmt.Printf("%d %.1f %.1f\n", n, ms, rssMiB())
	close(ch)
	done.Wait()
}
