"""The drift statistics, vectorised with numpy: PSI against a reference's quantile bins or
category shares, the two-sample Kolmogorov-Smirnov test and chi-square tests of categories.

Conventions shared by every function here:
- Missing values (NaN, None) are a bin of their own in PSI, compared with the reference's
  ``null_share``: a feature that suddenly goes null has drifted. The tests (KS, chi-square)
  compare the non-missing values only.
- A bin that is empty on one side gets the share ``EPSILON`` instead of 0, so PSI stays finite
  (an empty bin on both sides adds exactly 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd

# The share an empty bin is given in PSI (and an unseen category in chi-square): small enough
# that a bin holding 1% of either side dominates, large enough that ln() stays near 10.
EPSILON = 1e-4


@dataclass(frozen=True)
class TestResult:
    """A test's statistic and p-value, with how many values it saw."""

    statistic: float
    pvalue: float
    sample_size: int


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two share vectors over the same bins:
    sum((actual - expected) * ln(actual / expected)), empty bins counted as ``EPSILON``."""
    e = np.where(np.asarray(expected, dtype=float) > 0, expected, EPSILON)
    a = np.where(np.asarray(actual, dtype=float) > 0, actual, EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def numeric_bins(edges: Sequence[float], values: np.ndarray) -> np.ndarray:
    """Live counts per reference bin (``np.histogram``'s bins: [e0, e1), ..., [e(k-1), ek]);
    values below the first edge fall in the first bin, above the last edge in the last."""
    edges = np.asarray(edges, dtype=float)
    if len(edges) < 2:
        return np.array([len(values)])
    index = np.searchsorted(edges[1:-1], values, side="right")
    return np.bincount(index, minlength=len(edges) - 1)


def psi_numeric(
    edges: Sequence[float],
    counts: Sequence[int],
    values: np.ndarray,
    *,
    null_share: float = 0.0,
) -> float | None:
    """PSI of live ``values`` (NaN = missing) against a reference's quantile bins (edges and
    counts of its non-missing values) and its share of missing values; None with no values.

    A constant reference (one edge) gets three bins, below, at and above the constant, so a
    shift away from it still shows."""
    found = numeric_distribution(edges, counts, values, null_share=null_share)
    return None if found is None else psi(found.reference, found.live)


@dataclass(frozen=True)
class Distribution:
    """The bins PSI compares: a label per bin (the last is the missing values), the
    reference's share and the live share of each."""

    labels: list[str]
    reference: list[float]
    live: list[float]
    total: int  # live values, missing ones included

    def as_dict(self) -> dict:
        return {"labels": self.labels, "reference": self.reference, "live": self.live}


def numeric_distribution(
    edges: Sequence[float],
    counts: Sequence[int],
    values: np.ndarray,
    *,
    null_share: float = 0.0,
) -> Distribution | None:
    """Live ``values`` and the reference over the reference's bins (see ``psi_numeric``);
    None with no values."""
    values = np.asarray(values, dtype=float)
    total = len(values)
    if total == 0:
        return None
    present = values[~np.isnan(values)]
    cuts = np.asarray(edges, dtype=float)
    ref = np.asarray(counts, dtype=float)
    if len(cuts) == 1:
        c = cuts[0]
        ref = np.array([0.0, ref.sum(), 0.0])
        live = np.array([(present < c).sum(), (present == c).sum(), (present > c).sum()])
        labels = [f"< {c:.4g}", f"= {c:.4g}", f"> {c:.4g}"]
    elif len(cuts) == 0:  # the reference never saw a value: one bin for any value
        ref = np.array([0.0])
        live = np.array([len(present)])
        labels = ["any value"]
    else:
        live = numeric_bins(cuts, present)
        last = len(cuts) - 2
        labels = [
            f"[{lo:.4g}, {hi:.4g}{']' if i == last else ')'}"
            for i, (lo, hi) in enumerate(pairwise(cuts))
        ]
    expected, actual = _shares_with_missing(ref, null_share, live, total - len(present), total)
    return Distribution([*labels, "missing"], expected.tolist(), actual.tolist(), total)


def category_counts(values: Sequence | np.ndarray) -> tuple[dict[str, int], int]:
    """Counts per category (as text) of the non-missing values, and the number missing."""
    series = pd.Series(values, dtype=object)
    missing = series.isna()
    counts = series[~missing].astype(str).value_counts()
    return {str(k): int(v) for k, v in counts.items()}, int(missing.sum())


def psi_categorical(
    shares: Mapping[str, float],
    values: Sequence | np.ndarray,
    *,
    null_share: float = 0.0,
) -> float | None:
    """PSI of live category ``values`` (None = missing) against the reference's category
    shares and share of missing values; categories the reference never saw share one bin
    (reference share 0). None with no values."""
    found = categorical_distribution(shares, values, null_share=null_share)
    return None if found is None else psi(found.reference, found.live)


