"""The drift statistics against scipy and against arithmetic written out by hand."""

import math

import numpy as np
import pytest
import scipy.stats

from mlops.monitoring import stats
from mlops.monitoring.stats import EPSILON


@pytest.mark.parametrize(
    ("n_ref", "n_live", "shift", "decimals", "seed"),
    [
        (2000, 300, 0.0, 6, 1),  # continuous, no drift
        (2000, 300, 0.4, 6, 2),  # continuous, shifted
        (2000, 50_000, 0.05, 6, 3),  # a large live sample
        (150, 2000, 0.2, 0, 4),  # integers: heavy ties, the live side larger
        (500, 500, 0.0, 1, 5),  # equal sizes, ties
        (7, 13, 1.0, 0, 6),  # tiny samples
        (1, 40, 0.0, 2, 7),  # a one-value reference
    ],
)
def test_ks_equals_scipy(n_ref, n_live, shift, decimals, seed):
    rng = np.random.default_rng(seed)
    ref = np.round(rng.normal(0, 1.5, n_ref), decimals)
    live = np.round(rng.normal(shift, 1.5, n_live), decimals)
    ours = stats.ks_2samp(ref, live)
    theirs = scipy.stats.ks_2samp(ref, live, method="asymp")
    assert ours.statistic == pytest.approx(float(theirs.statistic), rel=1e-12, abs=1e-15)
    assert ours.pvalue == pytest.approx(float(theirs.pvalue), rel=1e-9, abs=1e-300)
    assert ours.sample_size == n_live


def test_ks_of_identical_samples_and_of_disjoint_ones():
    values = np.arange(100.0)
    same = stats.ks_2samp(values, values[::-1])
    assert same.statistic == 0.0 and same.pvalue == 1.0
    apart = stats.ks_2samp(values, values + 1000)
    assert apart.statistic == 1.0 and apart.pvalue < 1e-40


def test_ks_leaves_missing_values_out():
    rng = np.random.default_rng(8)
    ref, live = rng.normal(size=400), rng.normal(0.3, size=300)
    with_nans = np.concatenate([live, [np.nan] * 50])
    ours = stats.ks_2samp(np.append(ref, np.nan), with_nans)
    theirs = scipy.stats.ks_2samp(ref, live, method="asymp")
    assert ours.statistic == pytest.approx(float(theirs.statistic), rel=1e-12)
    assert ours.pvalue == pytest.approx(float(theirs.pvalue), rel=1e-9)
    assert ours.sample_size == 300


def test_psi_numeric_by_hand():
    # Reference: 10 values in bins [0,10) [10,20) [20,30] -> counts 2, 5, 3; no missing values.
    edges, counts = [0.0, 10.0, 20.0, 30.0], [2, 5, 3]
    # Live: -5 (below the range: first bin), 1, 9 | 12, 15, 18 | 25, 30 (the last edge is in the
    # last bin), 40 (above the range: last bin) | one missing value. 10 values.
    live = np.array([-5, 1, 9, 12, 15, 18, 25, 30, 40, np.nan])
    # shares: expected 0.2, 0.5, 0.3, missing 0 (-> EPSILON); actual 0.3, 0.3, 0.3, 0.1
    expected = (
        (0.3 - 0.2) * math.log(0.3 / 0.2)
        + (0.3 - 0.5) * math.log(0.3 / 0.5)
        + (0.3 - 0.3) * math.log(0.3 / 0.3)
        + (0.1 - EPSILON) * math.log(0.1 / EPSILON)
    )
    assert expected == pytest.approx(0.8327964, abs=1e-7)
    assert stats.psi_numeric(edges, counts, live) == pytest.approx(expected, rel=1e-12)


def test_psi_numeric_scales_the_reference_by_its_missing_share():
    # null_share 0.2: expected 0.8 * (0.2, 0.5, 0.3) = 0.16, 0.40, 0.24 and missing 0.2.
    live = np.array([1, 2, 11, 12, 13, 14, 21, 22, np.nan, np.nan])  # 0.2 0.4 0.2 0.2
    expected = (0.2 - 0.16) * math.log(0.2 / 0.16) + (0.2 - 0.24) * math.log(0.2 / 0.24)
    got = stats.psi_numeric([0, 10, 20, 30], [2, 5, 3], live, null_share=0.2)
    assert got == pytest.approx(expected, rel=1e-12)


def test_psi_bins_are_numpy_histogram_bins():
    rng = np.random.default_rng(9)
    values = rng.gamma(2.0, 3.0, 5000)
    edges = np.unique(np.quantile(values, np.linspace(0, 1, 11)))
    np.testing.assert_array_equal(
        stats.numeric_bins(edges, values), np.histogram(values, bins=edges)[0]
    )
    # Same data on both sides: PSI 0.
    counts = np.histogram(values, bins=edges)[0]
    assert stats.psi_numeric(edges, counts, values) == pytest.approx(0.0, abs=1e-12)


