#!/usr/bin/python3
"""Fit times and test ROC-AUC of scikit-learn on the Bank Marketing split, beside Bullseye's.

The split and preprocessing are those of ../shared/data/README.md: data row i (0-based, header
excluded) is test when i % 5 == 4; numeric columns are standardised and categoricals one-hot
encoded (unknown categories ignored), fitted on the training rows only. The kernel SVM trains on
the rows with i % 4 == 0 and i % 5 != 4, with preprocessing fitted on those rows.

Only model fits are timed. Each model is fitted --runs times and the median is printed. With --go
the script also runs the Go benchmarks of pkg/ml (BenchmarkLogisticBank, BenchmarkLinearSVMBank,
BenchmarkKernelSVMBank), one `go test -count=1` per round, alternating rounds with scikit-learn's
so that both sides see the same machine noise, and prints both side by side.

scikit-learn is Debian's python3-sklearn, which imports only under /usr/bin/python3
(apt-get install -y python3-sklearn). The data folder is $BULLSEYE_DATA_DIR, by default
../shared/data beside the repository root.
"""

import argparse
import csv
import os
import re
import statistics
import subprocess
import sys
import time
import warnings

try:
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.svm import SVC, LinearSVC
except ImportError as err:  # pragma: no cover - environment check
    sys.exit(f"bench-train: {err}; install Debian's python3-sklearn and run under /usr/bin/python3")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUMERIC = ["age", "duration", "campaign", "pdays", "previous", "emp.var.rate",
           "cons.price.idx", "cons.conf.idx", "euribor3m", "nr.employed"]

# key, label, scikit-learn estimator, Go benchmark and sub-benchmark prefix, kernel rows only
MODELS = [
    ("lr", "logistic regression C=1",
     lambda: LogisticRegression(C=1.0, solver="liblinear"), "BenchmarkLogisticBank", "", False),
    ("lsvc_dual", "linear SVM C=1, dual CD",
     lambda: LinearSVC(C=1.0, dual=True, random_state=0), "BenchmarkLinearSVMBank", "dual/", False),
    ("lsvc_primal", "linear SVM C=1, primal Newton",
     lambda: LinearSVC(C=1.0, dual=False), "BenchmarkLinearSVMBank", "primal/", False),
    ("svc", "kernel SVM RBF C=1 (8,237 rows)",
     lambda: SVC(C=1.0, kernel="rbf", gamma="scale"), "BenchmarkKernelSVMBank", "", True),
]


def data_dir():
    return os.environ.get("BULLSEYE_DATA_DIR") or os.path.join(ROOT, "..", "shared", "data")


def load_bank(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    header, body = rows[0], rows[1:]
    cols = {name: [r[k] for r in body] for k, name in enumerate(header)}
    y = np.array([v == "yes" for v in cols.pop("y")], dtype=np.int64)
    return cols, y


def design(cols, rows, test, with_duration):
    """Fits the reference preprocessing on rows and returns the train and test matrices."""
    numeric = [c for c in NUMERIC if with_duration or c != "duration"]
    categorical = [c for c in cols if c not in NUMERIC]
    n = len(next(iter(cols.values())))
    X = np.empty((n, len(numeric) + len(categorical)), dtype=object)
    for k, c in enumerate(numeric):
        X[:, k] = np.array(cols[c], dtype=np.float64)
    for k, c in enumerate(categorical):
        X[:, len(numeric) + k] = cols[c]
    ct = ColumnTransformer([
        ("num", StandardScaler(), list(range(len(numeric)))),
        ("cat", OneHotEncoder(handle_unknown="ignore"), list(range(len(numeric), X.shape[1]))),
    ], sparse_threshold=0.0)
    return ct.fit_transform(X[rows]).astype(np.float64), ct.transform(X[test]).astype(np.float64)


class SklearnSide:
    def __init__(self):
        cols, self.y = load_bank(os.path.join(data_dir(), "bank-additional-full.csv"))
        i = np.arange(len(self.y))
        self.test = i % 5 == 4
        train, small = i % 5 != 4, (i % 4 == 0) & (i % 5 != 4)
        self.designs = {(dur, k): design(cols, small if k else train, self.test, dur)
                        for dur in (True, False) for k in (False, True)}
        self.times, self.aucs, self.features, self.unconverged = {}, {}, {}, set()

    def round(self):
        for key, _, make, _, _, kernel_rows in MODELS:
            for dur in (True, False):
                Xtr, Xte = self.designs[(dur, kernel_rows)]
                ytr = self.y[~self.test] if not kernel_rows else self.y[(np.arange(len(self.y)) % 4 == 0) & ~self.test]
                model = make()
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ConvergenceWarning)
                    t0 = time.perf_counter()
                    model.fit(Xtr, ytr)
                    secs = time.perf_counter() - t0
                if any(issubclass(w.category, ConvergenceWarning) for w in caught):
                    self.unconverged.add((key, dur))
                self.times.setdefault((key, dur), []).append(secs)
                self.aucs[(key, dur)] = roc_auc_score(self.y[self.test], model.decision_function(Xte))
                self.features[(key, dur)] = Xtr.shape[1]


