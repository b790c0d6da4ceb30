"""Smoke test of the serving layer, run by `scripts/build_layers.py --verify`.

Runs in `python -I -S -B` with sys.path = [the unzipped layer's python/] + the standard library.
Times the imports a cold start pays, then loads an XGBoost model from a file and predicts.
"""

import sys
import tempfile
import time
from pathlib import Path


def run() -> dict:
    imports = {}
    t = time.perf_counter()
    import numpy as np

    imports["numpy"] = time.perf_counter() - t
    t = time.perf_counter()
    import xgboost as xgb

    imports["xgboost"] = time.perf_counter() - t

    # The point of this layer: nothing heavy comes along with xgboost.
    absent = ["sklearn", "pandas"]
    present = [m for m in absent if m in sys.modules]
    assert not present, f"serving layer imported {present}"

    rng = np.random.default_rng(0)
    X = rng.random((400, 12)).astype(np.float32)
    y = (X[:, 0] + X[:, 3] > 1.0).astype(np.float32)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
        xgb.DMatrix(X, label=y),
        num_boost_round=10,
    )
    checks = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("ubj", "json"):
            path = Path(tmp) / f"model.{fmt}"
            booster.save_model(str(path))
            loaded = xgb.Booster(model_file=str(path))
            p_dmatrix = loaded.predict(xgb.DMatrix(X[:5]))
            p_inplace = loaded.inplace_predict(X[:5])
            assert np.allclose(p_dmatrix, booster.predict(xgb.DMatrix(X[:5])), atol=1e-6)
            assert np.allclose(p_dmatrix, p_inplace, atol=1e-6)
            checks[f"booster_{fmt}_predict"] = [round(float(v), 4) for v in p_dmatrix[:3]]
    checks["accuracy"] = float(((booster.predict(xgb.DMatrix(X)) > 0.5) == y).mean())
    assert checks["accuracy"] > 0.9
    checks["numpy_linalg"] = float(np.linalg.solve(np.eye(3) * 2.0, np.ones(3)).sum())  # BLAS loads
    checks["versions"] = {"numpy": np.__version__, "xgboost": xgb.__version__}
    return {"imports": imports, "modules": ["numpy", "xgboost"], "checks": checks, "absent": absent}
