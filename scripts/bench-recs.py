#!/usr/bin/python3
"""Seconds per ALS iteration at rank 10 on the 1M-shaped generated set, Bullseye's Go beside numpy.

The data is pkg/ml/synth's MovieLens-1M-shaped set (6,040 users x 3,706 items x 1,000,209
ratings, rounded to 1..5), which the Go benchmark writes in u.data format (user, item, rating,
Unix time, tab-separated) to a temporary file on its first round; this script reads that file, so
both sides fit the same ratings. Two updates are timed, each written in numpy the way one would
write it with numpy alone, in two styles (a Python loop over users with small BLAS products, and
vectorised over all users with gathers, einsum and np.add.reduceat), and the faster style is the
baseline:

- explicit: biased matrix factorisation by ALS with weighted-lambda regularisation (lambda * n_u),
  each user's and item's rank + 1 normal equations solved exactly (Cholesky / np.linalg.solve);
- implicit: weighted ALS with confidence 1 + alpha * r (Hu, Koren, Volinsky), each user's and
  item's system solved by 3 conjugate-gradient steps warm-started from the previous factors, with
  Y^T Y computed once per half-iteration (the implicit library's CG solver).

An iteration is a user half and an item half. Only the updates are timed (not reading or
indexing the data). The Go side's figure is BenchmarkALSIteration (pkg/ml/recommend): the time of
a fit of 6 iterations less that of a fit of 1, over 5. With --go the script alternates Go and
numpy rounds, so both see the same machine noise, and prints medians. It also runs
BenchmarkTopK (top-10 over 20,000 items at rank 64, batched vs one user at a time) each round.

numpy is Debian's python3-numpy, which imports only under /usr/bin/python3. Run it with
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (the Makefile's bench-recs does) so that OpenBLAS
picks its kernel for this processor; the kernel in use is printed (threadpoolctl when available).
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
except ImportError as err:  # pragma: no cover - environment check
    sys.exit(f"bench-recs: {err}; install Debian's python3-numpy and run under /usr/bin/python3")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RANK = 10
EXPLICIT_LAMBDA = 0.1
IMPLICIT_LAMBDA, IMPLICIT_ALPHA, CG_STEPS = 1.0, 1.0, 3


def blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed; numpy " + np.__version__
    parts = []
    for lib in threadpool_info():
        parts.append(f"{lib.get('internal_api')} {lib.get('version')} kernel {lib.get('architecture')} "
                     f"threads {lib.get('num_threads')} ({os.path.basename(lib.get('filepath', ''))})")
    return "numpy " + np.__version__ + ": " + "; ".join(parts)


class Problem:
    """The ratings in both orientations, users and items renumbered from 0 in id order."""

    def __init__(self, path):
        raw = np.loadtxt(path, dtype=np.float64, usecols=(0, 1, 2))
        users = np.unique(raw[:, 0].astype(np.int64), return_inverse=True)[1]
        items = np.unique(raw[:, 1].astype(np.int64), return_inverse=True)[1]
        self.values = raw[:, 2]
        self.nu, self.ni = users.max() + 1, items.max() + 1
        self.mean = self.values.mean()
        self.by_user = self._csr(users, items, self.nu)
        self.by_item = self._csr(items, users, self.ni)

    def _csr(self, rows, cols, n):
        order = np.lexsort((cols, rows))
        ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n), out=ptr[1:])
        return ptr, cols[order], self.values[order]


# Explicit ALS -------------------------------------------------------------------------------

def explicit_half_vectorised(dst, other, csr, mu, lam, chunk=60_000):
    """Solves every row of dst (bias in column 0) against the fixed rows of other."""
    ptr, idx, val = csr
    d = other.shape[1]
    eye = np.eye(d)
    n = len(ptr) - 1
    a = 0
    while a < n:
        b = a + 1
        while b < n and ptr[b + 1] - ptr[a] <= chunk:
            b += 1
        s, e = ptr[a], ptr[b]
        z = other[idx[s:e]]
        t = val[s:e] - mu - z[:, 0]
        z[:, 0] = 1.0
        starts = ptr[a:b] - s
        gram = np.add.reduceat(np.einsum("ni,nj->nij", z, z), starts, axis=0)
        rhs = np.add.reduceat(z * t[:, None], starts, axis=0)
        counts = np.diff(ptr[a:b + 1]).astype(np.float64)
        gram += lam * counts[:, None, None] * eye
        dst[a:b] = np.linalg.solve(gram, rhs[..., None])[..., 0]
        a = b


def explicit_half_loop(dst, other, csr, mu, lam):
    ptr, idx, val = csr
    d = other.shape[1]
    eye = np.eye(d)
    for u in range(len(ptr) - 1):
        s, e = ptr[u], ptr[u + 1]
        z = other[idx[s:e]]
        t = val[s:e] - mu - z[:, 0]
        z[:, 0] = 1.0
        dst[u] = np.linalg.solve(z.T @ z + lam * (e - s) * eye, z.T @ t)


# Implicit ALS, conjugate gradient -----------------------------------------------------------

def implicit_half_vectorised(dst, other, csr, alpha, lam, steps):
    """CG steps on every row at once: gathers of the other side's rows and segment sums."""
    ptr, idx, val = csr
    k = other.shape[1]
    yty = other.T @ other + lam * np.eye(k)
    rows = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
    starts = ptr[:-1]
    y = other[idx]
    c = 1.0 + alpha * val
    x = dst
    r = -x @ yty + np.add.reduceat((c - (c - 1.0) * np.einsum("ij,ij->i", y, x[rows]))[:, None] * y, starts, axis=0)
    p = r.copy()
    rsold = np.einsum("ij,ij->i", r, r)
    active = rsold >= 1e-20
    for _ in range(steps):
        ap = p @ yty + np.add.reduceat(((c - 1.0) * np.einsum("ij,ij->i", y, p[rows]))[:, None] * y, starts, axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(active, rsold / np.einsum("ij,ij->i", p, ap), 0.0)
        x += a[:, None] * p
        r -= a[:, None] * ap
        rsnew = np.einsum("ij,ij->i", r, r)
        with np.errstate(divide="ignore", invalid="ignore"):
            beta = np.where(active, rsnew / rsold, 0.0)
        active &= rsnew >= 1e-20
        p = r + beta[:, None] * p
        rsold = rsnew


def implicit_half_loop(dst, other, csr, alpha, lam, steps):
    """The implicit library's _least_squares_cg, one user at a time."""
    ptr, idx, val = csr
    k = other.shape[1]
    yty = other.T @ other + lam * np.eye(k)
    for u in range(len(ptr) - 1):
        s, e = ptr[u], ptr[u + 1]
        y = other[idx[s:e]]
        c = 1.0 + alpha * val[s:e]
        x = dst[u]
        r = -yty @ x + (c - (c - 1.0) * (y @ x)) @ y
        p = r.copy()
        rsold = r @ r
        if rsold < 1e-20:
            continue
        for _ in range(steps):
            ap = yty @ p + ((c - 1.0) * (y @ p)) @ y
            a = rsold / (p @ ap)
            x += a * p
            r -= a * ap
            rsnew = r @ r
            if rsnew < 1e-20:
                break
            p = r + (rsnew / rsold) * p
            rsold = rsnew


def time_explicit(pb, half, iterations):
    rng = np.random.default_rng(1)
    x = np.zeros((pb.nu, RANK + 1))
    y = np.zeros((pb.ni, RANK + 1))
    y[:, 1:] = rng.normal(0, 0.1, (pb.ni, RANK))
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        half(x, y, pb.by_user, pb.mean, EXPLICIT_LAMBDA)
        half(y, x, pb.by_item, pb.mean, EXPLICIT_LAMBDA)
        times.append(time.perf_counter() - start)
    rmse = np.sqrt(np.mean(_explicit_residuals(pb, x, y) ** 2))
    return statistics.median(times), rmse


def _explicit_residuals(pb, x, y):
    ptr, idx, val = pb.by_user
    rows = np.repeat(np.arange(pb.nu), np.diff(ptr))
    pred = pb.mean + x[rows, 0] + y[idx, 0] + np.einsum("ij,ij->i", x[rows, 1:], y[idx, 1:])
    return val - pred


def time_implicit(pb, half, iterations):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.01, (pb.nu, RANK))
    y = rng.normal(0, 0.01, (pb.ni, RANK))
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        half(x, y, pb.by_user, IMPLICIT_ALPHA, IMPLICIT_LAMBDA, CG_STEPS)
        half(y, x, pb.by_item, IMPLICIT_ALPHA, IMPLICIT_LAMBDA, CG_STEPS)
        times.append(time.perf_counter() - start)
    return statistics.median(times), None