BENCH_LINE = re.compile(r"^(Benchmark\w+)/(\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(.*)$")


class GoSide:
    CMD = ["go", "test", "-run", "^$", "-bench", "Bank$", "-benchtime", "1x", "-count", "1",
           "./ml/logistic", "./ml/svm"]

    def __init__(self):
        self.times, self.aucs = {}, {}
        print("+ (cd pkg && " + " ".join(self.CMD) + ")  # once per round", file=sys.stderr)

    def round(self):
        proc = subprocess.run(self.CMD, cwd=os.path.join(ROOT, "pkg"), capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit("bench-train: go benchmarks failed:\n" + proc.stdout + proc.stderr)
        for line in proc.stdout.splitlines():
            m = BENCH_LINE.match(line.strip())
            if not m:
                continue
            name, sub, ns, rest = m.groups()
            auc = re.search(r"([\d.]+) auc", rest)
            self.times.setdefault((name, sub), []).append(float(ns) / 1e9)
            self.aucs[(name, sub)] = float(auc.group(1)) if auc else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="rounds of fits; medians are printed")
    ap.add_argument("--go", action="store_true", help="also run the Go benchmarks, alternating rounds")
    args = ap.parse_args()

    import sklearn
    sk = SklearnSide()
    go = GoSide() if args.go else None
    for r in range(args.runs):
        print(f"round {r + 1}/{args.runs}", file=sys.stderr)
        sk.round()
        if go:
            go.round()

    print(f"Bank Marketing, test = rows with i % 5 == 4 (8,237); fit time = median of {args.runs} rounds; "
          f"scikit-learn {sklearn.__version__}; {os.cpu_count()} cores")
    head = f"{'model':32} {'duration':8} {'feat':>4} {'sklearn s':>9} {'sklearn AUC':>11}"
    if go:
        head += f" {'bullseye s':>10} {'bullseye AUC':>12} {'time ratio':>10} {'AUC diff':>8}"
    print(head)
    for key, label, _, bench, prefix, _ in MODELS:
        for dur in (True, False):
            secs = statistics.median(sk.times[(key, dur)])
            auc = sk.aucs[(key, dur)]
            mark = "*" if (key, dur) in sk.unconverged else " "
            line = f"{label:32} {'with' if dur else 'without':8} {sk.features[(key, dur)]:4d} {secs:8.3f}{mark} {auc:11.4f}"
            sub = prefix + ("with-duration" if dur else "without-duration")
            if go and (bench, sub) in go.times:
                gsecs = statistics.median(go.times[(bench, sub)])
                gauc = go.aucs[(bench, sub)]
                line += f" {gsecs:10.3f} {gauc:12.4f} {gsecs / secs:10.2f} {gauc - auc:+8.4f}"
            print(line)
    if sk.unconverged:
        print("* scikit-learn warned that the solver reached max_iter without converging")


if __name__ == "__main__":
    main()
