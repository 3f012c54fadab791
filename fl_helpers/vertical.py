"""Vertical federated learning on the credit-card data (notebook 09): who holds what, and the
plaintext models every private protocol is measured against.

The story: a bank and a credit bureau serve partly overlapping customers of one population (the
30,000 customers of UCI's "Default of credit card clients", Yeh & Lien 2009). The bank holds, for
its customers, balances, bills, payments and a few demographics, and the label (did the customer
default the next month); the bureau holds, for its customers, six months of repayment status.
Neither may see the other's rows. This is the vertical (feature-partitioned) setting of Yang,
Liu, Chen & Tong 2019, "Federated Machine Learning: Concept and Applications", Section 2.3.2, and
with only part of the customers shared, the transfer setting of their Section 2.3.3.

Everything here is public or local:

* :func:`credit_parties` draws the two customer populations from a public seed (the course's
  stand-in for the world), and encodes each party's columns with **public constants**
  (:func:`encode_bank`, :func:`encode_bureau`): no statistic of one party's data crosses to the
  other. Standardising with a party's own statistics (:func:`standardise`) stays inside that
  party.
* :func:`fit_logistic` is the plaintext logistic regression, with the true logistic loss or its
  second-order Taylor approximation (Hardy et al. 2017, Section 3.2), the yardstick the encrypted
  protocol (``fl_helpers.vertical_protocol``) must match.
* ``CreditParties.labels_of`` is the evaluator's omniscient view (the true label of any
  customer): the notebook uses it to score models, no party ever receives it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.optimize

from fl_helpers import _validation as v
from fl_helpers import data

#: The repayment-status columns (UCI's X6..X11), the credit bureau's.
BUREAU_SOURCE_COLUMNS: tuple[str, ...] = ("PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6")
#: Repayment status codes the bureau one-hot encodes: -2 no consumption, -1 paid duly, 0
#: revolving credit, 1 one month late, >= 2 two or more months late.
PAY_LEVELS: tuple[str, ...] = ("none", "duly", "revolving", "late1", "late2+")
#: The public constant amounts are divided by after the signed log (log1p of 3.2 million is 15;
#: the largest amount in the data, 1.7 million, stays below 1).
AMOUNT_SCALE = 15.0

#: The bank's encoded columns (:func:`encode_bank`), 20 of them.
BANK_COLUMNS: tuple[str, ...] = (
    "log LIMIT_BAL", "female", "age/100", "edu: graduate", "edu: university", "edu: high school",
    "married", "single", *(f"log BILL_AMT{k}" for k in range(1, 7)),
    *(f"log PAY_AMT{k}" for k in range(1, 7)),
)
#: The bureau's encoded columns (:func:`encode_bureau`), 30 of them: 6 months x 5 levels.
BUREAU_COLUMNS: tuple[str, ...] = tuple(f"{month} {level}" for month in BUREAU_SOURCE_COLUMNS
                                        for level in PAY_LEVELS)


def _signed_log(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x)) / AMOUNT_SCALE


def _raw_columns(features: Any, names: Sequence[str]) -> np.ndarray:
    table = v.check_float_array("features", features, ndim=2)
    if table.shape[1] != len(data.CREDIT_DEFAULT_FEATURES):
        raise ValueError(f"features must have the {len(data.CREDIT_DEFAULT_FEATURES)} columns "
                         f"of data.CREDIT_DEFAULT_FEATURES, got {table.shape[1]}.")
    index = {name: i for i, name in enumerate(data.CREDIT_DEFAULT_FEATURES)}
    return table[:, [index[name] for name in names]]


def encode_bank(features: Any) -> np.ndarray:
    """The bank's columns, encoded with public constants only (no statistic of the data).

    Amounts (credit limit, bills, payments; bills can be negative) become
    ``sign(x) log(1 + |x|) / 15``; sex is 1 for female; age is divided by 100; education and
    marital status are one-hot (UCI's undocumented codes fall in the "other" level, which is the
    all-zero reference).

    Args:
        features: The raw ``(n, 23)`` table of ``data.load_credit_default().features``.

    Returns:
        Float64 ``(n, 20)``, columns as in :data:`BANK_COLUMNS`.
    """
    raw = _raw_columns(features, ("LIMIT_BAL", "SEX", "AGE", "EDUCATION", "MARRIAGE"))
    bills = _raw_columns(features, [f"BILL_AMT{k}" for k in range(1, 7)])
    paid = _raw_columns(features, [f"PAY_AMT{k}" for k in range(1, 7)])
    limit, sex, age, education, marriage = raw.T
    return np.column_stack([
        _signed_log(limit), sex == 2, age / 100.0,
        education == 1, education == 2, education == 3, marriage == 1, marriage == 2,
        _signed_log(bills), _signed_log(paid),
    ]).astype(np.float64)


def encode_bureau(features: Any) -> np.ndarray:
    """The bureau's columns: each month's repayment status one-hot over :data:`PAY_LEVELS`.

    Args:
        features: The raw ``(n, 23)`` table of ``data.load_credit_default().features``.

    Returns:
        Float64 ``(n, 30)`` of 0/1, columns as in :data:`BUREAU_COLUMNS`.
    """
    status = _raw_columns(features, BUREAU_SOURCE_COLUMNS)
    levels = [status == -2, status == -1, status == 0, status == 1, status >= 2]
    return np.stack(levels, axis=2).reshape(len(status), -1).astype(np.float64)


def _check_customer_ids(name: str, ids: Any) -> np.ndarray:
    """Customer ids 1..30,000 as an int64 array (the file's ``ID`` column)."""
    array = v.check_ids(name, ids, num=data.CREDIT_DEFAULT_ROWS + 1)
    if array.size and array.min() < 1:
        raise ValueError(f"{name} must hold customer ids in 1..{data.CREDIT_DEFAULT_ROWS}, got "
                         f"{int(array.min())}.")
    return array


@dataclasses.dataclass(frozen=True)
class Party:
    """One organisation's private table.

    Attributes:
        name: ``"bank"`` or ``"bureau"``.
        ids: Its customers' ids, sorted (int64).
        features: Its encoded columns for those customers, row ``i`` for ``ids[i]``.
        columns: The names of the columns.
        labels: The bank's labels (1 = defaulted) for its customers; ``None`` for the bureau.
    """

    name: str
    ids: np.ndarray
    features: np.ndarray
    columns: tuple[str, ...]
    labels: np.ndarray | None = None

    def rows(self, ids: Any) -> np.ndarray:
        """The positions of ``ids`` (all of them this party's customers) in :attr:`ids`."""
        wanted = _check_customer_ids("ids", ids)
        position = np.searchsorted(self.ids, wanted)
        position = np.minimum(position, len(self.ids) - 1)
        if len(self.ids) == 0 or not np.array_equal(self.ids[position], wanted):
            missing = wanted[self.ids[position] != wanted] if len(self.ids) else wanted
            raise ValueError(f"ids must all be customers of the {self.name}, got "
                             f"{len(missing)} that are not (e.g. {int(missing[0])}).")
        return position


@dataclasses.dataclass(frozen=True)
class CreditParties:
    """The bank, the bureau, and the evaluation split of the customers they share.

    Attributes:
        bank: The label holder (20 columns, labels).
        bureau: The other party (30 repayment-status columns, no labels).
        overlap_ids: The customers both serve, sorted: what private set intersection finds.
        train_ids: The shared customers the joint models train on.
        test_ids: The shared customers held out to score every model
            (``test_fraction`` of the overlap).
        seed: The public seed the populations and the split were drawn from.
    """

    bank: Party
    bureau: Party
    overlap_ids: np.ndarray
    train_ids: np.ndarray
    test_ids: np.ndarray
    seed: int
    _all: data.CreditDefault = dataclasses.field(repr=False)

    def labels_of(self, ids: Any) -> np.ndarray:
        """The true labels of any customers: the evaluator's view, never given to a party."""
        return self._all.labels[_check_customer_ids("ids", ids) - 1]

    def pooled(self, ids: Any) -> tuple[np.ndarray, np.ndarray]:
        """Every column of both parties for any customers, and their labels: the pooled
        upper bound that no real party can compute (the evaluator's view)."""
        wanted = _check_customer_ids("ids", ids)
        labels = self.labels_of(wanted)
        raw = self._all.features[wanted - 1]
        return np.column_stack([encode_bank(raw), encode_bureau(raw)]), labels


def credit_parties(*, seed: int = 0, bank_size: int = 20_000, bureau_size: int = 24_000,
                   test_fraction: float = 0.2, data_dir: Any = None) -> CreditParties:
    """Draws the bank's and the bureau's customers from the 30,000, and the shared test split.

    The draw is public (a seed), as the split of the world into organisations is not a secret
    of the course; which customers each party holds is private to that party. Independent
    uniform draws of 20,000 and 24,000 of 30,000 customers share about 16,000.

    Args:
        seed: The public seed of the draw (``np.random.default_rng(seed)``).
        bank_size: How many customers the bank holds, 1..30,000.
        bureau_size: How many the bureau holds, 1..30,000.
        test_fraction: Share of the overlap held out for testing, in (0, 1).
        data_dir: Where the credit-card file is (``data.load_credit_default``'s default if None).

    Returns:
        A :class:`CreditParties`.

    Raises:
        ValueError: A size or fraction is out of range, or the overlap is too small to hold
            out a test set with both classes.
    """
    seed = v.check_int("seed", seed, minimum=0)
    rows = data.CREDIT_DEFAULT_ROWS
    bank_size = v.check_int("bank_size", bank_size, minimum=1, maximum=rows)
    bureau_size = v.check_int("bureau_size", bureau_size, minimum=1, maximum=rows)
    test_fraction = v.check_open_unit("test_fraction", test_fraction)
    table = data.load_credit_default(data_dir)
    rng = np.random.default_rng(seed)
    bank_ids = np.sort(rng.choice(table.ids, size=bank_size, replace=False))
    bureau_ids = np.sort(rng.choice(table.ids, size=bureau_size, replace=False))
    overlap = np.intersect1d(bank_ids, bureau_ids)
    num_test = int(round(test_fraction * len(overlap)))
    if num_test < 10 or len(overlap) - num_test < 10:
        raise ValueError(f"bank_size and bureau_size must share enough customers to hold out a "
                         f"test set, got an overlap of {len(overlap)}.")
    shuffled = rng.permutation(overlap)
    test_ids, train_ids = np.sort(shuffled[:num_test]), np.sort(shuffled[num_test:])
    bank_raw, bureau_raw = table.features[bank_ids - 1], table.features[bureau_ids - 1]
    bank = Party("bank", bank_ids, encode_bank(bank_raw), BANK_COLUMNS,
                 table.labels[bank_ids - 1].copy())
    bureau = Party("bureau", bureau_ids, encode_bureau(bureau_raw), BUREAU_COLUMNS)
    return CreditParties(bank=bank, bureau=bureau, overlap_ids=overlap, train_ids=train_ids,
                         test_ids=test_ids, seed=seed, _all=table)


def standardise(train: Any, *others: Any) -> tuple[np.ndarray, ...]:
    """Centres and scales columns with the statistics of ``train`` (one party's own rows).

    Constant columns are left unscaled (divided by 1). Used by each party on its own columns:
    the means and spreads never leave it.

    Returns:
        ``train`` standardised, then each of ``others`` with the same statistics.
    """
    train = v.check_float_array("train", train, ndim=2)
    mean = train.mean(axis=0)
    spread = train.std(axis=0)
    spread[spread == 0] = 1.0
    result = [(train - mean) / spread]
    for k, other in enumerate(others):
        other = v.check_float_array(f"others[{k}]", other, ndim=2)
        if other.shape[1] != train.shape[1]:
            raise ValueError(f"others[{k}] must have {train.shape[1]} columns like train, got "
                             f"{other.shape[1]}.")
        result.append((other - mean) / spread)
    return tuple(result)


def taylor_loss(margins: Any) -> np.ndarray:
    """The second-order Taylor expansion of the logistic loss at 0 (Hardy et al. 2017, eq. 3):
    ``log(1 + e^{-m}) ~ log 2 - m/2 + m^2/8``, for margins ``m = y z`` with ``y`` in {-1, +1}."""
    m = v.check_float_array("margins", margins)
    return np.log(2.0) - m / 2.0 + m * m / 8.0


def _loss_and_gradient(weights: np.ndarray, x: np.ndarray, signs: np.ndarray, l2: float,
                       taylor: bool) -> tuple[float, np.ndarray]:
    z = x @ weights[:-1] + weights[-1]
    margins = signs * z
    if taylor:
        loss = taylor_loss(margins)
        slope = signs * (margins / 4.0 - 0.5)          # d loss / dz = z/4 - y/2
    else:
        loss = np.logaddexp(0.0, -margins)
        slope = -signs / (1.0 + np.exp(margins))       # d loss / dz = -y sigma(-y z)
    gradient = np.append(x.T @ slope, slope.sum()) / len(z)
    gradient[:-1] += l2 * weights[:-1]
    return float(loss.mean() + 0.5 * l2 * weights[:-1] @ weights[:-1]), gradient


def fit_logistic(x: Any, labels: Any, *, l2: float = 1e-3, loss: str = "logistic") -> np.ndarray:
    """Logistic regression trained to convergence (L-BFGS on the mean loss + ``l2/2 |w|^2``).

    Args:
        x: Float ``(n, d)`` features (standardised).
        labels: ``(n,)`` of 0/1.
        l2: Ridge penalty on the weights (not the intercept), >= 0.
        loss: ``"logistic"`` (the true loss) or ``"taylor"`` (its second-order expansion, the
            loss Hardy et al. 2017 train under encryption; it is quadratic in the weights).

    Returns:
        Float64 ``(d + 1,)``: the weights, then the intercept.
    """
    x = v.check_float_array("x", x, ndim=2)
    labels = np.asarray(labels)
    if labels.shape != (len(x),) or not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be {len(x)} values of 0 or 1 (one per row of x).")
    l2 = v.check_non_negative("l2", l2)
    if loss not in ("logistic", "taylor"):
        raise ValueError(f"loss must be 'logistic' or 'taylor', got {v._fmt(loss)}.")
    signs = 2.0 * labels - 1.0
    result = scipy.optimize.minimize(_loss_and_gradient, np.zeros(x.shape[1] + 1),
                                     args=(x, signs, l2, loss == "taylor"), jac=True,
                                     method="L-BFGS-B",
                                     options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-9})
    return np.asarray(result.x, dtype=np.float64)


def scores(weights: Any, x: Any) -> np.ndarray:
    """The logits ``x w + b`` of a model from :func:`fit_logistic` (rank them for an AUC)."""
    weights = v.check_float_array("weights", weights, ndim=1)
    x = v.check_float_array("x", x, ndim=2)
    if len(weights) != x.shape[1] + 1:
        raise ValueError(f"weights must have one entry per column of x plus the intercept "
                         f"({x.shape[1] + 1}), got {len(weights)}.")
    return x @ weights[:-1] + weights[-1]