def test_psi_categorical_by_hand():
    shares = {"a": 0.5, "b": 0.3, "c": 0.2}
    live = ["a"] * 4 + ["b"] * 4 + ["d"] + [None]  # d was never seen; None is missing
    # actual: a 0.4, b 0.4, c 0 (-> EPSILON), unseen 0.1 (expected 0 -> EPSILON), missing 0.1
    # (expected 0 -> EPSILON)
    expected = (
        (0.4 - 0.5) * math.log(0.4 / 0.5)
        + (0.4 - 0.3) * math.log(0.4 / 0.3)
        + (EPSILON - 0.2) * math.log(EPSILON / 0.2)
        + 2 * (0.1 - EPSILON) * math.log(0.1 / EPSILON)
    )
    assert stats.psi_categorical(shares, live) == pytest.approx(expected, rel=1e-12)
    assert stats.psi_categorical(shares, ["a"] * 5 + ["b"] * 3 + ["c"] * 2) == pytest.approx(0)


def test_chi_square_by_hand():
    shares = {"a": 0.5, "b": 0.3, "c": 0.2}
    live = ["a"] * 50 + ["b"] * 20 + ["c"] * 30 + [None] * 7  # missing values are left out
    # expected counts 50, 30, 20: (0^2)/50 + (10^2)/30 + (10^2)/20 = 8.333...; 2 degrees of
    # freedom, whose survival function is exp(-x / 2).
    statistic = 0 / 50 + 100 / 30 + 100 / 20
    got = stats.chi2_categorical(shares, live)
    assert got.statistic == pytest.approx(statistic, rel=1e-12)
    assert got.pvalue == pytest.approx(math.exp(-statistic / 2), rel=1e-12)
    assert got.sample_size == 100


def test_chi_square_pools_unseen_categories_into_one_small_cell():
    shares = {"a": 0.5, "b": 0.3, "c": 0.2}
    live = ["a"] * 50 + ["b"] * 20 + ["c"] * 28 + ["x", "y"]
    # Known shares scaled by (1 - EPSILON), the unseen cell expected at EPSILON: of 100 values.
    expected = [50 * (1 - EPSILON), 30 * (1 - EPSILON), 20 * (1 - EPSILON), 100 * EPSILON]
    observed = [50, 20, 28, 2]
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    got = stats.chi2_categorical(shares, live)
    assert got.statistic == pytest.approx(statistic, rel=1e-12)
    assert got.pvalue == pytest.approx(scipy.stats.chi2.sf(statistic, 3), rel=1e-9)
    assert got.pvalue < 1e-10  # two values from nowhere in a hundred is drift


def test_two_sample_chi_square_by_hand():
    shares = {"a": 0.5, "b": 0.3, "c": 0.2}
    live = ["a"] * 30 + ["b"] * 30 + ["c"] * 40
    # A reference of 100 values: counts 50, 30, 20 against live 30, 30, 40. Column totals 80,
    # 60, 60, both rows 100 of 200: expected 40, 30, 30 in each row.
    statistic = 2 * ((50 - 40) ** 2 / 40 + 0 / 30 + (20 - 30) ** 2 / 30)
    got = stats.chi2_categorical(shares, live, reference_size=100)
    assert got.statistic == pytest.approx(statistic, rel=1e-12)
    assert got.pvalue == pytest.approx(math.exp(-statistic / 2), rel=1e-12)  # 2 dof
    # Unseen categories: one cell the reference has 0 of. Totals 80, 60, 58, 2 -> expected
    # 40, 30, 29, 1 per row.
    live = ["a"] * 30 + ["b"] * 30 + ["c"] * 38 + ["x", "y"]
    statistic = 2 * (10**2 / 40 + 0 / 30 + 9**2 / 29 + 1**2 / 1)
    got = stats.chi2_categorical(shares, live, reference_size=100)
    assert got.statistic == pytest.approx(statistic, rel=1e-12)
    assert got.pvalue == pytest.approx(scipy.stats.chi2.sf(statistic, 3), rel=1e-9)


