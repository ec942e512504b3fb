#!/usr/bin/python3
"""Fit times and test ROC-AUC of scikit-learn on the Bank Marketing split, beside Bullseye's.

The split and preprocessing are those of ../shared/data/README.md: data row i (0-based, header
excluded) is test when i % 5 == 4; numeric columns are standardised and categoricals one-hot
encoded (unknown categories ignored), fitted on the training rows only. The kernel SVM trains on
the rows with i % 4 == 0 and i % 5 != 4, with preprocessing fitted on those rows.

Boosted trees are fitted in one configuration by all three sides: scikit-learn's
HistGradientBoostingClassifier, XGBoost's hist (lossguide growth) and Bullseye's pkg/ml/gbt, with
400 trees of at most 31 leaves, learning rate 0.05, 255 bins, L2 1, no early stopping, 2 threads
and native categorical splits (categories coded by training frequency; numeric columns raw).

Only model fits are timed. Each model is fitted --runs times and the median is printed. With --go
the script also runs the Go benchmarks of pkg/ml (BenchmarkLogisticBank, BenchmarkLinearSVMBank,
BenchmarkKernelSVMBank, BenchmarkGBTBank), one `go test -p 1 -count=1` per round (packages one at a time), alternating rounds
with the Python libraries' so that both sides see the same machine noise, and prints both side by
side. With --write FILE the table, with the machine's description, replaces the bench-train
section of FILE (BENCHMARKS.md). --runs 0 skips this timing part (use it with --mesh-seeds).

With --mesh-seeds N the script also checks the boosted trees' accuracy through the whole mesh:
it runs `go test -count=1 -run '^TestBankBoostedTrees$' -bank-seeds N -v -timeout 30m` in
services/training (Bank imported through ingest, a feature set, training jobs with the gradient-
boosted trees at the family's defaults and SearchSpec.seed 1 to N, the registry, Evaluate) and
reads the test's bank-gbt lines (the median test ROC-AUC with and without duration) and its
bank-select line (a model selection over logistic regression and the boosted trees, with
duration). Over the same seeds it fits two baselines on the same training rows:
scikit-learn's HistGradientBoostingClassifier at its defaults (random_state=seed) and XGBoost
with 400 trees, max_depth 6, eta 0.05, subsample 0.8, colsample_bytree 0.8, tree_method hist
(seed=seed, nthread 2). Both see the design the Go side's boosted trees train on
(preprocess.Spec.Native): numeric columns raw and categoricals as ordinal codes (most frequent
training category 0, ties by value) split natively, by HGB's categorical_features mask and by
XGBoost's enable_categorical on pandas categories; neither is one-hot encoded. The verdict of
each Bullseye row is its median against the absolute bar (0.9460 with duration, 0.7830
without) and against max(HGB median, XGBoost median) - 0.002; the selection passes when the
boosted trees win and beat logistic regression's test ROC-AUC by at least 0.010. With --write
the table replaces the bench-train-mesh section of FILE.

With --clv the script also times customer lifetime value on CDNOW (all 23,570 customers,
calibration to 1997-09-30, weeks): it runs `go test -count=1 -run
'^TestCDNOWLifetimeValueThroughTheMesh$' -v` in cmd/bullseye (import, feature set, the
train-clv.yaml job, registry, Evaluate, Predict) and reads its cdnow-clv line (the training job's
wall time through the mesh, the two fits' time alone in Go, the parameters), and runs
pkg/ml/clv/testdata/clv_reference.py, an independent scipy fit (L-BFGS-B with analytic numpy
gradients, best of 3), and prints both side by side; with --write the table replaces the
bench-train-clv section of FILE. It needs Debian's python3-scipy and python3-pandas.

scikit-learn and XGBoost are Debian's python3-sklearn and python3-xgboost, which import only under
/usr/bin/python3 (make bench-train installs them with scripts/apt.sh). The data folder is $BULLSEYE_DATA_DIR, by default
../shared/data beside the repository root.
"""

import argparse
import csv
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import warnings

try:
    import numpy as np
    import pandas as pd
    import xgboost
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.svm import SVC, LinearSVC
    from threadpoolctl import threadpool_limits
