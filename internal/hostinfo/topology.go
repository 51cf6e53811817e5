package hostinfo

import (
	"strconv"

	"polyvirt/internal/cpuset"
)

// This file computes lscpu's topology (util-linux sys-utils/lscpu-topology.c
// and the summary printing of lscpu.c), reimplemented from its rules. For the
// CPUs of one type, among the possible CPUs that have a topology directory
// with thread siblings (only online CPUs have one):
//
//   - threads per core is the largest thread_siblings count (the kernel
//     lists online siblings only, so with SMT off it is 1), or s390x "max
//     thread id" + 1 when cpuinfo prints it;
//   - cores are the distinct thread_siblings sets, sockets the distinct
//     core_siblings sets, books and drawers the distinct book_siblings and
//     drawer_siblings sets;
//   - cores per socket is cores / sockets, sockets per book sockets /
//     books, books per drawer books / drawers — unless /proc/sysinfo has a
//     "CPU Topology SW:" line (s390x), whose last four numbers are then
//     drawers, books per drawer, sockets per book and cores per socket;
//   - lscpu prints "Socket(s)" (sockets per book when set, else sockets)
//     when there are no books; with books, "Socket(s) per book" and
//     "Book(s)" (books per drawer when set, else books), or "Book(s) per
//     drawer" and "Drawer(s)" when there are drawers.

// topoSW is the s390x "CPU Topology SW:" line of /proc/sysinfo.
type topoSW struct {
	drawers, booksPerDrawer, socketsPerBook, coresPerSocket int
}

// lscpuCounts are lscpu's figures for one type.
type lscpuCounts struct {
	threadsPerCore, coresPerSocket, sockets     int
	socketsPerBook, books, booksPerDrawer, draw int
}

// lscpuTopology computes lscpu's figures for the given CPUs.
func lscpuTopology(cpus cpuset.Set, topo func(int) *cpuTopo, maxThreadID string, sw *topoSW) lscpuCounts {
	nthreads := 0
	cores, sockets, books, drawers := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, c := range cpus {
		t := topo(c)
		if !t.exists || !t.hasThread || t.threadErr != nil {
			continue
		}
		n := len(t.thread)
		if n == 0 {
			n = 1
		}
		nthreads = max(nthreads, n)
		cores[keyOf(t.thread)] = true
		if t.hasCoreSib {
			sockets[keyOf(t.core)] = true
		}
		if t.hasBook {
			books[keyOf(t.book)] = true
		}
		if t.hasDrawer {
			drawers[keyOf(t.drawer)] = true
		}
	}
	ncores, nsockets, nbooks, ndrawers := len(cores), len(sockets), len(books), len(drawers)

	var r lscpuCounts
	r.threadsPerCore = nthreads
	if maxThreadID != "" {
		if v, err := strconv.ParseUint(maxThreadID, 10, 31); err == nil && v < uint64(cpuset.MaxCPU) {
			r.threadsPerCore = int(v) + 1
		}
	}
	var socketsPerBook, booksPerDrawer, drawersPerSystem int
	if sw != nil {
		drawersPerSystem, booksPerDrawer, socketsPerBook, r.coresPerSocket = sw.drawers, sw.booksPerDrawer, sw.socketsPerBook, sw.coresPerSocket
	} else {
		if nsockets > 0 {
			r.coresPerSocket = ncores / nsockets
		}
		if nbooks > 0 {
			socketsPerBook = nsockets / nbooks
		}
		if ndrawers > 0 {
			booksPerDrawer = nbooks / ndrawers
		}
		drawersPerSystem = ndrawers
	}
	if nbooks == 0 {
		r.sockets = nsockets
		if socketsPerBook > 0 {
			r.sockets = socketsPerBook
		}
		return r
	}
	r.socketsPerBook = socketsPerBook
	if drawersPerSystem > 0 || ndrawers > 0 {
		r.booksPerDrawer = booksPerDrawer
		r.draw = drawersPerSystem
		if r.draw == 0 {
			r.draw = ndrawers
		}
		r.books = r.booksPerDrawer * r.draw
	} else {
		r.books = booksPerDrawer
		if r.books == 0 {
			r.books = nbooks
		}
	}
	r.sockets = r.socketsPerBook * r.books
	return r
}