def test_two_sample_chi_square_allows_for_the_references_own_noise():
    # A reference of 200,000 values and a million live ones, both from the same world.
    rng = np.random.default_rng(11)
    p = [0.6, 0.3, 0.1]
    ref = rng.choice(["basic", "plus", "premium"], 200_000, p=p)
    live = rng.choice(["basic", "plus", "premium"], 1_000_000, p=p)
    shares = {k: v / len(ref) for k, v in zip(*np.unique(ref, return_counts=True), strict=True)}
    assert stats.chi2_categorical(shares, live, reference_size=len(ref)).pvalue > 0.01
    # Over many draws from one world, it alarms at about its level (1%), not more; goodness of
    # fit to the reference's shares taken as exact alarms most of the time (with 4 times more
    # live values than reference ones, its statistic is about 5 times too large).
    alarms = exact_alarms = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        ref = rng.choice(3, 5_000, p=p)
        shares = {str(k): float(v) / 5_000 for k, v in enumerate(np.bincount(ref, minlength=3))}
        # The same draws as rng.choice(3, ...).astype(str), as one-character strings
        # (counting 21-character ones took most of this test's time).
        live = np.array(["0", "1", "2"])[rng.choice(3, 20_000, p=p)]
        alarms += stats.chi2_categorical(shares, live, reference_size=5_000).pvalue < 0.01
        exact_alarms += stats.chi2_categorical(shares, live).pvalue < 0.01
    assert exact_alarms > 40
    assert alarms <= 8  # 2 expected; 8 or more has probability < 0.2%


def test_empty_live_samples_have_no_figures():
    empty = np.array([])
    assert stats.psi_numeric([0, 1, 2], [5, 5], empty) is None
    assert stats.ks_2samp(np.arange(10.0), empty) is None
    assert stats.ks_2samp(np.arange(10.0), np.array([np.nan, np.nan])) is None
    assert stats.psi_categorical({"a": 1.0}, []) is None
    assert stats.chi2_categorical({"a": 1.0}, [None, None]) is None
    assert stats.chi2_categorical({}, ["a"]) is None


def test_all_missing_live_values_are_a_missing_bin_in_psi():
    got = stats.psi_numeric([0, 10, 20], [5, 5], np.array([np.nan] * 4))
    # expected 0.5, 0.5, missing 0 (EPSILON); actual EPSILON, EPSILON, 1
    expected = 2 * (EPSILON - 0.5) * math.log(EPSILON / 0.5) + (1 - EPSILON) * math.log(1 / EPSILON)
    assert got == pytest.approx(expected, rel=1e-12)


def test_a_constant_reference_still_shows_a_shift():
    edges, counts = [5.0], [100]  # what reference_distributions saves for a constant
    assert stats.psi_numeric(edges, counts, np.full(50, 5.0)) == pytest.approx(0.0)
    moved = stats.psi_numeric(edges, counts, np.full(50, 6.0))
    # expected (0, 1, 0) below/at/above 5; actual (0, 0, 1): two bins of EPSILON vs 1.
    assert moved == pytest.approx(2 * (1 - EPSILON) * math.log(1 / EPSILON), rel=1e-12)
    ks = stats.ks_2samp(np.full(100, 5.0), np.full(50, 5.0))
    assert ks.statistic == 0.0 and ks.pvalue == 1.0


def test_a_reference_without_values_compares_only_the_missing_share():
    # The reference saw only missing values: any live value is a bin the reference never had.
    got = stats.psi_numeric([], [], np.array([1.0, np.nan]), null_share=1.0)
    expected = (0.5 - EPSILON) * math.log(0.5 / EPSILON) + (0.5 - 1) * math.log(0.5 / 1)
    assert got == pytest.approx(expected, rel=1e-12)


def test_psi_of_share_vectors():
    assert stats.psi([0.25] * 4, [0.25] * 4) == 0.0
    assert stats.psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(
        0.4 * math.log(0.9 / 0.5) - 0.4 * math.log(0.1 / 0.5)
    )


def test_canonical_makes_the_two_spellings_of_a_value_one():
    import json

    import pandas as pd

    exact = np.array([1 / 3, 2 / 3, 0.1 + 0.2, 12345.678901234567, 0.0, -1e-9, np.nan])
    # What the online store keeps: pandas JSON with 15 significant digits (store/codec.py).
    packed = pd.DataFrame({"x": exact}).to_json(orient="records", double_precision=15)
    online = np.array([r["x"] if r["x"] is not None else np.nan for r in json.loads(packed)])
    assert not np.array_equal(exact[:-1], online[:-1])  # the skew is real
    assert np.array_equal(stats.canonical(exact), stats.canonical(online), equal_nan=True)
    # Atoms at 1/3 on both sides: no KS distance once both are canonical.
    reference, live = np.repeat(exact[:2], 500), np.repeat(online[:2], 500)
    assert stats.ks_2samp(reference, live).statistic > 0.4
    assert stats.ks_2samp(stats.canonical(reference), stats.canonical(live)).statistic == 0