except ImportError as err:  # pragma: no cover - environment check
    sys.exit(f"bench-train: {err}; install Debian's python3-sklearn, python3-xgboost and python3-pandas "
             "(scripts/apt.sh) and run under /usr/bin/python3")

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


# The boosted-trees configuration shared by the three sides.
TREES = dict(trees=400, leaves=31, learning_rate=0.05, bins=255, l2=1.0, threads=2)

# key, label, fit(Xtrain, ytrain, categorical mask) returning a score function
TREE_MODELS = [
    ("hgb", "boosted trees vs sklearn HGB"),
    ("xgb", "boosted trees vs XGBoost hist"),
]


def fit_hgb(X, y, cat):
    with threadpool_limits(TREES["threads"]):
        m = HistGradientBoostingClassifier(
            max_iter=TREES["trees"], max_leaf_nodes=TREES["leaves"], learning_rate=TREES["learning_rate"],
            max_bins=TREES["bins"], l2_regularization=TREES["l2"], early_stopping=False,
            categorical_features=np.array(cat), random_state=0)
        t0 = time.perf_counter()
        m.fit(X, y)
        secs = time.perf_counter() - t0
    return secs, lambda Z: m.decision_function(Z)


def xgb_frame(X, cat):
    return pd.DataFrame({f"f{k}": (pd.Categorical(X[:, k]) if c else X[:, k]) for k, c in enumerate(cat)})


def fit_xgb(X, y, cat):
    d = xgboost.DMatrix(xgb_frame(X, cat), label=y, enable_categorical=True)
    params = {"objective": "binary:logistic", "tree_method": "hist", "grow_policy": "lossguide",
              "max_leaves": TREES["leaves"], "max_depth": 0, "eta": TREES["learning_rate"],
              "max_bin": TREES["bins"], "lambda": TREES["l2"], "nthread": TREES["threads"], "seed": 0}
    t0 = time.perf_counter()
    b = xgboost.train(params, d, num_boost_round=TREES["trees"])
    secs = time.perf_counter() - t0
    return secs, lambda Z: b.predict(xgboost.DMatrix(xgb_frame(Z, cat), enable_categorical=True), output_margin=True)


def tree_design(cols, train, with_duration):
    """Numeric columns raw, categoricals coded by their frequency on the training rows (most
    frequent 0, ties by value), as pkg/ml/gbt's Bank test codes them."""
    names = [c for c in cols if with_duration or c != "duration"]
    n = len(next(iter(cols.values())))
    X = np.empty((n, len(names)))
    cat = []
    for k, c in enumerate(names):
        if c in NUMERIC:
            X[:, k] = np.array(cols[c], dtype=np.float64)
            cat.append(False)
            continue
        vals = np.array(cols[c])
        counts = {}
        for v in vals[train]:
            counts[v] = counts.get(v, 0) + 1
        code = {v: i for i, v in enumerate(sorted(counts, key=lambda v: (-counts[v], v)))}
        X[:, k] = [code.get(v, np.nan) for v in vals]
        cat.append(True)
    return X, cat


# The mesh run's bars (the gradient-boosted-trees issue): median test ROC-AUC over the seeds.
MESH_BARS = {True: 0.9460, False: 0.7830}
MESH_SLACK = 0.002   # Bullseye's median may trail the better baseline's by this much
SELECT_MARGIN = 0.010
XGB_MESH = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6, "eta": 0.05,
            "subsample": 0.8, "colsample_bytree": 0.8, "nthread": 2}
XGB_MESH_TREES = 400

MESH_GBT = re.compile(r"bank-gbt duration=(with|without) seeds=(\d+) median=([\d.]+) aucs=\[([\d.,]*)\]")
MESH_SELECT = re.compile(r"bank-select winner=(\S+) gbt=([\d.]+) lr=([\d.]+) margin=(-?[\d.]+)")


