"""Trains an XGBoost classifier on Bank Marketing with native categorical features, as it
would be in a notebook, and saves what the model-import test compares with.

usage: bank_xgboost.py bank-additional-full.csv MAPPING.json OUTDIR

MAPPING.json is the input signature the model is imported with (a
bullseye.model.v1.InputSignature in protobuf JSON). The model's features are its
modelFeature names, read from the CSV's columns of those names; a feature with categories is
a pandas Categorical of exactly those categories in that order, so that its codes are the
mapping's (any other value is missing). Rows i % 5 == 4 are the test rows, the others train.
OUTDIR gets model.json (Booster.save_model) and predictions.json: {"rows": [...],
"probability": [...]}, XGBoost's probability of "yes" (predict_proba's positive column) for
every test row.
"""
import json
import sys

import numpy as np
import pandas as pd
import xgboost as xgb

bank, mapping, out = sys.argv[1:4]
with open(mapping) as f:
    signature = json.load(f)
df = pd.read_csv(bank, sep=";")
x = pd.DataFrame(index=df.index)
for feature in signature["features"]:
    name = feature["modelFeature"]
    if "categories" in feature:
        x[name] = pd.Categorical(df[name], categories=feature["categories"])
    else:
        x[name] = df[name].astype("float64")
y = (df["y"] == "yes").astype(int).to_numpy()
test = np.arange(len(df)) % 5 == 4

train = xgb.DMatrix(x[~test], label=y[~test], enable_categorical=True)
params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6, "eta": 0.1,
          "subsample": 0.8, "colsample_bytree": 0.8, "seed": 1}
booster = xgb.train(params, train, num_boost_round=200)
booster.save_model(f"{out}/model.json")
probability = booster.predict(xgb.DMatrix(x[test], enable_categorical=True))
with open(f"{out}/predictions.json", "w") as f:
    json.dump({"rows": np.flatnonzero(test).tolist(), "probability": probability.astype(float).tolist()}, f)
