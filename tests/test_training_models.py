"""Heuristics, LightGBM models and metrics on synthetic numpy data (no database)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from mlops import repository
from mlops.errors import InputError
from mlops.training import heuristics, metrics, models_fit, split_keys
from mlops.training import models as m
from tests.repo_support import HEURISTICS as h
from tests.repo_support import JOBS

ETA = {"prep_minutes": 12.0, "speed_kmh": 15.0, "zone_speed_kmh": {"Z01": 10.0, "Z02": 0.0}}
# The bundled repository's heuristics as the engine calls them (ETA with the constants above).
CHURN_H, UPSELL_H = JOBS["churn"].heuristic, JOBS["upsell"].heuristic
ETA_H = replace(JOBS["eta"].heuristic, params=ETA)
CHURN_FEATURES = [
    "days_since_last_order",
    "orders_30d",
    "orders_90d",
    "support_tickets_90d",
    "plan",
]
ETA_FEATURES = ["zone", "distance_km", "hour", "open_deliveries"]


# --- synthetic data -----------------------------------------------------------------------


def churn_frame(n: int, seed: int) -> pd.DataFrame:
    """Churn driven by support tickets and plan, which the heuristic does not look at."""
    rng = np.random.default_rng(seed)
    days = rng.exponential(10.0, n)
    days[rng.random(n) < 0.1] = np.nan
    plan = rng.choice(np.array(["basic", "plus", "premium"], dtype=object), n)
    plan[rng.random(n) < 0.05] = None
    frame = pd.DataFrame(
        {
            "event_time": np.repeat(np.arange(n // 500 + 1), 500)[:n],
            "days_since_last_order": days,
            "orders_30d": rng.poisson(3.0, n),
            "orders_90d": rng.poisson(9.0, n),
            "support_tickets_90d": rng.poisson(0.6, n),
            "plan": plan,
        }
    )
    z = -2.0 + 1.3 * frame["support_tickets_90d"] - 1.2 * (frame["plan"] == "premium")
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return frame


def eta_frame(n: int, seed: int) -> pd.DataFrame:
    """Minutes depend on zone speed, distance, rush hour and load: more than the SLA formula."""
    rng = np.random.default_rng(seed)
    zones = np.array([f"Z{i:02d}" for i in range(1, 9)], dtype=object)
    mpk = dict(zip(zones, np.linspace(2.0, 4.0, zones.size), strict=True))
    zone = rng.choice(zones, n)
    distance = rng.gamma(4.0, 0.8, n)
    hour = rng.integers(0, 24, n)
    load = rng.poisson(5.0, n)
    rush = np.where(np.isin(hour, [12, 13, 18, 19]), 1.3, 1.0)
    minutes = (3.0 + distance * np.vectorize(mpk.get)(zone) * rush + 0.8 * load) * rng.lognormal(
        0.0, 0.1, n
    )
    return pd.DataFrame(
        {
            "event_time": np.arange(n),
            "zone": zone,
            "distance_km": distance,
            "hour": hour,
            "open_deliveries": load,
            "label": minutes,
        }
    )


@pytest.fixture(scope="module")
def churn_data():
    return churn_frame(12_000, seed=1), churn_frame(6_000, seed=2)


@pytest.fixture(scope="module")
def classifier(churn_data):
    train, _ = churn_data
    return models_fit.fit(
        "classifier", train, CHURN_FEATURES, ["plan"], "label", seed=3, time_column="event_time"
    )


@pytest.fixture(scope="module")
def eta_data():
    return eta_frame(12_000, seed=4), eta_frame(4_000, seed=5)


@pytest.fixture(scope="module")
def regressor(eta_data):
    train, _ = eta_data
    return models_fit.fit("regressor", train, ETA_FEATURES, ["zone"], "label", seed=3)


# --- heuristics ---------------------------------------------------------------------------


def _with_gaps(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    values = values.astype(float)
    values[rng.random(values.size) < 0.2] = np.nan
    return values


def test_heuristics_give_the_same_numbers_on_scalars_and_arrays():
    rng = np.random.default_rng(0)
    n = 300
    days = _with_gaps(rng, rng.exponential(15.0, n))
    o30 = _with_gaps(rng, rng.poisson(2.0, n))
    o90 = _with_gaps(rng, rng.poisson(6.0, n))
    rate = _with_gaps(rng, rng.random(n))
    shown = _with_gaps(rng, rng.poisson(5.0, n))
    discount = _with_gaps(rng, rng.choice([5.0, 20.0, 40.0], n))
    distance = _with_gaps(rng, rng.gamma(3.0, 1.0, n))
    zone = rng.choice(np.array(["Z01", "Z02", "Z03", None], dtype=object), n)

    churn = h.churn_risk(days, o30, o90)
    upsell = h.upsell_propensity(rate, discount, shown)
    eta = h.eta_sla_minutes(distance, zone, **ETA)
    for i in range(n):
        assert h.churn_risk(days[i], o30[i], o90[i]) == pytest.approx(churn[i], rel=1e-12)
        assert h.upsell_propensity(rate[i], discount[i], shown[i]) == pytest.approx(
            upsell[i], rel=1e-12
        )
        assert h.eta_sla_minutes(distance[i], zone[i], **ETA) == pytest.approx(eta[i], rel=1e-12)

    frame = pd.DataFrame(
        {
            "days_since_last_order": days,
            "orders_30d": pd.array(np.where(np.isnan(o30), None, o30), dtype="Float64"),
            "orders_90d": o90,
            "acceptance_rate_90d": rate,
            "impressions_90d": shown,
            "discount_pct": discount,
            "distance_km": distance,
            "zone": zone,
        }
    )
    np.testing.assert_allclose(CHURN_H.frame(frame), churn, rtol=1e-12)
    np.testing.assert_allclose(UPSELL_H.frame(frame), upsell, rtol=1e-12)
    np.testing.assert_allclose(ETA_H.frame(frame), eta, rtol=1e-12)
    for i, row in enumerate(frame.to_dict("records")):
        assert CHURN_H.row(row) == pytest.approx(churn[i], rel=1e-12)
        assert UPSELL_H.row(row) == pytest.approx(upsell[i], rel=1e-12)
        assert ETA_H.row(row) == pytest.approx(eta[i], rel=1e-12)


def test_heuristics_answer_sensibly_when_inputs_are_missing():
    for row in ({}, dict.fromkeys(CHURN_H.inputs + UPSELL_H.inputs + ETA_H.inputs)):
        for value in (CHURN_H.row(row), UPSELL_H.row(row)):
            assert isinstance(value, float) and 0 < value < 1
        assert ETA_H.row(row) == pytest.approx(12.0 + 3.0 / 15.0 * 60)
    # A customer who never ordered is high risk, above one seen yesterday at a steady rate.
    never = CHURN_H.row({"days_since_last_order": None, "orders_30d": 0, "orders_90d": 0})
    steady = CHURN_H.row({"days_since_last_order": 1, "orders_30d": 3, "orders_90d": 9})
    assert never > 0.9 and steady < 0.1
    # pandas NA and garbage count as missing, not as errors.
    assert CHURN_H.row({"days_since_last_order": pd.NA, "orders_30d": "x"}) > 0.5
    # No acceptance history: the prior alone, at the reference discount.
    assert UPSELL_H.row({"discount_pct": 20}) == pytest.approx(h.UPSELL_PRIOR_RATE)
    out = h.churn_risk(np.array([np.nan, 5.0]), np.array([np.nan, 1.0]), np.array([0.0, np.nan]))
    assert np.isfinite(out).all()


def test_heuristics_move_the_expected_way():
    days = np.arange(0.0, 120.0)
    risk = h.churn_risk(days, 3.0, 9.0)
    assert (np.diff(risk) >= 0).all() and risk[60] > risk[0] + 0.5
    assert h.churn_risk(5.0, 0.0, 9.0) > h.churn_risk(5.0, 3.0, 9.0)  # frequency dropped

    discount = np.arange(0.0, 60.0, 5.0)
    assert (np.diff(h.upsell_propensity(0.2, discount, 30.0)) > 0).all()
    assert h.upsell_propensity(0.6, 20.0, 50.0) > h.upsell_propensity(0.2, 20.0, 50.0)
    # Few impressions pull the rate toward the prior.
    assert h.upsell_propensity(1.0, 20.0, 1.0) < h.upsell_propensity(1.0, 20.0, 100.0)

    distance = np.linspace(0.0, 10.0, 11)
    assert (np.diff(h.eta_sla_minutes(distance, "Z03", **ETA)) > 0).all()
    assert h.eta_sla_minutes(5.0, "Z01", **ETA) == pytest.approx(12.0 + 5.0 / 10.0 * 60)
    assert h.eta_sla_minutes(5.0, "Z03", **ETA) == pytest.approx(12.0 + 5.0 / 15.0 * 60)
    # A zero zone speed is ignored, not divided by.
    assert h.eta_sla_minutes(5.0, "Z02", **ETA) == h.eta_sla_minutes(5.0, "Z03", **ETA)


def test_heuristic_params_come_from_the_repository_and_the_settings_override_them():
    assert JOBS["eta"].heuristic.params["speed_kmh"] == 17.0
    override = {"eta": {"prep_minutes": 10, "speed_kmh": 20, "zone_speed_kmh": {"Z09": 30}}}
    eta = repository.load(repository.bundled(), heuristic_params=override).job("eta").heuristic
    assert eta.row({"distance_km": 6.0, "zone": "Z09"}) == pytest.approx(10 + 12)
    assert eta.row({"distance_km": 6.0, "zone": "Z01"}) == pytest.approx(10 + 18)
    with pytest.raises(repository.RepositoryInvalid, match="names no job"):
        repository.load(repository.bundled(), heuristic_params={"fraud": {}})


def test_an_absent_column_is_a_missing_value_and_named_inputs_are_required():
    # No orders_90d column: no evidence of a drop, the same as a missing value.
    frame = pd.DataFrame({"days_since_last_order": [1.0], "orders_30d": [1]})
    assert CHURN_H.frame(frame)[0] == pytest.approx(h.churn_risk(1.0, 1.0, math.nan))
    # impressions absent: the rate then weighs like the prior.
    frame = pd.DataFrame({"acceptance_rate_90d": [0.5], "discount_pct": [20.0]})
    assert UPSELL_H.frame(frame)[0] == pytest.approx(0.3)
    with pytest.raises(InputError, match="orders_90d"):
        CHURN_H.columns(days_since_last_order=np.ones(2), orders_30d=np.ones(2))


def test_heuristics_by_job():
    frame = pd.DataFrame(
        {
            "days_since_last_order": [2.0, None],
            "orders_30d": [1, 0],
            "orders_90d": [3, 0],
            "acceptance_rate_90d": [0.4, None],
            "discount_pct": [30.0, 10.0],
            "distance_km": [2.0, 4.0],
            "zone": ["Z01", None],
        }
    )
    row = frame.iloc[0].to_dict()
    for name, by_formula in (
        ("churn", h.churn_risk(frame["days_since_last_order"], frame["orders_30d"], [3.0, 0.0])),
        ("upsell", h.upsell_propensity(frame["acceptance_rate_90d"], frame["discount_pct"])),
        (
            "eta",
            h.eta_sla_minutes(frame["distance_km"], frame["zone"], **ETA_H.params),
        ),
    ):
        job = replace(JOBS[name], heuristic=ETA_H) if name == "eta" else JOBS[name]
        np.testing.assert_allclose(heuristics.score_frame(job, frame), by_formula, rtol=1e-12)
        assert heuristics.score_row(job, row) == pytest.approx(by_formula[0], rel=1e-12)
    with pytest.raises(InputError, match="declares no heuristic"):
        heuristics.score_row(replace(JOBS["eta"], heuristic=None), row)


# --- models -------------------------------------------------------------------------------


def test_classifier_learns_a_signal_the_heuristic_cannot_see(classifier, churn_data):
    _, valid = churn_data
    p = m.predict_frame(classifier, valid)
    assert ((p > 0) & (p < 1)).all()
    model_auc = roc_auc_score(valid["label"], p)
    heuristic_auc = roc_auc_score(valid["label"], CHURN_H.frame(valid))
    assert model_auc > 0.7
    assert model_auc > heuristic_auc + 0.1
    assert classifier.info["early_stopped"] and 0 < classifier.best_iteration < 1000


def test_holdout_keeps_each_timestamp_whole(classifier):
    # 12,000 rows in snapshots of 500: the 15% tail (1,800 rows) grows to whole snapshots.
    assert classifier.info["holdout_rows"] == 2_000
    assert classifier.info["train_rows"] == 10_000


def test_categoricals_unseen_and_missing_are_nan_and_rows_encode_like_frames(classifier):
    levels = classifier.category_levels["plan"]
    assert levels == ["basic", "plus", "premium"]
    frame = pd.DataFrame(
        {
            "days_since_last_order": [3.0, None, np.nan, 7.5, 1.0],
            "orders_30d": [1, 2, 3, 4, 5],
            "orders_90d": [3, 4, 5, 6, 7],
            "support_tickets_90d": [0, 1, 2, 3, 4],
            "plan": ["plus", "gold", None, np.nan, "premium"],
        }
    )
    X = m.encode(classifier, frame)
    assert X.dtype == np.float64 and X.shape == (5, len(CHURN_FEATURES))
    plan = X[:, CHURN_FEATURES.index("plan")]
    np.testing.assert_array_equal(plan, [1.0, np.nan, np.nan, np.nan, 2.0])
    assert np.isnan(X[1:3, 0]).all()
    for i, row in enumerate(frame.to_dict("records")):
        np.testing.assert_array_equal(m.encode_row(classifier, row), X[i : i + 1])
    # Absent keys and pandas NA are missing too; the column order is the model's, not the dict's.
    row = {"plan": pd.NA, "orders_90d": 5, "orders_30d": 3}
    np.testing.assert_array_equal(
        m.encode_row(classifier, row), [[np.nan, 3.0, 5.0, np.nan, np.nan]]
    )
    p_frame = m.predict(classifier, X)
    p_rows = [m.predict_row(classifier, r) for r in frame.to_dict("records")]
    np.testing.assert_array_equal(p_frame, p_rows)


def test_calibration_fixes_a_skewed_booster_on_held_out_data(churn_data):
    train, valid = churn_data
    # Up-weighting positives inflates LightGBM's own probabilities; calibration must undo it.
    model = models_fit.fit(
        "classifier",
        train,
        CHURN_FEATURES,
        ["plan"],
        "label",
        params={"scale_pos_weight": 4.0},
        time_column="event_time",
    )
    assert model.calibration.method == "platt" and model.calibration.rows == 2_000
    X = m.encode(model, valid)
    raw = m.Calibration().apply(model.booster.predict(X, raw_score=True))
    p = m.predict(model, X)
    observed = valid["label"].mean()
    assert raw.mean() > observed + 0.05
    assert p.mean() == pytest.approx(observed, abs=0.02)
    table = metrics.calibration_table(valid["label"], p, bins=5)
    for row in table:
        assert row["mean_predicted"] == pytest.approx(row["observed_rate"], abs=0.06)


def test_regressor_beats_the_sla_formula_and_p90_covers_ninety_percent(regressor, eta_data):
    _, valid = eta_data
    minutes = m.predict_frame(regressor, valid)
    sla = replace(ETA_H, params={"prep_minutes": 0.0, "speed_kmh": 20.0, "zone_speed_kmh": {}})
    sla = sla.frame(valid)
    model_mae = metrics.regression(valid["label"], minutes)["mae"]
    assert model_mae < 0.85 * metrics.regression(valid["label"], sla)["mae"]
    p90 = m.predict_p90(regressor, m.encode(regressor, valid))
    assert np.mean(valid["label"] <= p90) == pytest.approx(0.9, abs=0.04)
    assert regressor.calibration is None
    # the single-row path (LightGBM's one-row C API) gives exactly the batch numbers
    X = m.encode(regressor, valid.head(50))
    np.testing.assert_array_equal([m.predict_one(regressor, x) for x in X], minutes[:50])
    np.testing.assert_array_equal([m.predict_p90_one(regressor, x) for x in X], p90[:50])


def test_save_and_load_predict_exactly_the_same(tmp_path, classifier, regressor, churn_data):
    _, valid = churn_data
    m.save(classifier, tmp_path / "churn")
    loaded = m.load(tmp_path / "churn")
    assert sorted(p.name for p in (tmp_path / "churn").iterdir()) == [m.META_FILE, m.BOOSTER_FILE]
    for field in ("kind", "feature_columns", "categorical", "category_levels", "calibration"):
        assert getattr(loaded, field) == getattr(classifier, field)
    assert loaded.params == classifier.params
    expected = m.predict_frame(classifier, valid)
    np.testing.assert_array_equal(m.predict_frame(loaded, valid), expected)
    row = valid.iloc[7].to_dict()
    assert m.predict_row(loaded, row) == m.predict_row(classifier, row)

    m.save(regressor, tmp_path / "eta")
    loaded = m.load(tmp_path / "eta")
    X = m.encode(regressor, eta_frame(500, seed=9))
    np.testing.assert_array_equal(m.predict(loaded, X), m.predict(regressor, X))
    np.testing.assert_array_equal(m.predict_p90(loaded, X), m.predict_p90(regressor, X))


def test_fit_is_deterministic_per_seed(eta_data, regressor):
    train, valid = eta_data
    again = models_fit.fit("regressor", train, ETA_FEATURES, ["zone"], "label", seed=3, p90=False)
    X = m.encode(regressor, valid)
    np.testing.assert_array_equal(m.predict(again, X), m.predict(regressor, X))
    assert again.booster_p90 is None
    with pytest.raises(InputError, match="no p90"):
        m.predict_p90(again, X)


def test_small_data_trains_without_holdout_and_bad_input_is_refused():
    train = churn_frame(300, seed=6)
    model = models_fit.fit("classifier", train, CHURN_FEATURES, ["plan"], "label", p90=False)
    assert not model.info["early_stopped"] and model.calibration.method == "identity"
    assert model.best_iteration == models_fit.FIT_DEFAULTS["rounds_without_holdout"]

    one_class = train.assign(label=0)
    with pytest.raises(InputError, match="one class"):
        models_fit.fit("classifier", one_class, CHURN_FEATURES, ["plan"], "label")
    with pytest.raises(InputError, match="lacks columns: nope"):
        models_fit.fit("classifier", train, [*CHURN_FEATURES, "nope"], ["plan"], "label")
    with pytest.raises(InputError, match="not among the features"):
        models_fit.fit("classifier", train, CHURN_FEATURES[:-1], ["plan"], "label")
    with pytest.raises(InputError, match="model kind"):
        models_fit.fit("ranker", train, CHURN_FEATURES, ["plan"], "label")
    with pytest.raises(InputError, match="lacks the model's feature columns"):
        m.encode(model, train.drop(columns=["orders_30d"]))


def test_load_refuses_a_directory_without_a_model(tmp_path):
    with pytest.raises(InputError, match="no model"):
        m.load(tmp_path)


# --- metrics ------------------------------------------------------------------------------

Y = [0, 0, 1, 1]
P = [0.1, 0.4, 0.35, 0.8]


def test_classification_metrics_match_scikit_learn_and_hand_computation():
    got = metrics.classification(Y, P)
    assert got["roc_auc"] == pytest.approx(0.75)  # 3 of 4 positive-negative pairs ordered
    assert got["pr_auc"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert got["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.6, 0.35, 0.8])))
    assert got["brier"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    assert got["roc_auc"] == pytest.approx(roc_auc_score(Y, P))
    assert got["pr_auc"] == pytest.approx(average_precision_score(Y, P))
    assert got["log_loss"] == pytest.approx(log_loss(Y, P))
    assert got["brier"] == pytest.approx(brier_score_loss(Y, P))
    assert (got["rows"], got["positive_rate"], got["mean_predicted"]) == (4.0, 0.5, 0.4125)
    assert all(isinstance(v, float) for v in got.values())


def test_calibration_table_by_hand():
    table = metrics.calibration_table(Y, P, bins=2, strategy="uniform")
    assert table == [
        {
            "bin": 0,
            "lower": 0.0,
            "upper": 0.5,
            "mean_predicted": pytest.approx(0.85 / 3),
            "observed_rate": pytest.approx(1 / 3),
            "count": 3,
        },
        {
            "bin": 1,
            "lower": 0.5,
            "upper": 1.0,
            "mean_predicted": 0.8,
            "observed_rate": 1.0,
            "count": 1,
        },
    ]
    rng = np.random.default_rng(0)
    p = rng.random(1_000)
    table = metrics.calibration_table(rng.random(1_000) < p, p, bins=10)
    assert [row["count"] for row in table] == [100] * 10


def test_metrics_on_degenerate_input():
    one_class = metrics.classification([1, 1, 1], [0.2, 0.9, 0.6])
    assert math.isnan(one_class["roc_auc"]) and math.isnan(one_class["pr_auc"])
    assert math.isfinite(one_class["log_loss"]) and math.isfinite(one_class["brier"])
    assert math.isfinite(metrics.classification([0, 1], [0.0, 1.0])["log_loss"])
    with pytest.raises(InputError, match="no rows"):
        metrics.classification([], [])
    with pytest.raises(InputError, match="has 3 values but"):
        metrics.regression([1, 2, 3], [1, 2])
    with pytest.raises(InputError, match="missing"):
        metrics.classification([0, 1], [0.5, np.nan])
    with pytest.raises(InputError, match="only 0 and 1"):
        metrics.classification([0, 2], [0.5, 0.5])


def test_regression_metrics_by_hand():
    got = metrics.regression([10, 20, 30, 40], [12, 18, 45, 40])  # errors 2, 2, 15, 0
    assert got == {
        "mae": pytest.approx(4.75),
        "median_abs_error": pytest.approx(2.0),
        "p90_abs_error": pytest.approx(2 + 0.7 * 13),  # linear interpolation of 0, 2, 2, 15
        "within_10min": 0.75,
        "bias": pytest.approx(3.75),
        "rows": 4.0,
    }


# --- split keys ---------------------------------------------------------------------------


def _both(model, x):
    p90 = m.predict_p90_one(model, x) if model.booster_p90 is not None else None
    return m.predict_one(model, x), p90


@pytest.mark.parametrize("which", ["regressor", "classifier"])
def test_rows_with_one_split_key_get_one_prediction(which, request, eta_data, churn_data):
    model = request.getfixturevalue(which)
    frame = (eta_data if which == "regressor" else churn_data)[1]
    rows = m.encode(model, frame.head(200))
    points = split_keys.split_points(model)
    rng = np.random.default_rng(7)
    checked = differ = 0
    for x in rows:
        j = int(rng.integers(len(points)))
        if points[j] is None or len(points[j]) < 2:
            continue
        i = int(rng.integers(len(points[j]) - 1))
        low, high = points[j][i], points[j][i + 1]
        # Just above a threshold, anywhere inside, and on the next one: one interval.
        same = [np.nextafter(low, np.inf), low + (high - low) * rng.random(), high]
        keys, answers = set(), set()
        for v in same:
            y = x.copy()
            y[j] = v
            keys.add(split_keys.split_key(model, y))
            answers.add(_both(model, y))
        assert len(keys) == 1 and len(answers) == 1, (model.feature_columns[j], low, high)
        y = x.copy()
        y[j] = low  # on the lower threshold: the interval below, another key
        differ += split_keys.split_key(model, y) != keys.pop()
        checked += 1
    assert checked > 50 and differ == checked
    numeric = next(j for j, cuts in enumerate(points) if cuts is not None)
    missing, zero = rows[0].copy(), rows[0].copy()
    missing[numeric], zero[numeric] = np.nan, 0.0
    assert split_keys.split_key(model, missing)[numeric] == "nan"
    assert split_keys.split_key(model, zero)[numeric] == "zero"
    assert split_keys.split_key(model, missing) == split_keys.split_key(model, missing.copy())


def test_no_split_key_without_lightgbm_trees(regressor, eta_data):
    x = m.encode(regressor, eta_data[1].head(1))[0]
    assert split_keys.split_key(regressor, x) is not None
    real = regressor.booster
    try:
        regressor.booster = object()  # a stand-in for the booster: no trees to read
        assert split_keys.split_key(regressor, x) is None
    finally:
        regressor.booster = real
    assert split_keys.split_key(regressor, x) is not None  # read again from the booster itself
