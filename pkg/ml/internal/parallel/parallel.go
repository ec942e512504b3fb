// Package parallel splits loops over rows across goroutines, never more than GOMAXPROCS.
package parallel

import (
	"runtime"
	"sync"
)

// Parts returns how many chunks For splits n items into: at most GOMAXPROCS, each holding
// at least minChunk items (one chunk when n < 2·minChunk).
func Parts(n, minChunk int) int {
	p := runtime.GOMAXPROCS(0)
	if minChunk < 1 {
		minChunk = 1
	}
	if q := n / minChunk; q < p {
		p = q
	}
	return max(p, 1)
}

// For runs f over Parts(n, minChunk) contiguous chunks [lo, hi) of [0, n), concurrently,
// and returns when all have finished. part numbers the chunks from 0. The last chunk runs on
// the calling goroutine.
func For(n, minChunk int, f func(part, lo, hi int)) {
	Split(n, Parts(n, minChunk), f)
}

// Split runs f over p contiguous chunks [lo, hi) of [0, n), concurrently, and returns when
// all have finished. The last chunk runs on the calling goroutine.
func Split(n, p int, f func(part, lo, hi int)) {
	if p <= 1 {
		f(0, 0, n)
		return
	}
	var wg sync.WaitGroup
	for k := range p - 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(k, k*n/p, (k+1)*n/p)
		}()
	}
	f(p-1, (p-1)*n/p, n)
	wg.Wait()
}

// Do runs tasks 0..n-1, at most limit at a time (GOMAXPROCS when limit ≤ 0), and returns
// when all have finished.
func Do(n, limit int, task func(i int)) {
	if limit <= 0 {
		limit = runtime.GOMAXPROCS(0)
	}
	limit = min(limit, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range limit {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				task(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