def mesh_go(seeds):
    """Runs TestBankBoostedTrees with -bank-seeds seeds; returns its AUCs by duration, the
    selection (winner, gbt, lr) and whether go test passed."""
    cmd = ["go", "test", "-count=1", "-run", "^TestBankBoostedTrees$", "-bank-seeds", str(seeds),
           "-v", "-timeout", "30m", "."]
    print("+ (cd services/training && " + " ".join(cmd) + ")", file=sys.stderr)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=os.path.join(ROOT, "services", "training"), capture_output=True, text=True)
    secs = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    aucs, select = {}, None
    for line in out.splitlines():
        m = MESH_GBT.search(line)
        if m:
            aucs[m.group(1) == "with"] = [float(a) for a in m.group(4).split(",") if a]
            continue
        m = MESH_SELECT.search(line)
        if m:
            select = (m.group(1).removeprefix("MODEL_FAMILY_"), float(m.group(2)), float(m.group(3)))
    if len(aucs) != 2 or select is None or any(len(v) != seeds for v in aucs.values()):
        sys.exit("bench-train: TestBankBoostedTrees did not report its figures:\n" + out)
    if proc.returncode != 0:
        print("bench-train: TestBankBoostedTrees failed (the table shows why):\n" + out, file=sys.stderr)
    return aucs, select, proc.returncode == 0, secs


def mesh_baselines(seeds):
    """Test ROC-AUC of HGB at its defaults and of XGBoost at XGB_MESH per seed 1..seeds, by
    (name, duration)."""
    cols, y = load_bank(os.path.join(data_dir(), "bank-additional-full.csv"))
    test = np.arange(len(y)) % 5 == 4
    aucs = {}
    for dur in (True, False):
        X, cat = tree_design(cols, ~test, dur)
        dtrain = xgboost.DMatrix(xgb_frame(X[~test], cat), label=y[~test], enable_categorical=True)
        dtest = xgboost.DMatrix(xgb_frame(X[test], cat), enable_categorical=True)
        for seed in range(1, seeds + 1):
            print(f"baselines: duration {dur}, seed {seed}", file=sys.stderr)
            with threadpool_limits(2):
                m = HistGradientBoostingClassifier(categorical_features=np.array(cat), random_state=seed)
                m.fit(X[~test], y[~test])
            aucs.setdefault(("hgb", dur), []).append(roc_auc_score(y[test], m.decision_function(X[test])))
            b = xgboost.train(dict(XGB_MESH, seed=seed), dtrain, num_boost_round=XGB_MESH_TREES)
            aucs.setdefault(("xgb", dur), []).append(roc_auc_score(y[test], b.predict(dtest)))
    return aucs


def mesh_table(seeds):
    """The mesh accuracy table's lines (see the module's docstring)."""
    import sklearn
    go, select, passed, secs = mesh_go(seeds)
    base = mesh_baselines(seeds)
    lines = [f"Bank Marketing through the mesh (import, feature set, training job, registry, Evaluate), test = rows "
             f"with i % 5 == 4 (8,237); seeds 1-{seeds}; test ROC-AUC; scikit-learn {sklearn.__version__}, "
             f"XGBoost {xgboost.__version__}; baselines on native categoricals (ordinal codes), as the Go side",
             f"{'side':40} {'duration':8} {'median':>7}  {'AUCs by seed':{7 * seeds + 1}} verdict"]
    labels = [("bullseye", "Bullseye boosted trees, family defaults"),
              ("hgb", "sklearn HGB, defaults"),
              ("xgb", "XGBoost 400 trees, depth 6, eta 0.05")]
    for dur in (True, False):
        best = max(statistics.median(base[("hgb", dur)]), statistics.median(base[("xgb", dur)]))
        for key, label in labels:
            aucs = go[dur] if key == "bullseye" else base[(key, dur)]
            med = statistics.median(aucs)
            verdict = ""
            if key == "bullseye":
                bar, rel = MESH_BARS[dur], best - MESH_SLACK
                ok = med >= bar and med >= rel
                verdict = f"{'pass' if ok else 'MISS'} (>= {bar:.4f}: {'yes' if med >= bar else 'no'}; " \
                          f">= {rel:.4f} = best baseline - {MESH_SLACK}: {'yes' if med >= rel else 'no'})"
            lines.append(f"{label:40} {'with' if dur else 'without':8} {med:7.4f}  "
                         f"{' '.join(f'{a:.4f}' for a in aucs):{7 * seeds + 1}} {verdict}".rstrip())
    winner, gbt, lr = select
    ok = winner == "GRADIENT_BOOSTED_TREES" and gbt - lr >= SELECT_MARGIN
    lines.append(f"selection with duration (logistic regression C=1 and boosted trees, 3 folds): winner {winner}, "
                 f"test ROC-AUC {gbt:.4f} vs logistic regression {lr:.4f}, margin {gbt - lr:+.4f} "
                 f"(want >= {SELECT_MARGIN:.3f}): {'pass' if ok else 'MISS'}")
    lines.append(f"go test TestBankBoostedTrees -bank-seeds {seeds}: {'PASS' if passed else 'FAIL'} in {secs:.0f} s")
    return lines


