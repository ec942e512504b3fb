"""Scikit-uplift's uplift metrics (sklift.metrics 0.5.1), restated with numpy and scikit-learn.

Reads a JSON list of cases {"y": [...], "uplift": [...], "treatment": [...], "k": [...]} on
stdin and writes, for each case, the metrics as sklift defines them. scikit-uplift itself is
not installed here; each function below follows the corresponding sklift function's formula.
"""
import json
import sys

import numpy as np
from sklearn.metrics import auc


def _sorted(y, u, t):
    # sklift: np.argsort(uplift, kind="mergesort")[::-1]
    o = np.argsort(u, kind="mergesort")[::-1]
    return y[o], u[o], t[o]


def _cumulative(y, u, t):
    y, u, t = _sorted(y, u, t)
    # one point per distinct uplift: the last index of each run of equal values
    last = np.r_[np.where(np.diff(u))[0], u.size - 1]
    n_t = np.cumsum(t)[last]
    r_t = np.cumsum(y * t)[last]
    r_c = np.cumsum(y * (1 - t))[last]
    n = last + 1
    return n, n_t, n - n_t, r_t, r_c


def qini_curve(y, u, t):
    n, n_t, n_c, r_t, r_c = _cumulative(y, u, t)
    ratio = np.divide(n_t, n_c, out=np.zeros(n_t.shape), where=n_c != 0)
    return np.r_[0, n], np.r_[0, r_t - r_c * ratio]


def uplift_curve(y, u, t):
    n, n_t, n_c, r_t, r_c = _cumulative(y, u, t)
    rate_t = np.divide(r_t, n_t, out=np.zeros(r_t.shape), where=n_t != 0)
    rate_c = np.divide(r_c, n_c, out=np.zeros(r_c.shape), where=n_c != 0)
    return np.r_[0, n], np.r_[0, (rate_t - rate_c) * n]


def perfect_qini_curve(y, t, negative_effect):
    if negative_effect:
        return qini_curve(y, y * t - y * (1 - t), t)
    g = y[t == 1].sum() - (t == 1).sum() * y[t == 0].sum() / (t == 0).sum()
    return np.array([0.0, g, len(y)]), np.array([0.0, g, g])


def perfect_uplift_curve(y, t):
    control_responders = np.sum((y == 1) & (t == 0))
    treated_non_responders = np.sum((y == 0) & (t == 1))
    s = y if control_responders > treated_non_responders else t
    return uplift_curve(y, 2 * (y == t) + s, t)


def _normalised(actual, perfect):
    """Returns None where sklift raises (auc of a non-monotonic curve) or divides by zero."""
    xp, yp = perfect
    base = auc(np.array([0, xp[-1]]), np.array([0, yp[-1]]))
    try:
        den = auc(xp, yp) - base
    except ValueError:
        return None
    if den == 0:
        return None
    return (auc(*actual) - base) / den


def uplift_at_k(y, u, t, k, strategy):
    o = np.argsort(u, kind="mergesort")[::-1]
    y, t = y[o], t[o]
    if strategy == "overall":
        m = int(len(y) * k)
        return y[:m][t[:m] == 1].mean() - y[:m][t[:m] == 0].mean()
    m_t, m_c = int((t == 1).sum() * k), int((t == 0).sum() * k)
    return y[t == 1][:m_t].mean() - y[t == 0][:m_c].mean()


def main():
    out = []
    for case in json.load(sys.stdin):
        y = np.asarray(case["y"], dtype=float)
        u = np.asarray(case["uplift"], dtype=float)
        t = np.asarray(case["treatment"], dtype=float)
        qx, qy = qini_curve(y, u, t)
        ux, uy = uplift_curve(y, u, t)
        out.append({
            "qini_x": qx.tolist(), "qini_y": qy.tolist(),
            "uplift_x": ux.tolist(), "uplift_y": uy.tolist(),
            "qini_auc": _normalised((qx, qy), perfect_qini_curve(y, t, True)),
            "qini_auc_no_negative": _normalised((qx, qy), perfect_qini_curve(y, t, False)),
            "uplift_auc": _normalised((ux, uy), perfect_uplift_curve(y, t)),
            "overall": [uplift_at_k(y, u, t, k, "overall") for k in case["k"]],
            "by_group": [uplift_at_k(y, u, t, k, "by_group") for k in case["k"]],
        })
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