def categorical_distribution(
    shares: Mapping[str, float],
    values: Sequence | np.ndarray,
    *,
    null_share: float = 0.0,
) -> Distribution | None:
    """Live category ``values`` and the reference over the reference's categories, the unseen
    ones and the missing values (see ``psi_categorical``); None with no values."""
    counts, missing = category_counts(values)
    total = sum(counts.values()) + missing
    if total == 0:
        return None
    known = list(shares)
    ref = np.array([shares[c] for c in known] + [0.0], dtype=float)
    live = np.array([counts.get(c, 0) for c in known] + [0], dtype=float)
    live[-1] = sum(counts.values()) - live[:-1].sum()  # unseen categories
    expected, actual = _shares_with_missing(ref, null_share, live, missing, total)
    labels = [*known, "other (unseen)", "missing"]
    return Distribution(labels, expected.tolist(), actual.tolist(), total)


def _shares_with_missing(
    ref_present: np.ndarray, null_share: float, live_present: np.ndarray, missing: int, total: int
) -> tuple[np.ndarray, np.ndarray]:
    # Reference shares of the present values are scaled so that, with the missing bin, they
    # sum to 1; likewise the live counts over all live values, missing included.
    ref_sum = ref_present.sum()
    ref = ref_present / ref_sum * (1.0 - null_share) if ref_sum else np.zeros_like(ref_present)
    expected = np.append(ref, null_share)
    actual = np.append(live_present, missing) / total
    return expected, actual


def canonical(values: Sequence[float] | np.ndarray, digits: int = 12) -> np.ndarray:
    """Floats rounded to ``digits`` significant digits. Online values are packed as JSON with 15
    (store/codec.py) while history, and so the references, keep every bit: 1/3 must be one value
    on both sides, or a KS step or a PSI bin edge falls between the two spellings of an atom."""
    x = np.asarray(values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = np.floor(np.log10(np.abs(x)))
        scale = 10.0 ** (digits - 1 - magnitude)
        rounded = np.round(x * scale) / scale
    return np.where(np.isfinite(rounded), rounded, x)


def ks_2samp(reference: np.ndarray, live: np.ndarray) -> TestResult | None:
    """Two-sided two-sample KS test of the non-missing values: the statistic is the largest
    distance between the two empirical CDFs; the p-value is scipy's ``method="asymp"``
    (``kstwo.sf(D, round(n*m/(n+m)))``). None when either side has no values."""
    from scipy.stats import kstwo

    a = np.sort(_present(reference))
    b = np.sort(_present(live))
    n1, n2 = len(a), len(b)
    if not n1 or not n2:
        return None
    # Both CDFs are right-continuous steps, so the largest distance is found at the reference's
    # distinct values u, on them or just below them: 2 x 2,000 look-ups instead of evaluating
    # both CDFs at every one of millions of live values.
    u = np.unique(a)
    at = np.searchsorted(a, u, side="right") / n1 - np.searchsorted(b, u, side="right") / n2
    below = np.searchsorted(a, u, side="left") / n1 - np.searchsorted(b, u, side="left") / n2
    d = float(max(np.abs(at).max(), np.abs(below).max()))
    m, n = max(n1, n2), min(n1, n2)
    pvalue = float(np.clip(kstwo.sf(d, np.round(m * n / (m + n))), 0.0, 1.0))
    return TestResult(d, pvalue, n2)


def chi2_categorical(
    shares: Mapping[str, float],
    values: Sequence | np.ndarray,
    *,
    reference_size: int | None = None,
) -> TestResult | None:
    """Chi-square test of the live category counts (missing values left out) against the
    reference's shares. None when no value is present or the reference has no categories.

    With ``reference_size`` (how many non-missing values the shares were computed from), a
    test of homogeneity of the two samples (Pearson, 2 x k table of the reference's counts and
    the live ones): the reference's own sampling noise is allowed for, as KS allows for its
    reference sample. Goodness of fit to shares taken as exact would call a million live values
    drawn from the very same world drifted, for a difference in the third decimal. Categories
    the reference never saw share one cell (reference count 0).

    Without it, goodness of fit to the shares; unseen categories share one cell expected at
    ``EPSILON`` of the values, so a few of them weigh in without an infinite statistic."""
    from scipy.stats import chi2_contingency, chisquare

    counts, _ = category_counts(values)
    n = sum(counts.values())
    known = [c for c, share in shares.items() if share > 0]
    if not n or not known:
        return None
    observed = np.array([counts.get(c, 0) for c in known], dtype=float)
    expected = np.array([shares[c] for c in known], dtype=float)
    unseen = n - observed.sum()
    if reference_size is not None:
        reference = np.append(expected / expected.sum() * reference_size, 0.0)
        table = np.array([reference, np.append(observed, unseen)])
        table = table[:, table.sum(axis=0) > 0]  # a cell empty on both sides says nothing
        if table.shape[1] < 2:
            return TestResult(0.0, 1.0, n)
        result = chi2_contingency(table, correction=False)
        return TestResult(float(result.statistic), float(result.pvalue), n)
    if unseen:
        observed = np.append(observed, unseen)
        expected = np.append(expected / expected.sum() * (1 - EPSILON), EPSILON)
    if len(observed) < 2:  # one category and nothing else: nothing can differ
        return TestResult(0.0, 1.0, n)
    result = chisquare(observed, expected / expected.sum() * n)
    return TestResult(float(result.statistic), float(result.pvalue), n)


def _present(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return values[~np.isnan(values)]