# Go side ------------------------------------------------------------------------------------

BENCH_LINE = re.compile(r"^(Benchmark[\w/.-]+?)(?:-\d+)?\s+\d+\s+[\d.]+ ns/op(.*)$")


class GoSide:
    CMD = ["go", "test", "-run", "^$", "-bench", "^Benchmark(ALSIteration|TopK)$", "-benchtime", "1x",
           "-count", "1", "./ml/recommend/"]

    def __init__(self, data_path):
        self.env = dict(os.environ, BULLSEYE_RECS_DATA=data_path)
        self.metrics = {}

    def round(self):
        proc = subprocess.run(self.CMD, cwd=os.path.join(ROOT, "pkg"), env=self.env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit("bench-recs: go benchmarks failed:\n" + proc.stdout + proc.stderr)
        for line in proc.stdout.splitlines():
            m = BENCH_LINE.match(line.strip())
            if not m:
                continue
            for value, unit in re.findall(r"([\d.e+-]+) (\S+)", m.group(2)):
                self.metrics.setdefault((m.group(1), unit), []).append(float(value))

    def median(self, name, unit):
        v = self.metrics.get((name, unit))
        return statistics.median(v) if v else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--go", action="store_true", help="also run the Go benchmarks, alternating rounds")
    ap.add_argument("--runs", type=int, default=5, help="rounds (medians are reported)")
    ap.add_argument("--iterations", type=int, default=3, help="timed iterations per numpy round")
    ap.add_argument("--data", help="the u.data file to use (default: the Go side writes a temporary one)")
    args = ap.parse_args()

    print("bench-recs:", blas_info())
    print("OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s" % (os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
                                                      os.environ.get("OPENBLAS_L2_SIZE", "(unset)")))
    tmp = tempfile.TemporaryDirectory(prefix="bench-recs-")
    path = args.data or os.path.join(tmp.name, "ml1m-synth.data")
    go = GoSide(path) if args.go else None
    if go:
        go.round()  # writes the data file
    if not os.path.exists(path):
        sys.exit(f"bench-recs: no data at {path}; run with --go or give --data")
    start = time.perf_counter()
    pb = Problem(path)
    print(f"data: {pb.nu} users x {pb.ni} items x {len(pb.values)} ratings (read in {time.perf_counter() - start:.1f} s)")

    styles = {
        "explicit": [("vectorised", explicit_half_vectorised), ("loop", explicit_half_loop)],
        "implicit": [("vectorised", implicit_half_vectorised), ("loop", implicit_half_loop)],
    }
    timers = {"explicit": time_explicit, "implicit": time_implicit}
    np_times = {}
    for r in range(args.runs):
        for kind, variants in styles.items():
            for style, half in variants:
                its = args.iterations if style == "vectorised" else 1
                secs, rmse = timers[kind](pb, half, its)
                np_times.setdefault((kind, style), []).append(secs)
                if r == 0 and rmse is not None:
                    print(f"  numpy {kind} {style}: training RMSE after {its} iteration(s) {rmse:.4f}")
        if go and r > 0:
            go.round()
        print(f"round {r + 1}/{args.runs} done", flush=True)

    print()
    print(f"ALS, rank {RANK}, 1M-shaped set: seconds per iteration (median of {args.runs} rounds)")
    print(f"{'update':<10} {'Go':>9} {'numpy vect.':>12} {'numpy loop':>11} {'Go / best numpy':>16}")
    for kind in styles:
        vec = statistics.median(np_times[(kind, "vectorised")])
        loop = statistics.median(np_times[(kind, "loop")])
        gsecs = go.median(f"BenchmarkALSIteration/{kind}", "s/iter") if go else None
        ratio = f"{gsecs / min(vec, loop):.3f}" if gsecs else "-"
        gtxt = f"{gsecs:.4f}" if gsecs else "-"
        print(f"{kind:<10} {gtxt:>9} {vec:>12.4f} {loop:>11.4f} {ratio:>16}")
    if go:
        print()
        print("Top-10 over 20,000 items at rank 64: users per second (median)")
        one = go.median("BenchmarkTopK/one", "users/s")
        for name in ["BenchmarkTopK/batched/64", "BenchmarkTopK/batched/256", "BenchmarkTopK/batched/1024",
                     "BenchmarkTopK/one", "BenchmarkTopK/one/2-goroutines"]:
            v = go.median(name, "users/s")
            if v:
                print(f"  {name.removeprefix('BenchmarkTopK/'):<18} {v:>10.0f}   x{v / one:.2f} of one at a time")


if __name__ == "__main__":
    main()
