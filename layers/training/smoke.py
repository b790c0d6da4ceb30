"""Smoke test of the training layer, run by `scripts/build_layers.py --verify`.

Runs in `python -I -S -B` with sys.path = [the unzipped layer's python/] + the standard library.
Times the imports, then fits each kind of model the jobs train and round-trips one through joblib.
"""

import tempfile
import time
from pathlib import Path


def run() -> dict:
    imports = {}
    t = time.perf_counter()
    import numpy as np

    imports["numpy"] = time.perf_counter() - t
    t = time.perf_counter()
    import sklearn.linear_model

    imports["sklearn.linear_model"] = time.perf_counter() - t
    t = time.perf_counter()
    import xgboost as xgb

    imports["xgboost"] = time.perf_counter() - t
    t = time.perf_counter()
    import joblib

    imports["joblib"] = time.perf_counter() - t
    t = time.perf_counter()
    import scipy.stats
    import sklearn.ensemble

    imports["scipy.stats+sklearn.ensemble"] = time.perf_counter() - t

    rng = np.random.default_rng(0)
    X = rng.random((400, 12))
    y = (X[:, 0] + X[:, 3] > 1.0).astype(int)
    checks = {}

    conflict = sklearn.linear_model.LogisticRegression().fit(X[:, :5], y)
    checks["logistic_accuracy"] = float(conflict.score(X[:, :5], y))
    fraud = xgb.XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1).fit(X, y)
    checks["xgb_accuracy"] = float(fraud.score(X, y))
    iso = sklearn.ensemble.IsolationForest(n_estimators=20, random_state=0).fit(X)
    checks["isolation_forest_score"] = round(float(iso.score_samples(X[:1])[0]), 4)
    checks["ks_pvalue"] = round(float(scipy.stats.ks_2samp(X[:, 0], X[:, 1]).pvalue), 4)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "conflict.joblib"
        joblib.dump(conflict, path)
        again = joblib.load(path)
        assert np.allclose(again.predict_proba(X[:5, :5]), conflict.predict_proba(X[:5, :5]))
        booster_path = Path(tmp) / "fraud.ubj"
        fraud.get_booster().save_model(str(booster_path))
        loaded = xgb.Booster(model_file=str(booster_path))
        assert np.allclose(
            loaded.inplace_predict(X[:5]), fraud.predict_proba(X[:5])[:, 1], atol=1e-6
        )
    assert checks["logistic_accuracy"] > 0.9 and checks["xgb_accuracy"] > 0.9
    checks["versions"] = {
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "sklearn": sklearn.__version__,
        "xgboost": xgb.__version__,
        "joblib": joblib.__version__,
    }
    return {
        "imports": imports,
        "modules": ["numpy", "scipy", "sklearn", "xgboost", "joblib"],
        "checks": checks,
        "absent": [],
    }
