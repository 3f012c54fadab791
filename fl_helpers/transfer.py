"""Federated transfer learning (notebook 09): the bank's labels score the bureau's customers that
the bank has never seen.

Liu, Kang, Xing, Chen & Yang 2020, "A Secure Federated Transfer Learning Framework", IEEE
Intelligent Systems 35(4) (arXiv 1812.03337), Section "Federated transfer learning". Party A (the
bank, the source domain) holds features ``x_A`` and labels ``y`` in {-1, +1} for its ``N_A``
customers; party B (the credit bureau, the target domain) holds features ``x_B`` and no labels.
They share the customers of an overlap (found with private set intersection), and the bureau
wants predictions for its customers outside it. Each party maps its own features to a
representation of the same size ``d``,

    u_A = Net_A(x_A),   u_B = Net_B(x_B)          (here Net(x) = tanh(x W + b)),

the bank summarises its labelled customers in one vector,

    Phi_A = (1 / N_A) sum_i y_i u_A_i            (all of the bank's customers),

and a bureau customer ``j`` is scored ``phi(u_B_j) = Phi_A . u_B_j`` (Liu et al.'s eq. for
``phi``, with their ``G`` the identity). The two nets are trained together on the overlap:

    L = (1 / n) sum_{i in overlap} log(1 + exp(-y_i phi(u_B_i)))      (the transfer loss, L_1)
      + gamma (1 / n) sum_{i in overlap} |u_A_i - u_B_i|^2           (alignment, gamma L_2)
      + beta (1 / N_A) sum_{k in bank} log(1 + exp(-y_k Phi_A . u_A_k))  (the bank's own loss)
      + (lambda / 2) (|W_A|^2 + |W_B|^2)                              (regularisation, L_3)

Means instead of Liu et al.'s sums, so that ``gamma`` and ``lambda`` do not change meaning with
the overlap size. The third term is not in Liu et al.; ``source_weight=0`` (``beta``) gives their
loss exactly. It lets the bank use its labels on all its customers, not only on the overlap.

**Who computes what.** Each party is a class that holds only its own data and parameters
(:class:`Bank`, :class:`Bureau`); :func:`train_ftl` is the only place they meet, and it passes
three named quantities, nothing else:

* bureau -> bank, every step: ``u_B`` on the overlap (``Bureau.representations``);
* bank -> bureau, every step: ``dL/du_B`` on the overlap, the gradient the bureau back-propagates
  through its own net (``Bank.step``'s return value);
* bank -> bureau, once, to predict: ``Phi_A`` (``Bank.phi``), a ``d``-vector.

This module is the plaintext form. In plaintext the messages leak: the bank reads the bureau's
representations of the shared customers, and the sign of ``dL/du_B_i . Phi_A`` is ``-y_i``, so
the bureau reads the bank's labels on the overlap. Liu et al. replace the logistic loss by its
second-order Taylor expansion so that every gradient becomes linear in quantities the other party
can send encrypted (additively homomorphic encryption: the bank sends ``[[y_i Phi_A]]``,
``[[Phi_A Phi_A^T]]`` and ``[[u_A_i]]`` under its key, the bureau sends ``[[u_B_i]]`` and
``[[u_B_i u_B_i^T]]`` under its own; each computes the other's encrypted gradient, adds a random
mask, and the key owner decrypts only the masked value) or computes them on secret shares
(their SPDZ-based protocol). Either way each party ends with its own gradients and the bureau
with ``Phi_A . u_B_j``; the curve of accuracy against the overlap size is the plaintext one.

:func:`credit_ftl`, :func:`labels_only_scores`, :func:`months_late_scores` and
:func:`overlap_curve` run the story of notebook 09 on ``vertical.credit_parties``: the bureau's
customers the bank does not serve are scored, and the evaluator (``CreditParties.labels_of``)
measures the AUC against the overlap size.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import scipy.special

from fl_helpers import _validation as v
from fl_helpers import cross_silo, data, vertical

#: Largest representation size ``d`` accepted (the course uses 8).
MAX_REPRESENTATION_SIZE = 256
#: Largest number of training steps accepted (the course uses 150).
MAX_STEPS = 100_000
#: Largest feature magnitude accepted: the nets expect standardised features, and larger
#: values would overflow ``x W`` into NaN gradients.
MAX_FEATURE = 1e6
#: Largest Adam step size accepted (the course uses 0.05).
MAX_LEARNING_RATE = 10.0

#: The defaults, chosen on the overlap's held-out customers (``CreditParties.test_ids``), never on
#: the bureau's non-overlap customers that the curve scores.
DEFAULT_REPRESENTATION_SIZE = 8
DEFAULT_ALIGNMENT_WEIGHT = 0.01
DEFAULT_SOURCE_WEIGHT = 1.0
DEFAULT_L2 = 0.1
DEFAULT_LEARNING_RATE = 0.05
DEFAULT_NUM_STEPS = 150
#: The label-sharing baseline's ridge penalty (``vertical.fit_logistic``'s ``l2``), chosen the
#: same way (0.1 beat 0.01 and 0.001 at every overlap size).
LABELS_ONLY_L2 = 0.1

_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8


# ---------------------------------------------------------------------------------------------
# The formulas.

def _signs(labels: np.ndarray) -> np.ndarray:
    return 2.0 * labels - 1.0


def _check_labels(name: str, value: Any, size: int, rows_name: str) -> np.ndarray:
    """0/1 labels as float64, one per row of the array ``rows_name`` (``size`` rows)."""
    if isinstance(value, np.ndarray) and value.dtype == np.bool_:
        raise TypeError(f"{name} must hold 0/1 labels as numbers, got a bool array.")
    labels = v.check_float_array(name, value, ndim=1)
    if labels.size != size:
        raise ValueError(f"{name} must hold {size} labels (one per row of {rows_name}), got "
                         f"{labels.size}.")
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError(f"{name} must hold labels 0 or 1, got values from {labels.min()} to "
                         f"{labels.max()}.")
    return labels


def _check_features(name: str, value: Any) -> np.ndarray:
    x = v.check_float_array(name, value, ndim=2)
    if np.abs(x).max() > MAX_FEATURE:
        raise ValueError(f"{name} must be standardised features (|x| <= {MAX_FEATURE:g}), got "
                         f"a value of {np.abs(x).max():.3g}.")
    return x


def phi_a(representations: Any, labels: Any) -> np.ndarray:
    """The bank's summary of its labelled customers (Liu et al. 2020, Section "Federated
    transfer learning"): ``Phi_A = (1 / N_A) sum_i y_i u_A_i`` with ``y_i`` in {-1, +1}.

    Args:
        representations: ``(N_A, d)`` float: ``u_A`` of the bank's customers.
        labels: ``(N_A,)`` of 0/1 (1 = defaulted); mapped to ``y = 2 label - 1``.

    Returns:
        Float64 ``(d,)``.
    """
    u = v.check_float_array("representations", representations, ndim=2)
    labels = _check_labels("labels", labels, len(u), "representations")
    return _signs(labels) @ u / len(u)


def predict(phi: Any, representations: Any) -> np.ndarray:
    """Liu et al.'s prediction for target-domain customers: ``phi(u_B_j) = Phi_A . u_B_j``.

    A score (a logit): positive predicts a default. Rank it for an AUC.

    Args:
        phi: ``(d,)`` float: the bank's ``Phi_A`` (:func:`phi_a`, ``Bank.phi``).
        representations: ``(m, d)`` float: ``u_B`` of the customers to score.

    Returns:
        Float64 ``(m,)``.
    """
    phi = v.check_float_array("phi", phi, ndim=1)
    u = v.check_float_array("representations", representations, ndim=2)
    if u.shape[1] != len(phi):
        raise ValueError(f"representations must have {len(phi)} columns (the size of phi), got "
                         f"{u.shape[1]}.")
    return u @ phi


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)


# ---------------------------------------------------------------------------------------------
# One party's representation net and optimiser (each party owns its own copy).

class _DenseTanh:
    """``u = tanh(x W + b)``, with Adam on ``W`` and ``b`` (Kingma & Ba 2015)."""

    def __init__(self, num_inputs: int, size: int, rng: np.random.Generator,
                 learning_rate: float) -> None:
        self.weights = rng.normal(0.0, 1.0 / np.sqrt(num_inputs), size=(num_inputs, size))
        self.bias = np.zeros(size)
        self.learning_rate = learning_rate
        self._moments = [np.zeros_like(self.weights), np.zeros_like(self.bias)]
        self._squares = [np.zeros_like(self.weights), np.zeros_like(self.bias)]
        self._steps = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(x @ self.weights + self.bias)

    def backward(self, x: np.ndarray, u: np.ndarray, gradient: np.ndarray,
                 l2: float) -> tuple[np.ndarray, np.ndarray]:
        """Gradients of ``W`` and ``b`` given ``dL/du`` (plus ``l2 W`` from the penalty)."""
        pre = gradient * (1.0 - u * u)
        return x.T @ pre + l2 * self.weights, pre.sum(axis=0)

    def apply(self, gradients: tuple[np.ndarray, np.ndarray]) -> None:
        self._steps += 1
        t = self._steps
        for k, (param, grad) in enumerate(zip((self.weights, self.bias), gradients, strict=True)):
            self._moments[k] = _BETA1 * self._moments[k] + (1 - _BETA1) * grad
            self._squares[k] = _BETA2 * self._squares[k] + (1 - _BETA2) * grad * grad
            m_hat = self._moments[k] / (1 - _BETA1 ** t)
            s_hat = self._squares[k] / (1 - _BETA2 ** t)
            param -= self.learning_rate * m_hat / (np.sqrt(s_hat) + _EPS)


def _check_learning_rate(value: Any) -> float:
    rate = v.check_positive("learning_rate", value)
    if rate > MAX_LEARNING_RATE:
        raise ValueError(f"learning_rate must be <= {MAX_LEARNING_RATE:g} (Adam's step size), got "
                         f"{v._fmt(rate)}.")
    return rate


def _check_common(representation_size: Any, l2: Any, learning_rate: Any,
                  rng: Any) -> tuple[int, float, float, np.random.Generator]:
    return (v.check_int("representation_size", representation_size, minimum=1,
                        maximum=MAX_REPRESENTATION_SIZE),
            v.check_non_negative("l2", l2),
            _check_learning_rate(learning_rate),
            v.check_rng("rng", rng))


def _check_rows(name: str, value: Any, num_rows: int) -> np.ndarray:
    rows = v.check_ids(name, value, num=num_rows, unique=True)
    if rows.size == 0:
        raise ValueError(f"{name} must name at least one overlap customer, got none.")
    return rows


@dataclasses.dataclass(frozen=True)
class BankGradients:
    """What the bank computes in one step (:meth:`Bank.gradients`).

    Attributes:
        loss: The bank's value of the whole loss ``L`` (it can compute every term but the
            bureau's penalty ``lambda/2 |W_B|^2``, which it adds as 0).
        weights: ``dL/dW_A``, ``(d_A, d)``: stays with the bank.
        bias: ``dL/db_A``, ``(d,)``: stays with the bank.
        representation_gradient: ``dL/du_B`` on the overlap, ``(n, d)``: the message to the
            bureau.
    """

    loss: float
    weights: np.ndarray
    bias: np.ndarray
    representation_gradient: np.ndarray


class Bank:
    """Party A of Liu et al. 2020: the label holder, with its features for all its customers.

    It never receives the bureau's features or its parameters: only ``u_B`` of the overlap.

    Args:
        features: ``(N_A, d_A)`` float: the bank's (standardised) features, all its customers.
        labels: ``(N_A,)`` 0/1: its labels (1 = defaulted).
        overlap_rows: ``(n,)`` distinct row indices into ``features`` of the overlap customers,
            in the order both parties agreed on (the sorted shared ids).
        representation_size: ``d``, 1..256.
        alignment_weight: ``gamma`` >= 0, the weight of ``|u_A - u_B|^2`` on the overlap.
        source_weight: ``beta`` >= 0, the weight of the bank's own loss on all its customers
            (0 = Liu et al.'s loss).
        l2: ``lambda`` >= 0 on ``W_A``.
        learning_rate: Adam's step size, in (0, 10].
        rng: Public randomness for the initial ``W_A``.
    """

    def __init__(self, features: Any, labels: Any, overlap_rows: Any, *,
                 representation_size: int = DEFAULT_REPRESENTATION_SIZE,
                 alignment_weight: float = DEFAULT_ALIGNMENT_WEIGHT,
                 source_weight: float = DEFAULT_SOURCE_WEIGHT, l2: float = DEFAULT_L2,
                 learning_rate: float = DEFAULT_LEARNING_RATE,
                 rng: np.random.Generator) -> None:
        self._x = _check_features("features", features)
        self._labels = _check_labels("labels", labels, len(self._x), "features")
        if np.unique(self._labels).size < 2:
            raise ValueError("labels must hold both classes (0 and 1), got only one.")
        self._rows = _check_rows("overlap_rows", overlap_rows, len(self._x))
        size, self.l2, learning_rate, rng = _check_common(representation_size, l2,
                                                          learning_rate, rng)
        self.alignment_weight = v.check_non_negative("alignment_weight", alignment_weight)
        self.source_weight = v.check_non_negative("source_weight", source_weight)
        self._y = _signs(self._labels)
        self._net = _DenseTanh(self._x.shape[1], size, rng, learning_rate)
        #: The loss ``L`` (less the bureau's penalty) before the latest :meth:`step`.
        self.last_loss: float | None = None

    @property
    def representation_size(self) -> int:
        """``d``."""
        return int(self._net.bias.size)

    @property
    def overlap_size(self) -> int:
        """``n``, the number of shared customers the loss runs over."""
        return len(self._rows)

    def phi(self) -> np.ndarray:
        """``Phi_A`` with the current ``Net_A``: the message that lets the bureau predict."""
        return self._y @ self._net(self._x) / len(self._x)

    def _check_message(self, bureau_representations: Any) -> np.ndarray:
        u_b = v.check_float_array("bureau_representations", bureau_representations, ndim=2)
        if u_b.shape != (self.overlap_size, self.representation_size):
            raise ValueError(f"bureau_representations must be u_B of the {self.overlap_size} "
                             f"overlap customers, shape ({self.overlap_size}, "
                             f"{self.representation_size}), got {u_b.shape}.")
        return u_b

    def gradients(self, bureau_representations: Any) -> BankGradients:
        """The bank's gradients and the bureau's ``dL/du_B``, at the current parameters.

        Args:
            bureau_representations: ``(n, d)``: the bureau's ``u_B`` of the overlap customers,
                in the agreed order (the message from :meth:`Bureau.representations`).

        Returns:
            A :class:`BankGradients` (nothing is updated).
        """
        return self._gradients(self._check_message(bureau_representations))

    def _gradients(self, u_b: np.ndarray) -> BankGradients:
        n, num_bank = self.overlap_size, len(self._x)
        u_a = self._net(self._x)
        phi = self._y @ u_a / num_bank
        y_o, u_a_o = self._y[self._rows], u_a[self._rows]
        margins = y_o * (u_b @ phi)
        gap = u_b - u_a_o
        # d/dphi_i of (1/n) log(1 + e^{-y_i phi_i}) = -(y_i / n) sigma(-y_i phi_i)
        slope = -(y_o / n) * scipy.special.expit(-margins)
        grad_u_b = slope[:, None] * phi + (2.0 * self.alignment_weight / n) * gap
        grad_phi = slope @ u_b
        loss = _softplus(-margins).mean() + self.alignment_weight * (gap * gap).sum() / n
        grad_u_a = np.zeros_like(u_a)
        if self.source_weight > 0:
            source_margins = self._y * (u_a @ phi)
            source_slope = -(self.source_weight * self._y / num_bank) * \
                scipy.special.expit(-source_margins)
            grad_phi = grad_phi + source_slope @ u_a
            grad_u_a += source_slope[:, None] * phi
            loss += self.source_weight * _softplus(-source_margins).mean()
        grad_u_a += (self._y / num_bank)[:, None] * grad_phi      # through Phi_A
        grad_u_a[self._rows] -= (2.0 * self.alignment_weight / n) * gap
        weights, bias = self._net.backward(self._x, u_a, grad_u_a, self.l2)
        loss += 0.5 * self.l2 * float((self._net.weights ** 2).sum())
        return BankGradients(float(loss), weights, bias, grad_u_b)

    def step(self, bureau_representations: Any) -> np.ndarray:
        """One training step: computes its gradients, updates ``Net_A``, returns ``dL/du_B``.

        Args:
            bureau_representations: ``(n, d)``: the bureau's ``u_B`` of the overlap.

        Returns:
            ``(n, d)``: ``dL/du_B``, the message to the bureau (computed before the update).
        """
        result = self._gradients(self._check_message(bureau_representations))
        self._net.apply((result.weights, result.bias))
        self.last_loss = result.loss
        return result.representation_gradient


class Bureau:
    """Party B of Liu et al. 2020: features only, no labels.

    It trains on its overlap customers' features and never receives the bank's features,
    labels or parameters: only ``dL/du_B`` of the overlap, and ``Phi_A`` to predict.

    Args:
        overlap_features: ``(n, d_B)`` float: its (standardised) features of the overlap
            customers, in the agreed order.
        representation_size: ``d``, 1..256 (the same as the bank's).
        l2: ``lambda`` >= 0 on ``W_B``.
        learning_rate: Adam's step size, in (0, 10].
        rng: Public randomness for the initial ``W_B``.
    """

    def __init__(self, overlap_features: Any, *,
                 representation_size: int = DEFAULT_REPRESENTATION_SIZE,
                 l2: float = DEFAULT_L2, learning_rate: float = DEFAULT_LEARNING_RATE,
                 rng: np.random.Generator) -> None:
        self._x = _check_features("overlap_features", overlap_features)
        size, self.l2, learning_rate, rng = _check_common(representation_size, l2,
                                                          learning_rate, rng)
        self._net = _DenseTanh(self._x.shape[1], size, rng, learning_rate)
        self._cache = np.zeros((0, size))
        self._cache_step = -1

    @property
    def representation_size(self) -> int:
        """``d``."""
        return int(self._net.bias.size)

    @property
    def overlap_size(self) -> int:
        """``n``."""
        return len(self._x)

    def representations(self) -> np.ndarray:
        """``u_B`` of the overlap customers: the message to the bank, ``(n, d)``."""
        return self._overlap_representations().copy()

    def _overlap_representations(self) -> np.ndarray:
        """``Net_B`` of the overlap at the current parameters (kept until the next update)."""
        if self._cache_step != self._net._steps:
            self._cache = self._net(self._x)
            self._cache_step = self._net._steps
        return self._cache

    def _check_message(self, representation_gradient: Any) -> np.ndarray:
        grad = v.check_float_array("representation_gradient", representation_gradient, ndim=2)
        if grad.shape != (self.overlap_size, self.representation_size):
            raise ValueError(f"representation_gradient must be dL/du_B of the "
                             f"{self.overlap_size} overlap customers, shape "
                             f"({self.overlap_size}, {self.representation_size}), got "
                             f"{grad.shape}.")
        return grad

    def gradients(self, representation_gradient: Any) -> tuple[np.ndarray, np.ndarray]:
        """``dL/dW_B`` and ``dL/db_B`` from the bank's ``dL/du_B`` (nothing is updated)."""
        grad = self._check_message(representation_gradient)
        return self._net.backward(self._x, self._overlap_representations(), grad, self.l2)

    def penalty(self) -> float:
        """The bureau's term of the loss, ``lambda/2 |W_B|^2`` (it alone knows ``W_B``)."""
        return 0.5 * self.l2 * float((self._net.weights ** 2).sum())

    def step(self, representation_gradient: Any) -> None:
        """One training step: back-propagates the bank's ``dL/du_B`` and updates ``Net_B``."""
        grad = self._check_message(representation_gradient)
        self._net.apply(self._net.backward(self._x, self._overlap_representations(), grad,
                                           self.l2))

    def scores(self, features: Any, phi: Any) -> np.ndarray:
        """Scores any of its customers: ``Phi_A . Net_B(x_B)`` (:func:`predict`).

        Args:
            features: ``(m, d_B)`` float: its (standardised) features of those customers.
            phi: ``(d,)``: the bank's ``Phi_A`` (:meth:`Bank.phi`).

        Returns:
            Float64 ``(m,)`` logits.
        """
        x = _check_features("features", features)
        if x.shape[1] != self._x.shape[1]:
            raise ValueError(f"features must have the bureau's {self._x.shape[1]} columns, got "
                             f"{x.shape[1]}.")
        phi = v.check_float_array("phi", phi, ndim=1)
        if len(phi) != self.representation_size:
            raise ValueError(f"phi must have {self.representation_size} entries (the "
                             f"representation size), got {len(phi)}.")
        return self._net(x) @ phi


def joint_loss(bank: Bank, bureau: Bureau) -> float:
    """The whole FTL loss ``L`` at the current parameters (the module docstring's formula).

    No party can compute it alone (it needs both nets); tests and the evaluator use it.
    """
    bank, bureau = _check_parties(bank, bureau)
    u_b = bureau._net(bureau._x)        # afresh: never a cached value
    return bank._gradients(u_b).loss + bureau.penalty()


def _check_parties(bank: Any, bureau: Any) -> tuple[Bank, Bureau]:
    if not isinstance(bank, Bank):
        raise TypeError(f"bank must be a transfer.Bank, got {type(bank).__name__}.")
    if not isinstance(bureau, Bureau):
        raise TypeError(f"bureau must be a transfer.Bureau, got {type(bureau).__name__}.")
    if bank.overlap_size != bureau.overlap_size:
        raise ValueError(f"bank and bureau must share the same overlap, got {bank.overlap_size} "
                         f"and {bureau.overlap_size} customers.")
    if bank.representation_size != bureau.representation_size:
        raise ValueError(f"bank and bureau must use the same representation_size, got "
                         f"{bank.representation_size} and {bureau.representation_size}.")
    return bank, bureau


def train_ftl(bank: Bank, bureau: Bureau, *, num_steps: int = DEFAULT_NUM_STEPS) -> np.ndarray:
    """Trains both nets by full-batch Adam, exchanging only the protocol's messages.

    Each step: the bureau sends ``u_B`` of the overlap; the bank computes every gradient at the
    current parameters, updates ``Net_A`` and sends back ``dL/du_B``; the bureau updates
    ``Net_B``. (Both updates use the gradient at the same point: plain gradient descent on
    ``L``, split between two machines.)

    Args:
        bank: The :class:`Bank` (updated in place).
        bureau: The :class:`Bureau`, over the same overlap (updated in place).
        num_steps: Number of steps, 1..100,000.

    Returns:
        Float64 ``(num_steps,)``: the bank's part of the loss at each step (before the step).
    """
    bank, bureau = _check_parties(bank, bureau)
    num_steps = v.check_int("num_steps", num_steps, minimum=1, maximum=MAX_STEPS)
    losses = np.empty(num_steps)
    for step in range(num_steps):
        u_b = bureau.representations()                 # bureau -> bank
        grad_u_b = bank.step(u_b)                      # bank -> bureau
        bureau.step(grad_u_b)
        losses[step] = bank.last_loss if bank.last_loss is not None else np.nan
    if not np.isfinite(losses).all():
        raise ValueError(f"bank and bureau must train to a finite loss, got a non-finite one at "
                         f"step {int(np.argmin(np.isfinite(losses)))}; lower the learning rate.")
    return losses


# ---------------------------------------------------------------------------------------------
# The story of notebook 09 on the credit-card data.

def _check_credit_parties(parties: Any) -> vertical.CreditParties:
    if not isinstance(parties, vertical.CreditParties):
        raise TypeError(f"parties must be a vertical.CreditParties (vertical.credit_parties()), "
                        f"got {type(parties).__name__}.")
    return parties


def _check_overlap_ids(parties: vertical.CreditParties, overlap_ids: Any) -> np.ndarray:
    ids = v.check_ids("overlap_ids", overlap_ids, num=data.CREDIT_DEFAULT_ROWS + 1, unique=True)
    if ids.size < 2:
        raise ValueError(f"overlap_ids must hold at least 2 shared customers, got {ids.size}.")
    if not np.isin(ids, parties.overlap_ids).all():
        stray = ids[~np.isin(ids, parties.overlap_ids)]
        raise ValueError(f"overlap_ids must all be customers of both the bank and the bureau, "
                         f"got {stray.size} that are not (e.g. {int(stray[0])}).")
    return np.sort(ids)


def _check_score_ids(parties: vertical.CreditParties, score_ids: Any) -> np.ndarray:
    ids = v.check_ids("score_ids", score_ids, num=data.CREDIT_DEFAULT_ROWS + 1)
    if ids.size == 0:
        raise ValueError("score_ids must name at least one customer of the bureau, got none.")
    if not np.isin(ids, parties.bureau.ids).all():
        stray = ids[~np.isin(ids, parties.bureau.ids)]
        raise ValueError(f"score_ids must all be customers of the bureau, got {stray.size} that "
                         f"are not (e.g. {int(stray[0])}).")
    return ids


def overlap_sample(parties: vertical.CreditParties, size: int, *, seed: int = 0) -> np.ndarray:
    """A public, seeded subset of the shared training customers (``parties.train_ids``): the
    overlap of a story in which the two parties share only ``size`` customers.

    Args:
        parties: From ``vertical.credit_parties``.
        size: How many, 2..``len(parties.train_ids)``.
        seed: Public seed of the draw.

    Returns:
        Sorted int64 customer ids.
    """
    parties = _check_credit_parties(parties)
    size = v.check_int("size", size, minimum=2, maximum=len(parties.train_ids))
    seed = v.check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(parties.train_ids, size=size, replace=False))


def non_overlap_ids(parties: vertical.CreditParties) -> np.ndarray:
    """The bureau's customers the bank does not serve: the customers FTL is for."""
    parties = _check_credit_parties(parties)
    return np.setdiff1d(parties.bureau.ids, parties.bank.ids)


@dataclasses.dataclass(frozen=True)
class CreditFTL:
    """A trained FTL run on the credit data (:func:`credit_ftl`).

    Attributes:
        scores: The bureau's ``Phi_A . u_B`` of ``score_ids``, float64.
        losses: The loss at each training step.
        seconds: Wall-clock seconds of the training (not of the data preparation).
    """

    scores: np.ndarray
    losses: np.ndarray
    seconds: float


def credit_ftl(parties: vertical.CreditParties, overlap_ids: Any, score_ids: Any, *,
               seed: int = 0, representation_size: int = DEFAULT_REPRESENTATION_SIZE,
               alignment_weight: float = DEFAULT_ALIGNMENT_WEIGHT,
               source_weight: float = DEFAULT_SOURCE_WEIGHT, l2: float = DEFAULT_L2,
               learning_rate: float = DEFAULT_LEARNING_RATE,
               num_steps: int = DEFAULT_NUM_STEPS) -> CreditFTL:
    """FTL between the bank and the bureau, then the bureau scores ``score_ids``.

    Reads only each party's own table: the bank's features and labels of all its customers, the
    bureau's features (its own statistics standardise them); never a label of the bureau's
    customers (it has none) nor the evaluator's view (``labels_of``, ``pooled``).

    Args:
        parties: From ``vertical.credit_parties``.
        overlap_ids: The shared customers the loss runs over (e.g. :func:`overlap_sample`).
        score_ids: Bureau customers to score (e.g. :func:`non_overlap_ids`).
        seed: Public seed of both nets' initialisation.
        representation_size, alignment_weight, source_weight, l2, learning_rate: As in
            :class:`Bank`.
        num_steps: As in :func:`train_ftl`.

    Returns:
        A :class:`CreditFTL`.
    """
    parties = _check_credit_parties(parties)
    overlap_ids = _check_overlap_ids(parties, overlap_ids)
    score_ids = _check_score_ids(parties, score_ids)
    seed = v.check_int("seed", seed, minimum=0)
    bank_rng, bureau_rng = (np.random.default_rng(s)
                            for s in np.random.SeedSequence(seed).spawn(2))
    # The bank, alone: its features standardised with its own statistics.
    (bank_x,) = vertical.standardise(parties.bank.features)
    bank = Bank(bank_x, parties.bank.labels, parties.bank.rows(overlap_ids),
                representation_size=representation_size, alignment_weight=alignment_weight,
                source_weight=source_weight, l2=l2, learning_rate=learning_rate, rng=bank_rng)
    # The bureau, alone: its features standardised with the statistics of all its customers.
    (bureau_x,) = vertical.standardise(parties.bureau.features)
    bureau = Bureau(bureau_x[parties.bureau.rows(overlap_ids)],
                    representation_size=representation_size, l2=l2,
                    learning_rate=learning_rate, rng=bureau_rng)
    start = time.perf_counter()
    losses = train_ftl(bank, bureau, num_steps=num_steps)
    seconds = time.perf_counter() - start
    scores = bureau.scores(bureau_x[parties.bureau.rows(score_ids)], bank.phi())
    return CreditFTL(scores=scores, losses=losses, seconds=seconds)


def labels_only_scores(parties: vertical.CreditParties, overlap_ids: Any, score_ids: Any, *,
                       l2: float = LABELS_ONLY_L2) -> np.ndarray:
    """The baseline that shares labels: the bank hands the bureau the labels of the overlap
    customers, and the bureau fits a logistic regression on its own features
    (``vertical.fit_logistic``). The label sharing is itself the privacy cost.

    Args:
        parties: From ``vertical.credit_parties``.
        overlap_ids: The shared customers whose labels the bank hands over.
        score_ids: Bureau customers to score.
        l2: The ridge penalty of ``vertical.fit_logistic``, >= 0.

    Returns:
        Float64 logits of ``score_ids``.
    """
    parties = _check_credit_parties(parties)
    overlap_ids = _check_overlap_ids(parties, overlap_ids)
    score_ids = _check_score_ids(parties, score_ids)
    l2 = v.check_non_negative("l2", l2)
    if parties.bank.labels is None:
        raise ValueError("parties.bank must hold the bank's labels, got None.")
    shared_labels = parties.bank.labels[parties.bank.rows(overlap_ids)]   # bank -> bureau
    (bureau_x,) = vertical.standardise(parties.bureau.features)
    weights = vertical.fit_logistic(bureau_x[parties.bureau.rows(overlap_ids)], shared_labels,
                                    l2=l2)
    return vertical.scores(weights, bureau_x[parties.bureau.rows(score_ids)])


def months_late_scores(parties: vertical.CreditParties, score_ids: Any) -> np.ndarray:
    """The bureau alone, with no labels at all, but with domain knowledge: the number of months
    late summed over its six months of repayment status (one month late counts 1, two or more
    months late counts 2). No learning, no bank.

    Args:
        parties: From ``vertical.credit_parties``.
        score_ids: Bureau customers to score.

    Returns:
        Float64 scores in 0..12 (higher = more likely to default).
    """
    parties = _check_credit_parties(parties)
    score_ids = _check_score_ids(parties, score_ids)
    x = parties.bureau.features[parties.bureau.rows(score_ids)]
    late1 = [vertical.BUREAU_COLUMNS.index(f"{m} late1") for m in vertical.BUREAU_SOURCE_COLUMNS]
    late2 = [vertical.BUREAU_COLUMNS.index(f"{m} late2+")
             for m in vertical.BUREAU_SOURCE_COLUMNS]
    return x[:, late1].sum(axis=1) + 2.0 * x[:, late2].sum(axis=1)


@dataclasses.dataclass(frozen=True)
class CurvePoint:
    """One overlap size of :func:`overlap_curve`: AUCs on the bureau's non-overlap customers.

    Attributes:
        overlap_size: How many shared customers trained the models.
        ftl_auc: FTL (the bureau's labels come from nobody; the bank keeps its labels).
        labels_only_auc: The bureau's logistic regression on the overlap labels the bank shared.
        ftl_seconds: Training seconds of the FTL run.
    """

    overlap_size: int
    ftl_auc: float
    labels_only_auc: float
    ftl_seconds: float


def overlap_curve(parties: vertical.CreditParties, sizes: Any, *, seed: int = 0,
                  **ftl_options: Any) -> list[CurvePoint]:
    """AUC on the bureau's non-overlap customers against the overlap size: FTL and the
    label-sharing baseline on the same overlap (the evaluator scores them with
    ``parties.labels_of``, which neither model reads).

    Args:
        parties: From ``vertical.credit_parties``.
        sizes: Overlap sizes, each 2..``len(parties.train_ids)``.
        seed: Public seed of the overlap draws and the initialisation.
        **ftl_options: Passed to :func:`credit_ftl` (``alignment_weight=...`` etc.); a name
            that is not one of its options raises ``TypeError`` naming ``ftl_options``.

    Returns:
        One :class:`CurvePoint` per size, in the given order.
    """
    parties = _check_credit_parties(parties)
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise TypeError(f"sizes must be a sequence of overlap sizes, got {type(sizes).__name__}.")
    sizes = [v.check_int(f"sizes[{k}]", size, minimum=2, maximum=len(parties.train_ids))
             for k, size in enumerate(sizes)]
    if not sizes:
        raise ValueError("sizes must hold at least one overlap size, got none.")
    seed = v.check_int("seed", seed, minimum=0)
    allowed = ("representation_size", "alignment_weight", "source_weight", "l2",
               "learning_rate", "num_steps")               # credit_ftl's options
    unknown = sorted(set(ftl_options) - set(allowed))
    if unknown:
        raise TypeError(f"ftl_options must be options of credit_ftl, some of {allowed}, got "
                        f"{unknown}.")
    targets = non_overlap_ids(parties)
    truth = parties.labels_of(targets)                  # the evaluator's view
    points = []
    for size in sizes:
        ids = overlap_sample(parties, size, seed=seed)
        run = credit_ftl(parties, ids, targets, seed=seed, **ftl_options)
        baseline = labels_only_scores(parties, ids, targets)
        points.append(CurvePoint(size, cross_silo.roc_auc(truth, run.scores),
                                 cross_silo.roc_auc(truth, baseline), run.seconds))
    return points
