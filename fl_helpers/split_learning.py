"""Two-party split learning on the credit-card data, the label-leakage attacks of Li et al. 2022,
and a label-DP defence with exact noise (notebook 09).

**The protocol.** The bureau (no labels) runs a *bottom model* on its 30 repayment-status
columns, ``h_i = tanh(x_i W + b)``, an embedding of ``embedding_dim`` numbers per customer, and
sends the embeddings of a batch to the bank. The bank (the label holder) runs the *top model*
on its own columns and the embedding, ``[x_bank_i, h_i]`` (logistic regression by default, or a
ReLU layer first), computes the logistic loss and sends back, for **every customer of the
batch**, the gradient of that customer's loss with respect to its embedding,

    g_i = dl_i / dh_i = r_i * dz_i / dh_i,    r_i = dl_i / dz_i = p_i - y_i,

where ``z_i`` is the logit and ``p_i = sigmoid(z_i)``. The bureau back-propagates ``g_i``
through its bottom model; each party updates its own half with Adam. Neither sees the other's
columns. This is the two-party split learning studied by Li, Sun, Yang, Gao, Zhang, Xie, Smith &
Wang 2022, "Label Leakage and Protection in Two-party Split Learning" (ICLR).

**What leaks** (their Section 3). The label is in ``r_i``: negative for a defaulter (``y = 1``),
positive otherwise. The bureau, an honest-but-curious adversary that knows its own features, the
protocol, the code and the class prior but no label, scores each customer from ``g_i`` alone:

* **norm scoring** (:func:`norm_scores`): ``||g_i|| = |p_i - y_i| ||dz_i/dh_i||``. The minority
  class (defaulters, 22 %) is the one the model predicts badly, so its ``|p_i - y_i|`` is large;
  the attack needs the model to have learnt the class prior first (weak in the first epoch).
* **direction scoring** (:func:`direction_scores`): the cosine of ``g_i`` with the gradient of one
  customer the bureau knows defaulted. With the default top model ``dz_i/dh_i`` is the bank's
  weight vector on the embedding, the same for every customer of a step: every returned
  gradient is parallel to it, and its sign *is* the label. :func:`unsupervised_direction_scores`
  needs no known label: the batch's gradients lie along one line, and the minority side of the
  line is the defaulters' (the bureau knows the prior is below 1/2).

:func:`attack_aucs` measures both, epoch by epoch, as the AUC of the scores against the true
labels within each batch (a batch's gradients come from one model, so their scores are
comparable), averaged over the epoch's batches.

**Another defence, elsewhere.** Under the encrypted protocol of Hardy et al. 2017
(``fl_helpers.vertical_protocol``) the per-customer quantities reach the bureau only as Paillier
ciphertexts under the coordinator's key; what it ever sees in the clear is its own (masked)
gradient summed over the batch, not one gradient per customer, so neither scoring has anything
to read. It costs far more computation, and it protects the training messages, not the
trained model.

**The defence here: label DP with exact noise** (:func:`train_split` with
``noise_multiplier > 0``).

* *Unit and relation*: one training customer's label; neighbouring training sets differ in one
  customer's label (replace-one on a label), all features fixed (each party's features are its
  own and not what is protected).
* *Observer*: the bureau. It sees every returned gradient of every epoch, and knows its own
  features and bottom model, the public batch order and initialisation (``seed``), and the code.
* *Trusted*: the bank. It holds the labels, draws the noise from a secret source and never
  shows it.
* *Mechanism*: the label enters the training **only** through the residual ``r_i``, so that is
  what is noised, once per customer per epoch, before anything else uses it. The bank puts it on
  the integer grid of step ``1 / S`` (``S`` = :data:`GRID_STEPS`) as
  ``R_i = rint(p_i S) - y_i S``, adds exact discrete Gaussian noise ``N_Z(0, sigma^2)`` with
  ``sigma^2 >= (z S)^2`` (:func:`fl_helpers.discrete_noise.discrete_gaussian`, keyed from a
  :class:`fl_helpers.schedule.PrivateRandomness`, secret by default), and only then turns the
  integers into floats, ``r~_i = (R_i + N_i) / S``. Both the returned gradient
  ``g~_i = r~_i dz_i/dh_i`` and the bank's own update of its top model are computed from
  ``r~``: everything downstream is post-processing.
* *Sensitivity, proved*: ``p_i`` is a function of the current models, ``x_bank_i`` and
  ``h_i``, and the models are functions of the public initialisation, the features and the
  *noised* residuals released before; none of them is a function of ``y_i`` given that history.
  ``rint(p_i S)`` is therefore the same integer under both labels, and ``R_i`` moves by exactly
  ``S`` when ``y_i`` flips (integer arithmetic, no floating-point rounding involved; ``0 <= p_i
  <= 1`` so ``|R_i| <= S`` and no clipping is needed). The residuals of the other customers of
  the batch do not change. So each release ``(R_i + N_i)_{i in batch}`` is the discrete Gaussian
  mechanism with L2 sensitivity ``S``, noise multiplier ``sigma / S >= z``, for the customer's
  own batch, and sensitivity 0 for every other batch.
* *Composition*: every epoch is a permutation of the training customers drawn from the public
  ``seed``, so each customer's residual is released exactly once per epoch, and the bureau knows
  when. That is ``E`` adaptive compositions of the discrete Gaussian **without** sampling
  amplification (the batches are not Poisson-sampled, and their order is public). The accountant
  is the course's discrete one (:func:`fl_helpers.accounting.sampled_discrete_gaussian_rdp` at
  ``q = 1``: Renyi DP ``a / (2 z^2)`` per epoch, Canonne, Kamath & Steinke 2020, Proposition 5,
  composed over ``E`` epochs): :func:`label_dp_epsilon`.

Why not noise the returned gradient itself (clip each ``g_i`` to ``C`` on the grid, add noise;
changing a label moves it by at most ``2 C``)? That bounds one customer's returned gradient,
but the bank would still train its top model on the clean residuals, and the top model shapes
every later returned gradient of every customer (``p_k`` and ``dz_k/dh_k``): the bureau's view
would depend on ``y_i`` outside the noised releases and the accounting would not hold. Noising
``r_i`` covers the returned gradients and the bank's model at once, with sensitivity ``S``
instead of ``2 C`` and one noised number per customer instead of ``embedding_dim``. The
trained models (both halves) are then label-DP too.

Not covered: which customers the parties share (the intersection), what ``dz_i/dh_i`` reveals
about the bank's features, and anything at test time (the bureau sends embeddings and receives
nothing).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from scipy import special

from fl_helpers import _validation as v
from fl_helpers import accounting, cross_silo, discrete_noise, models, schedule, vertical

#: Grid steps per unit of the residual ``r = p - y``: the residual is released as the integer
#: ``rint(p S) - y S`` (plus integer noise), which a label flip moves by exactly ``S``.
GRID_STEPS = discrete_noise.GRID_STEPS
#: Largest noise multiplier with exact noise: ``(z S)^2`` must stay within the sampler's
#: :data:`fl_helpers.discrete_noise.MAX_LARGE_VARIANCE` (about 482).
MAX_NOISE_MULTIPLIER = math.sqrt(discrete_noise.MAX_LARGE_VARIANCE) / GRID_STEPS
#: Most epochs a run may take.
MAX_EPOCHS = 1000
#: Largest embedding and hidden layer.
MAX_UNITS = 1024
#: Most returned-gradient values a run records (``epochs x customers x embedding_dim``): 256 MiB.
MAX_RECORDED_VALUES = 2**25
#: Adam's constants (Kingma & Ba 2015, Algorithm 1).
_BETA1, _BETA2, _ADAM_EPS = 0.9, 0.999, 1e-8


# ------------------------------------------------------------------------------------ data

def _check_features(name: str, value: Any) -> np.ndarray:
    return v.check_float_array(name, value, ndim=2)


def _check_binary_labels(name: str, value: Any, size: int, *, both: bool = True) -> np.ndarray:
    """``size`` labels, each 0 or 1, as int64 (both classes present if ``both``)."""
    labels = v.check_float_array(name, value, ndim=1)
    if labels.size != size:
        raise ValueError(f"{name} must hold one label per row ({size}), got {labels.size}.")
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError(f"{name} must hold labels 0 or 1, got other values.")
    if both and not 0 < labels.sum() < labels.size:
        raise ValueError(f"{name} must hold both classes (an AUC needs them), got "
                         f"{int(labels.sum())} positive of {labels.size}.")
    return labels.astype(np.int64)


@dataclasses.dataclass(frozen=True)
class SplitData:
    """The aligned customers' columns, as each party prepared its own.

    Attributes:
        bank_train: The bank's standardised columns of the training customers, ``(n, d_bank)``.
        bureau_train: The bureau's standardised columns of the same customers in the same
            order, ``(n, d_bureau)``.
        labels_train: The bank's labels of the training customers (0/1), ``(n,)``.
        bank_test: The bank's columns of the test customers, ``(m, d_bank)``.
        bureau_test: The bureau's columns of the test customers, ``(m, d_bureau)``.
        labels_test: The test customers' labels: the evaluator's, to score the model.
    """

    bank_train: np.ndarray
    bureau_train: np.ndarray
    labels_train: np.ndarray
    bank_test: np.ndarray
    bureau_test: np.ndarray
    labels_test: np.ndarray

    def __post_init__(self) -> None:
        checked = {}
        for name in ("bank_train", "bureau_train", "bank_test", "bureau_test"):
            checked[name] = _check_features(name, getattr(self, name))
        n, m = len(checked["bank_train"]), len(checked["bank_test"])
        for party in ("bank", "bureau"):
            train, test = checked[f"{party}_train"], checked[f"{party}_test"]
            if len(train) != n or len(test) != m:
                raise ValueError(f"{party}_train and {party}_test must have the rows of "
                                 f"bank_train ({n}) and bank_test ({m}), got {len(train)} and "
                                 f"{len(test)}.")
            if train.shape[1] != test.shape[1]:
                raise ValueError(f"{party}_test must have the {train.shape[1]} columns of "
                                 f"{party}_train, got {test.shape[1]}.")
        checked["labels_train"] = _check_binary_labels("labels_train", self.labels_train, n)
        checked["labels_test"] = _check_binary_labels("labels_test", self.labels_test, m)
        for name, array in checked.items():
            object.__setattr__(self, name, array)


def credit_split_data(parties: vertical.CreditParties) -> SplitData:
    """The split-learning view of :func:`fl_helpers.vertical.credit_parties`.

    Each party standardises its own columns with the statistics of its own training customers
    (:func:`fl_helpers.vertical.standardise`); rows follow ``parties.train_ids`` and
    ``parties.test_ids``. The test labels are the evaluator's (``parties.labels_of``).

    Args:
        parties: A :class:`fl_helpers.vertical.CreditParties`.

    Returns:
        A :class:`SplitData`.
    """
    if not isinstance(parties, vertical.CreditParties):
        raise TypeError(f"parties must be a vertical.CreditParties (from "
                        f"vertical.credit_parties()), got {type(parties).__name__}.")
    bank, bureau = parties.bank, parties.bureau
    train, test = parties.train_ids, parties.test_ids
    bank_train, bank_test = vertical.standardise(bank.features[bank.rows(train)],
                                                 bank.features[bank.rows(test)])
    bureau_train, bureau_test = vertical.standardise(bureau.features[bureau.rows(train)],
                                                     bureau.features[bureau.rows(test)])
    assert bank.labels is not None  # the bank is the label holder
    return SplitData(bank_train, bureau_train, bank.labels[bank.rows(train)], bank_test,
                     bureau_test, parties.labels_of(test))


# ----------------------------------------------------------------------------------- model

@dataclasses.dataclass(frozen=True)
class SplitModel:
    """The two halves: the bureau's bottom model and the bank's top model.

    Attributes:
        bottom_weights: ``W``, ``(d_bureau, k)``: ``h = tanh(x_bureau W + b)``.
        bottom_bias: ``b``, ``(k,)``.
        top_weights: The top model's Dense layers on ``[x_bank, h]``, ReLU between them, the
            last with one output (the logit); one layer is logistic regression.
        top_biases: Their biases.
    """

    bottom_weights: np.ndarray
    bottom_bias: np.ndarray
    top_weights: tuple[np.ndarray, ...]
    top_biases: tuple[np.ndarray, ...]

    @property
    def embedding_dim(self) -> int:
        """``k``, the numbers the bureau sends per customer."""
        return int(self.bottom_weights.shape[1])

    @property
    def bank_columns(self) -> int:
        """The bank's columns the top model reads before the embedding."""
        return int(self.top_weights[0].shape[0]) - self.embedding_dim

    def parameters(self) -> list[np.ndarray]:
        """Every array, bottom first: ``[W, b, W_1, b_1, ...]`` (the order of :meth:`gradients`)."""
        top = [a for pair in zip(self.top_weights, self.top_biases, strict=True) for a in pair]
        return [self.bottom_weights, self.bottom_bias, *top]

    def embed(self, bureau_x: Any) -> np.ndarray:
        """The bureau's embeddings ``h = tanh(x W + b)``, ``(n, k)``."""
        x = _check_features("bureau_x", bureau_x)
        if x.shape[1] != self.bottom_weights.shape[0]:
            raise ValueError(f"bureau_x must have {self.bottom_weights.shape[0]} columns, got "
                             f"{x.shape[1]}.")
        return _embed(self, x)

    def logits(self, bank_x: Any, embeddings: Any) -> np.ndarray:
        """The bank's logits ``z`` from its columns and the embeddings, ``(n,)``."""
        x, h = self._check_top_inputs(bank_x, embeddings)
        return _top_forward(self, np.concatenate([x, h], axis=1))[0]

    def cut_layer_gradients(self, bank_x: Any, embeddings: Any, labels: Any) -> np.ndarray:
        """What the bank returns in plaintext: ``g_i = dl_i / dh_i`` for each customer's
        logistic loss ``l_i``, ``(n, k)``."""
        x, h = self._check_top_inputs(bank_x, embeddings)
        y = _check_binary_labels("labels", labels, len(x), both=False)
        inputs = np.concatenate([x, h], axis=1)
        logits, cache = _top_forward(self, inputs)
        residuals = special.expit(logits) - y
        return _top_backward(self, inputs, cache, residuals)[1][:, self.bank_columns:]

    def loss(self, bank_x: Any, bureau_x: Any, labels: Any) -> float:
        """The mean logistic loss of the whole split model."""
        x, h, y = self._check_all(bank_x, bureau_x, labels)
        logits = _top_forward(self, np.concatenate([x, h], axis=1))[0]
        return float(np.mean(np.logaddexp(0.0, logits) - y * logits))

    def gradients(self, bank_x: Any, bureau_x: Any, labels: Any) -> list[np.ndarray]:
        """The gradient of :meth:`loss` with respect to :meth:`parameters`, as split training
        computes it (the bank's half locally, the bureau's half from the returned ``g_i``)."""
        x, h, y = self._check_all(bank_x, bureau_x, labels)
        bureau = _check_features("bureau_x", bureau_x)
        inputs = np.concatenate([x, h], axis=1)
        logits, cache = _top_forward(self, inputs)
        residuals = special.expit(logits) - y
        top, returned = _top_backward(self, inputs, cache, residuals)
        return [*_bottom_backward(bureau, h, returned[:, self.bank_columns:]), *top]

    def _check_top_inputs(self, bank_x: Any, embeddings: Any) -> tuple[np.ndarray, np.ndarray]:
        x = _check_features("bank_x", bank_x)
        h = _check_features("embeddings", embeddings)
        if x.shape[1] != self.bank_columns:
            raise ValueError(f"bank_x must have {self.bank_columns} columns, got {x.shape[1]}.")
        if h.shape != (len(x), self.embedding_dim):
            raise ValueError(f"embeddings must have shape ({len(x)}, {self.embedding_dim}), one "
                             f"row per row of bank_x, got {h.shape}.")
        return x, h

    def _check_all(self, bank_x: Any, bureau_x: Any, labels: Any
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h = self.embed(bureau_x)
        x, h = self._check_top_inputs(bank_x, h)
        return x, h, _check_binary_labels("labels", labels, len(x), both=False)


def _embed(model: SplitModel, x: np.ndarray) -> np.ndarray:
    return np.tanh(x @ model.bottom_weights + model.bottom_bias)


def _top_forward(model: SplitModel, inputs: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The logits and each layer's input (for the backward pass)."""
    weights = [p for pair in zip(model.top_weights, model.top_biases, strict=True) for p in pair]
    logits, layer_inputs = models._relu_logits(weights, inputs)
    return logits[:, 0], layer_inputs


def _top_backward(model: SplitModel, inputs: np.ndarray, layer_inputs: list[np.ndarray],
                  residuals: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """From the residuals ``r_i = dl_i/dz_i``: the mean loss's gradients of the top layers
    (``[W_1, b_1, ...]``) and each customer's ``dl_i / d inputs_i`` (not divided by ``n``)."""
    n = len(residuals)
    delta = residuals[:, None]
    grads: list[np.ndarray] = []
    for k in range(len(model.top_weights) - 1, -1, -1):
        a = layer_inputs[k]
        grads[:0] = [a.T @ delta / n, delta.sum(axis=0) / n]
        delta = delta @ model.top_weights[k].T
        if k > 0:
            delta = delta * (a > 0)
    return grads, delta


def _bottom_backward(bureau_x: np.ndarray, h: np.ndarray, returned: np.ndarray
                     ) -> list[np.ndarray]:
    """The bureau's gradients of ``W`` and ``b`` from the returned ``g_i``, averaged over the
    batch."""
    n = len(h)
    d_pre = returned * (1.0 - h * h)
    return [bureau_x.T @ d_pre / n, d_pre.sum(axis=0) / n]


def _initial_model(d_bank: int, d_bureau: int, embedding_dim: int, hidden_units: int,
                   rng: np.random.Generator) -> SplitModel:
    """Public initialisation from the seed: normal weights of variance 1 / fan-in (2 / fan-in
    before a ReLU), zero biases."""
    bottom = rng.normal(0.0, 1.0 / math.sqrt(d_bureau), (d_bureau, embedding_dim))
    widths = [d_bank + embedding_dim, *([hidden_units] if hidden_units else []), 1]
    weights = []
    for k in range(len(widths) - 1):
        gain = 2.0 if k < len(widths) - 2 else 1.0
        weights.append(rng.normal(0.0, math.sqrt(gain / widths[k]), (widths[k], widths[k + 1])))
    return SplitModel(bottom, np.zeros(embedding_dim), tuple(weights),
                      tuple(np.zeros(w.shape[1]) for w in weights))


# ---------------------------------------------------------------------------------- the defence

def residual_integers(probabilities: Any, labels: Any) -> np.ndarray:
    """The residuals ``p - y`` on the integer grid of step ``1 / S``: ``rint(p S) - y S``.

    Flipping one label moves its entry by exactly ``S`` = :data:`GRID_STEPS` and no other entry
    (integer arithmetic); every entry lies in ``[-S, S]``. This is the quantity the defence
    noises.

    Args:
        probabilities: The model's ``p_i`` in [0, 1], ``(n,)``.
        labels: ``y_i``, 0 or 1, ``(n,)``.

    Returns:
        int64 ``(n,)``.
    """
    p = v.check_float_array("probabilities", probabilities, ndim=1)
    if p.min() < 0.0 or p.max() > 1.0:
        raise ValueError(f"probabilities must lie in [0, 1], got values from {p.min()} to "
                         f"{p.max()}.")
    y = _check_binary_labels("labels", labels, len(p), both=False)
    return _residual_integers(p, y)


def _residual_integers(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.rint(p * GRID_STEPS).astype(np.int64) - y * GRID_STEPS


def _check_noise_multiplier(noise_multiplier: Any, *, allow_zero: bool) -> float:
    z = (v.check_non_negative if allow_zero else v.check_positive)(
        "noise_multiplier", noise_multiplier)
    if z > MAX_NOISE_MULTIPLIER:
        raise ValueError(f"noise_multiplier must be <= {MAX_NOISE_MULTIPLIER:.0f} (the exact "
                         f"sampler's largest variance), got {v._fmt(z)}.")
    return z


def _check_epochs(epochs: Any) -> int:
    return v.check_int("epochs", epochs, minimum=1, maximum=MAX_EPOCHS)


def label_dp_epsilon(*, noise_multiplier: float, epochs: int, target_delta: float) -> float:
    """Epsilon of :func:`train_split`'s defence against the bureau, for one customer's label.

    ``epochs`` compositions of the discrete Gaussian mechanism with noise multiplier ``z`` on
    a release of L2 sensitivity 1 (in units of the residual), without sampling amplification:
    :func:`fl_helpers.accounting.dp_fedavg_epsilon` with ``sampling_probability=1``,
    ``num_rounds=epochs`` and the ``"discrete"`` accountant (Renyi DP ``a / (2 z^2)`` per epoch
    at integer orders ``a``; see the module docstring for the unit, the relation and the proof
    of the sensitivity).

    Args:
        noise_multiplier: ``z`` = noise std / sensitivity, in (0, :data:`MAX_NOISE_MULTIPLIER`];
            0 means no noise (epsilon ``inf``).
        epochs: ``E``, 1..:data:`MAX_EPOCHS`.
        target_delta: The delta of the guarantee, in (0, 1); below ``1 / n``.

    Returns:
        epsilon (``inf`` for ``noise_multiplier = 0``).
    """
    z = _check_noise_multiplier(noise_multiplier, allow_zero=True)
    epochs = _check_epochs(epochs)
    target_delta = v.check_open_unit("target_delta", target_delta)
    if z == 0.0:
        return math.inf
    return accounting.dp_fedavg_epsilon(noise_multiplier=z, sampling_probability=1.0,
                                        num_rounds=epochs, target_delta=target_delta,
                                        accountant="discrete")


def noise_multiplier_for_label_dp(*, target_epsilon: float, epochs: int,
                                  target_delta: float) -> float:
    """The smallest noise multiplier whose :func:`label_dp_epsilon` is at most
    ``target_epsilon`` (to a relative 1e-4; :func:`fl_helpers.accounting.
    noise_multiplier_for_epsilon` with the discrete accountant at ``q = 1``).

    Args:
        target_epsilon: > 0.
        epochs: ``E``, 1..:data:`MAX_EPOCHS`.
        target_delta: In (0, 1).

    Returns:
        ``z``.
    """
    target_epsilon = v.check_positive("target_epsilon", target_epsilon)
    epochs = _check_epochs(epochs)
    target_delta = v.check_open_unit("target_delta", target_delta)
    z = accounting.noise_multiplier_for_epsilon(
        target_epsilon=target_epsilon, target_delta=target_delta, sampling_probability=1.0,
        num_rounds=epochs, accountant="discrete")
    if z > MAX_NOISE_MULTIPLIER:
        raise ValueError(f"target_epsilon={target_epsilon} needs noise_multiplier {z:.4g}, above "
                         f"the exact sampler's {MAX_NOISE_MULTIPLIER:.0f}. Raise target_epsilon.")
    return z


# --------------------------------------------------------------------------------- training

@dataclasses.dataclass(frozen=True)
class SplitRun:
    """One split-learning run: the model, its test AUC and everything the bureau saw.

    Attributes:
        model: The trained :class:`SplitModel`.
        test_auc: AUC of the final model on the test customers.
        test_auc_per_epoch: The test AUC after each epoch, ``(E,)``.
        returned_gradients: What the bureau received: ``[e, i]`` is the gradient returned for
            training customer ``i`` (row of ``SplitData.bank_train``) in epoch ``e``,
            ``(E, n, k)``.
        batch_index: ``[e, i]`` is the batch of epoch ``e`` that held customer ``i`` (public:
            the order comes from ``seed``), ``(E, n)`` int64.
        released_residuals: With the defence, the noised integers ``R_i + N_i`` the bank used
            (``r~_i`` times :data:`GRID_STEPS`), ``(E, n)`` int64; ``None`` without it.
        noise_multiplier: ``z`` (0: plaintext split learning).
        epochs: ``E``.
        batch_size: Customers per batch.
        target_delta: The delta of :attr:`epsilon`.
        epsilon: The label-DP epsilon against the bureau (``inf`` without noise).
        reproducible_noise: Whether the noise came from a seed (then NOT private).
    """

    model: SplitModel
    test_auc: float
    test_auc_per_epoch: np.ndarray
    returned_gradients: np.ndarray
    batch_index: np.ndarray
    released_residuals: np.ndarray | None
    noise_multiplier: float
    epochs: int
    batch_size: int
    target_delta: float
    epsilon: float
    reproducible_noise: bool

    def privacy_statement(self, language: str = "en") -> str:
        """What :attr:`epsilon` means, in six lines: the label-DP guarantee after
        :attr:`epochs` epochs (none for a plaintext run, ``NOT PRIVATE`` with reproducible
        noise), the unit (one customer's label), the relation (features fixed), the exact
        noise, the trusted bank and what the bureau observes.

        Args:
            language: ``"en"`` (the default) or ``"zh-CN"``, the Chinese edition: the same
                six lines and figures in notebook 09's terms (银行, 征信机构) and the
                glossary's (保证, 隐私单元, 相邻关系, 受信任方, 观察者).

        Returns:
            Six newline-separated lines (guarantee, unit, relation, noise, trust, observer),
            each label padded to 16 columns.

        Raises:
            TypeError: ``language`` is not a string.
            ValueError: ``language`` is not ``"en"`` or ``"zh-CN"``.
        """
        words = _STATEMENT[v.check_language(language)]
        if self.noise_multiplier == 0.0:
            guarantee = words["plaintext"]
        elif self.reproducible_noise:
            guarantee = words["reproducible"].format(eps=self.epsilon, delta=self.target_delta)
        else:
            guarantee = words["guarantee"].format(eps=self.epsilon, delta=self.target_delta,
                                                  epochs=self.epochs, z=self.noise_multiplier)
        return "\n".join([words["guarantee_line"].format(guarantee=guarantee), words["unit"],
                          words["neighbouring"], words["noise"], words["trusted"],
                          words["observer"]])


#: :meth:`SplitRun.privacy_statement`'s sentences, per language: the same lines with the same
#: figures (guarantee 保证, unit 隐私单元, neighbouring relation 相邻关系, trusted party 受信任方,
#: observer 观察者; bank 银行, bureau 征信机构, as notebook 09's Chinese text). The Chinese labels
#: are padded to the English ones' 16 columns (a CJK character is two columns wide).
_STATEMENT = {
    "en": {
        "plaintext": "none: plaintext split learning (epsilon = inf); the returned gradients "
                     "carry the labels.",
        "reproducible": "NOT PRIVATE: reproducible noise was requested, so anyone who knows the "
                        "seed can remove it. (With secret noise the same settings would give "
                        "epsilon = {eps:.3g}, delta = {delta:g}.)",
        "guarantee": "(epsilon, delta) = ({eps:.3g}, {delta:g}) label DP after {epochs} epochs "
                     "(z = {z:.4g}, no sampling amplification).",
        "guarantee_line": "guarantee:      {guarantee}",
        "unit": "unit protected: one training customer's label (the bank's)",
        "neighbouring": "neighbouring:   training sets that differ in one customer's label; "
                        "features fixed",
        "noise": "noise:          exact: rint(p S) - y S + N_Z(0, sigma^2), sigma >= z S, once "
                 "per customer per epoch; floats only after",
        "trusted": "trusted:        the bank (holds the labels, draws the noise, keeps it secret)",
        "observer": "observer sees:  the bureau: every returned gradient of every epoch, its own "
                    "features and bottom model, the public batch order, the code",
    },
    "zh-CN": {
        "plaintext": "无：明文拆分学习（ε = inf）；返回的梯度携带着标签。",
        "reproducible": "不是隐私的：调用方要求了可复现噪声，因此任何知道种子的人都能去除它。"
                        "（若使用秘密噪声，同样的设置会得到 ε = {eps:.3g}，δ = {delta:g}。）",
        "guarantee": "{epochs} 个 epoch 之后满足 (ε, δ) = ({eps:.3g}, {delta:g}) 标签差分隐私"
                     "（z = {z:.4g}，没有子采样放大）。",
        "guarantee_line": "保证：          {guarantee}",
        "unit": "隐私单元：      一位训练客户的标签（银行持有的标签）",
        "neighbouring": "相邻关系：      只在一位客户的标签上不同的两个训练集；特征固定不变",
        "noise": "噪声：          精确：rint(p S) - y S + N_Z(0, sigma^2)，sigma >= z S，每个 "
                 "epoch 每位客户一次；浮点运算只在此之后",
        "trusted": "受信任方：      银行（持有标签、抽取噪声并对噪声保密）",
        "observer": "观察者看到：    征信机构：每个 epoch 返回的每一个梯度、它自己的特征和底部"
                    "模型、公开的批次顺序、代码",
    },
}


def _check_data(data: Any) -> SplitData:
    if not isinstance(data, SplitData):
        raise TypeError(f"data must be a split_learning.SplitData (e.g. from "
                        f"credit_split_data()), got {type(data).__name__}.")
    return data


def train_split(data: SplitData, *, epochs: int = 5, batch_size: int = 512,
                embedding_dim: int = 8, hidden_units: int = 0, learning_rate: float = 0.01,
                seed: int = 0, noise_multiplier: float = 0.0, target_delta: float = 1e-5,
                randomness: schedule.PrivateRandomness | None = None) -> SplitRun:
    """Trains the split model, recording every gradient the bank returns to the bureau.

    Every epoch draws a permutation of the training customers from the public ``seed``
    (:func:`fl_helpers.schedule.client_batches_unchecked`, each customer once per epoch) and
    cuts it into batches. Per batch: the bureau embeds, the bank computes ``p_i`` and the
    residuals ``r_i = p_i - y_i`` (with ``noise_multiplier > 0``: the exact noised
    ``r~_i``, see the module docstring), updates its top model from them and returns
    ``g_i = r_i dz_i/dh_i``; the bureau updates its bottom model. Both use Adam with
    ``learning_rate``.

    Args:
        data: A :class:`SplitData`.
        epochs: ``E``, 1..:data:`MAX_EPOCHS`.
        batch_size: Customers per batch, >= 1 (the last batch of an epoch is smaller).
        embedding_dim: ``k``, the bureau's output per customer, 1..:data:`MAX_UNITS`.
        hidden_units: 0 (default): the top model is logistic regression on ``[x_bank, h]``;
            otherwise a ReLU layer of that width first (1..:data:`MAX_UNITS`).
        learning_rate: Adam's step size, > 0.
        seed: Public seed of the initialisation and the batch order.
        noise_multiplier: ``z``: 0 (default) is plaintext split learning; ``> 0`` adds
            ``N_Z(0, sigma^2)``, ``sigma >= z S``, to every residual (the defence), up to
            :data:`MAX_NOISE_MULTIPLIER`.
        target_delta: The delta of the reported epsilon, in (0, 1).
        randomness: The noise's :class:`fl_helpers.schedule.PrivateRandomness`. ``None``
            (default): a fresh secret one. ``PrivateRandomness.reproducible(seed)``: the run
            repeats exactly and is **not private**; its ``UserWarning`` says so. A secret one
            serves one run: a second run with it is refused.

    Returns:
        A :class:`SplitRun`.

    Raises:
        TypeError, ValueError: An argument is malformed or out of range (the message names it);
            ValueError also if training diverges.
    """
    data = _check_data(data)
    epochs = _check_epochs(epochs)
    batch_size = v.check_int("batch_size", batch_size, minimum=1)
    embedding_dim = v.check_int("embedding_dim", embedding_dim, minimum=1, maximum=MAX_UNITS)
    hidden_units = v.check_int("hidden_units", hidden_units, minimum=0, maximum=MAX_UNITS)
    learning_rate = v.check_positive("learning_rate", learning_rate)
    seed = v.check_int("seed", seed, minimum=0)
    noise_multiplier = _check_noise_multiplier(noise_multiplier, allow_zero=True)
    target_delta = v.check_open_unit("target_delta", target_delta)
    n = len(data.labels_train)
    if epochs * n * embedding_dim > MAX_RECORDED_VALUES:
        raise ValueError(f"epochs must be <= {MAX_RECORDED_VALUES // (n * embedding_dim)} for "
                         f"{n} customers and embedding_dim={embedding_dim} (the run records "
                         f"every returned gradient), got {epochs}.")
    noised = noise_multiplier > 0.0
    private = schedule.resolve_randomness(randomness) \
        if noised or randomness is not None else None
    if private is not None:
        private.claim("split_learning.train_split")
    epsilon = label_dp_epsilon(noise_multiplier=noise_multiplier, epochs=epochs,
                               target_delta=target_delta)
    variance = discrete_noise.exact_variance_at_least((noise_multiplier * GRID_STEPS) ** 2) \
        if noised else 0

    rng = np.random.default_rng(seed)
    model = _initial_model(data.bank_train.shape[1], data.bureau_train.shape[1], embedding_dim,
                           hidden_units, rng)
    params = [p.copy() for p in model.parameters()]
    moments = [np.zeros_like(p) for p in params]
    squares = [np.zeros_like(p) for p in params]
    order = schedule.client_batches_unchecked(n, epochs, batch_size, rng)
    per_epoch = len(order) // epochs
    returned_all = np.zeros((epochs, n, embedding_dim))
    batch_index = np.zeros((epochs, n), dtype=np.int64)
    released = np.zeros((epochs, n), dtype=np.int64) if noised else None
    test_aucs = np.zeros(epochs)
    y_train = data.labels_train
    steps = 0
    for epoch in range(epochs):
        if noised:
            assert private is not None
            noise = discrete_noise._discrete_gaussian(variance, n, private._exact_bits(epoch))
        for b, rows in enumerate(order[epoch * per_epoch:(epoch + 1) * per_epoch]):
            model = _unflatten(params)
            bureau_x = data.bureau_train[rows]
            h = _embed(model, bureau_x)                                   # the bureau
            inputs = np.concatenate([data.bank_train[rows], h], axis=1)   # the bank
            logits, cache = _top_forward(model, inputs)
            p = special.expit(logits)
            if noised:
                assert released is not None
                integers = _residual_integers(p, y_train[rows]) + noise[rows]
                released[epoch, rows] = integers
                residuals = integers.astype(np.float64) / GRID_STEPS  # floats only now
            else:
                residuals = p - y_train[rows]
            top, to_inputs = _top_backward(model, inputs, cache, residuals)
            returned = to_inputs[:, model.bank_columns:]                  # sent to the bureau
            returned_all[epoch, rows] = returned
            batch_index[epoch, rows] = b
            bottom = _bottom_backward(bureau_x, h, returned)              # the bureau
            steps += 1
            _adam_step(params, [*bottom, *top], moments, squares, steps, learning_rate)
        model = _unflatten(params)
        if not all(np.isfinite(p).all() for p in params):
            raise ValueError(f"training diverged (NaN or inf weights) with learning_rate="
                             f"{learning_rate}; try a smaller learning_rate.")
        test_aucs[epoch] = cross_silo.roc_auc(data.labels_test, _predict(model, data))
    return SplitRun(model=model, test_auc=float(test_aucs[-1]), test_auc_per_epoch=test_aucs,
                    returned_gradients=returned_all, batch_index=batch_index,
                    released_residuals=released, noise_multiplier=noise_multiplier,
                    epochs=epochs, batch_size=batch_size, target_delta=target_delta,
                    epsilon=epsilon,
                    reproducible_noise=bool(private is not None and private.is_reproducible))


def _predict(model: SplitModel, data: SplitData) -> np.ndarray:
    inputs = np.concatenate([data.bank_test, _embed(model, data.bureau_test)], axis=1)
    return _top_forward(model, inputs)[0]


def _unflatten(params: list[np.ndarray]) -> SplitModel:
    top = params[2:]
    return SplitModel(params[0], params[1], tuple(top[0::2]), tuple(top[1::2]))


def _adam_step(params: list[np.ndarray], grads: list[np.ndarray], moments: list[np.ndarray],
               squares: list[np.ndarray], step: int, learning_rate: float) -> None:
    """One Adam step in place (Kingma & Ba 2015, Algorithm 1)."""
    scale = learning_rate * math.sqrt(1.0 - _BETA2**step) / (1.0 - _BETA1**step)
    for p, g, m, s in zip(params, grads, moments, squares, strict=True):
        m *= _BETA1
        m += (1.0 - _BETA1) * g
        s *= _BETA2
        s += (1.0 - _BETA2) * g * g
        p -= scale * m / (np.sqrt(s) + _ADAM_EPS)


# ---------------------------------------------------------------------------------- attacks

def _check_gradients(gradients: Any) -> np.ndarray:
    return v.check_float_array("gradients", gradients, ndim=2)


def norm_scores(gradients: Any) -> np.ndarray:
    """Li et al. 2022's norm scoring: ``||g_i||`` for each returned gradient (a large norm
    suggests the minority class, a defaulter).

    Args:
        gradients: ``(n, k)`` returned gradients (e.g. one batch of one epoch).

    Returns:
        ``(n,)`` scores, higher = more likely a defaulter.
    """
    return np.linalg.norm(_check_gradients(gradients), axis=1)


def _cosines(g: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Cosines of the rows of ``g`` with ``direction``; 0 where a norm is 0."""
    norms = np.linalg.norm(g, axis=1) * np.linalg.norm(direction)
    dots = g @ direction
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def direction_scores(gradients: Any, reference: Any) -> np.ndarray:
    """Li et al. 2022's direction scoring: the cosine of each ``g_i`` with the returned
    gradient of one customer the attacker knows is a defaulter.

    Args:
        gradients: ``(n, k)`` returned gradients.
        reference: ``(k,)``, the known defaulter's returned gradient.

    Returns:
        ``(n,)`` cosines in [-1, 1] (0 where a gradient is zero), higher = more likely a
        defaulter.
    """
    g = _check_gradients(gradients)
    ref = v.check_float_array("reference", reference, ndim=1)
    if ref.shape != (g.shape[1],):
        raise ValueError(f"reference must have the {g.shape[1]} entries of a row of gradients, "
                         f"got {ref.size}.")
    return _cosines(g, ref)


def unsupervised_direction_scores(gradients: Any) -> np.ndarray:
    """Direction scoring without a known label, for the gradients of **one batch**.

    The batch's gradients lie near one line (with the default top model, exactly on it: they
    are all multiples of the bank's weights on the embedding). The scores are the cosines with
    that line's direction (the top right singular vector of the batch), oriented so that the
    *minority* of the batch scores positive: the attacker knows that defaulters are the
    minority (a class prior below 1/2).

    Args:
        gradients: ``(n, k)`` returned gradients of one batch.

    Returns:
        ``(n,)`` cosines in [-1, 1], higher = more likely a defaulter.
    """
    g = _check_gradients(gradients)
    return _unsupervised(g)


def _unsupervised(g: np.ndarray) -> np.ndarray:
    direction = np.linalg.svd(g, full_matrices=False)[2][0]
    cos = _cosines(g, direction)
    return -cos if (cos > 0).sum() > (cos < 0).sum() else cos


#: The attacks :func:`attack_aucs` measures.
ATTACKS: tuple[str, ...] = ("norm", "direction", "direction_unsupervised")


def attack_aucs(run: SplitRun, labels: Any, *, known_positive: int | None = None
                ) -> dict[str, np.ndarray]:
    """Each attack's AUC at recovering the training labels, epoch by epoch.

    For every batch of an epoch, the AUC of the attack's scores against the true labels of the
    batch's customers (batches holding one class only are skipped); the epoch's value is the
    mean over its batches. 0.5 is chance; 1 recovers every label. The direction attack uses
    the gradient that customer ``known_positive`` received in the same epoch as its
    reference; under the defence that reference is noised too, and an epoch whose reference
    came out with the wrong sign ranks the wrong way round (AUC below 0.5): read the leak as
    ``|AUC - 0.5|``.

    Args:
        run: A :class:`SplitRun`.
        labels: The training customers' true labels (``SplitData.labels_train``): the
            evaluator's, to score the attack.
        known_positive: Row of the one defaulter the attacker knows (default: the first
            defaulter).

    Returns:
        ``{"norm", "direction", "direction_unsupervised"}`` -> ``(E,)`` AUCs.
    """
    if not isinstance(run, SplitRun):
        raise TypeError(f"run must be a split_learning.SplitRun (from train_split()), got "
                        f"{type(run).__name__}.")
    n = run.returned_gradients.shape[1]
    y = _check_binary_labels("labels", labels, n)
    if known_positive is None:
        known_positive = int(np.flatnonzero(y)[0])
    known_positive = v.check_index("known_positive", known_positive, size=n)
    if y[known_positive] != 1:
        raise ValueError(f"known_positive must be a defaulter (label 1), got row "
                         f"{known_positive} with label 0.")
    result = {name: np.zeros(run.epochs) for name in ATTACKS}
    for epoch in range(run.epochs):
        g = run.returned_gradients[epoch]
        reference = g[known_positive]
        scores = {name: np.zeros(n) for name in ATTACKS}
        batches = run.batch_index[epoch]
        values: dict[str, list[float]] = {name: [] for name in ATTACKS}
        for b in range(int(batches.max()) + 1):
            rows = np.flatnonzero(batches == b)
            scores["norm"][rows] = np.linalg.norm(g[rows], axis=1)
            scores["direction"][rows] = _cosines(g[rows], reference)
            scores["direction_unsupervised"][rows] = _unsupervised(g[rows])
            if 0 < y[rows].sum() < len(rows):
                for name in ATTACKS:
                    values[name].append(cross_silo.roc_auc(y[rows], scores[name][rows]))
        for name in ATTACKS:
            if not values[name]:
                raise ValueError("labels must put both classes in at least one batch, got "
                                 "none.")
            result[name][epoch] = float(np.mean(values[name]))
    return result