MESH_CLV = re.compile(r"cdnow-clv job_seconds=([\d.]+) fit_seconds=([\d.]+) r=(\S+) alpha=(\S+) a=(\S+) b=(\S+) ll=(\S+) "
                      r"p=(\S+) q=(\S+) gamma=(\S+) gll=(\S+)")


def clv_table():
    """The CDNOW lifetime value table's lines (see the module's docstring)."""
    import json
    cmd = ["go", "test", "-count=1", "-run", "^TestCDNOWLifetimeValueThroughTheMesh$", "-v", "-timeout", "20m", "./internal/cli"]
    print("+ (cd cmd/bullseye && " + " ".join(cmd) + ")", file=sys.stderr)
    proc = subprocess.run(cmd, cwd=os.path.join(ROOT, "cmd", "bullseye"), capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    m = next((MESH_CLV.search(line) for line in out.splitlines() if MESH_CLV.search(line)), None)
    if m is None:
        sys.exit("bench-train: TestCDNOWLifetimeValueThroughTheMesh did not report its figures:\n" + out)
    job, fit = float(m.group(1)), float(m.group(2))
    go = [float(v) for v in m.groups()[2:]]
    script = os.path.join(ROOT, "pkg", "ml", "clv", "testdata", "clv_reference.py")
    print(f"+ /usr/bin/python3 {script}", file=sys.stderr)
    ref = json.loads(subprocess.run(["/usr/bin/python3", script, os.path.join(data_dir(), "CDNOW_master.txt")],
                                    capture_output=True, text=True, check=True).stdout)
    bg, gg, timed = ref["bgnbd"], ref["gammagamma"], ref["timed"]
    sp = [bg["r"], bg["alpha"], bg["a"], bg["b"], bg["loglik"], gg["p"], gg["q"], gg["gamma"], gg["loglik"]]
    names = ["r", "alpha", "a", "b", "BG/NBD LL", "p", "q", "gamma", "Gamma-Gamma LL"]
    lines = [f"CDNOW customer lifetime value: {ref['summary']['customers']:,} customers, calibration to 1997-09-30, "
             f"weeks; BG/NBD on all, Gamma-Gamma on the {gg['customers']:,} with repeat purchases",
             f"{'parameter':16} {'bullseye (mesh)':>16} {'scipy':>16} {'same digits':>11}"]
    for name, a, b in zip(names, go, sp):
        digits = 16 if a == b else -math.log10(abs(a - b) / abs(b))
        lines.append(f"{name:16} {a:16.6f} {b:16.6f} {min(digits, 16):11.1f}")
    lines.append(f"fit time: Go pkg/ml/clv {fit:.3f} s (both fits, in the test process); scipy {timed['seconds']:.3f} s "
                 f"({timed['method']}); the training job through the mesh (training set, fits, registration) {job:.3f} s")
    lines.append(f"go test TestCDNOWLifetimeValueThroughTheMesh: {'PASS' if proc.returncode == 0 else 'FAIL'}")
    return lines


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
        self.tree_designs = {dur: tree_design(cols, train, dur) for dur in (True, False)}
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
        for key, _ in TREE_MODELS:
            for dur in (True, False):
                X, cat = self.tree_designs[dur]
                fit = fit_hgb if key == "hgb" else fit_xgb
                secs, score = fit(X[~self.test], self.y[~self.test], cat)
                self.times.setdefault((key, dur), []).append(secs)
                self.aucs[(key, dur)] = roc_auc_score(self.y[self.test], score(X[self.test]))
                self.features[(key, dur)] = X.shape[1]


BENCH_LINE = re.compile(r"^(Benchmark\w+)/(\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(.*)$")


class GoSide:
    # -p 1: go test runs the packages' test binaries one at a time; by default it runs as
    # many at once as there are cores, and the benchmarks of one package would be timed
    # while another's ran beside them.
    CMD = ["go", "test", "-p", "1", "-run", "^$", "-bench", "Bank$", "-benchtime", "1x", "-count", "1",
           "./ml/logistic", "./ml/svm", "./ml/gbt"]

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
    ap.add_argument("--runs", type=int, default=5, help="rounds of fits; medians are printed; 0 skips the timing")
    ap.add_argument("--go", action="store_true", help="also run the Go benchmarks, alternating rounds")
    ap.add_argument("--mesh-seeds", type=int, default=0, metavar="N",
                    help="also check the boosted trees' test AUC through the mesh over seeds 1..N")
    ap.add_argument("--clv", action="store_true", help="also fit CDNOW's lifetime value model through the mesh beside scipy")
    ap.add_argument("--write", metavar="FILE", help="replace the bench-train (and bench-train-mesh, bench-train-clv) section of FILE")
    args = ap.parse_args()
    if args.runs < 0 or args.mesh_seeds < 0:
        ap.error("--runs and --mesh-seeds cannot be negative")
    if args.runs == 0 and args.mesh_seeds == 0 and not args.clv:
        ap.error("nothing to do: --runs 0 without --mesh-seeds or --clv")
    if args.runs > 0:
        timing(args)
    if args.mesh_seeds > 0:
        lines = mesh_table(args.mesh_seeds)
        print("\n".join(lines))
        if args.write:
            write_section(args.write, "bench-train-mesh",
                          f"make bench-train (--mesh-seeds {args.mesh_seeds})", lines)
    if args.clv:
        lines = clv_table()
        print("\n".join(lines))
        if args.write:
            write_section(args.write, "bench-train-clv", "make bench-train (--clv)", lines)


def timing(args):
    """The fit-time table (the bench-train section)."""
    import sklearn
    sk = SklearnSide()
    go = GoSide() if args.go else None
    for r in range(args.runs):
        print(f"round {r + 1}/{args.runs}", file=sys.stderr)
        sk.round()
        if go:
            go.round()

    lines = [f"Bank Marketing, test = rows with i % 5 == 4 (8,237); fit time = median of {args.runs} rounds; "
             f"scikit-learn {sklearn.__version__}, XGBoost {xgboost.__version__}"]
    head = f"{'model':32} {'duration':8} {'feat':>4} {'baseline s':>10} {'baseline AUC':>12}"
    if go:
        head += f" {'bullseye s':>10} {'bullseye AUC':>12} {'time ratio':>10} {'AUC diff':>8}"
    lines.append(head)
    rows = [(key, label, bench, prefix) for key, label, _, bench, prefix, _ in MODELS]
    rows += [(key, label, "BenchmarkGBTBank", "") for key, label in TREE_MODELS]
    for key, label, bench, prefix in rows:
        for dur in (True, False):
            secs = statistics.median(sk.times[(key, dur)])
            auc = sk.aucs[(key, dur)]
            mark = "*" if (key, dur) in sk.unconverged else " "
            line = f"{label:32} {'with' if dur else 'without':8} {sk.features[(key, dur)]:4d} {secs:9.3f}{mark} {auc:12.4f}"
            sub = prefix + ("with-duration" if dur else "without-duration")
            if go and (bench, sub) in go.times:
                gsecs = statistics.median(go.times[(bench, sub)])
                gauc = go.aucs[(bench, sub)]
                line += f" {gsecs:10.3f} {gauc:12.4f} {gsecs / secs:10.2f} {gauc - auc:+8.4f}"
            lines.append(line)
    if sk.unconverged:
        lines.append("* scikit-learn warned that the solver reached max_iter without converging")
    print("\n".join(lines))
    if args.write:
        write_section(args.write, "bench-train", "make bench-train", lines)


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    go = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True).stdout.strip()
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, {go}, Python {platform.python_version()}"


def write_section(path, name, command, lines):
    """Replaces the section between the markers of name in path (appending it when absent)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    body = (f"{begin}\n## {command}\n\nMeasured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
            f"{machine()}.\n\n```\n" + "\n".join(lines) + f"\n```\n{end}\n")
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n\nWritten by the benchmarks themselves (make bench-*).\n\n"
    if begin in text and end in text:
        text = text[:text.index(begin)] + body + text[text.index(end) + len(end) + 1:]
    else:
        text += ("\n" if not text.endswith("\n") else "") + body
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
