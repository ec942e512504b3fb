"""Trains XGBoost models on a CSV of generated rows and saves, for each objective, the
model as JSON (Booster.save_model) and XGBoost's own predictions and contributions.

usage: xgboost_export.py ROWS.csv OUTDIR
ROWS.csv: header a,b,c,k,y; empty cells are missing; k is a category code.
"""
import json
import sys

import numpy as np
import pandas as pd
import xgboost as xgb

rows, out = sys.argv[1], sys.argv[2]
df = pd.read_csv(rows)
y = df.pop("y").to_numpy()
num = df[["a", "b", "c"]]
cat = df.copy()
cat["k"] = pd.Categorical(cat["k"].astype("Int64"), categories=list(range(12)))

runs = {
    "logistic": ({"objective": "binary:logistic"}, num.assign(k=df["k"]), (y > 0.5).astype(int)),
    "logistic-categorical": ({"objective": "binary:logistic", "max_cat_to_onehot": 1}, cat, (y > 0.5).astype(int)),
    "squarederror": ({"objective": "reg:squarederror"}, num.assign(k=df["k"]), y),
    "poisson": ({"objective": "count:poisson"}, num.assign(k=df["k"]), np.floor(np.abs(y) * 3)),
}
for name, (params, x, label) in runs.items():
    d = xgb.DMatrix(x, label=label, enable_categorical=True, missing=np.nan)
    p = {"tree_method": "hist", "max_depth": 5, "eta": 0.1, "subsample": 0.8, "colsample_bytree": 0.8, "seed": 1}
    p.update(params)
    b = xgb.train(p, d, num_boost_round=40)
    b.save_model(f"{out}/{name}.json")
    result = {
        "margin": b.predict(d, output_margin=True).astype(float).tolist(),
        "prediction": b.predict(d).astype(float).tolist(),
        "contributions": b.predict(d, pred_contribs=True).astype(float).tolist(),
    }
    with open(f"{out}/{name}.predictions.json", "w") as f:
        json.dump(result, f)
