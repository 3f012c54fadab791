"""Vertical logistic regression under Paillier encryption: the protocol of Hardy et al. 2017.

Hardy, Henecka, Ivey-Law, Nock, Patrini, Smith & Thorne 2017, "Private federated learning on
vertically partitioned data via entity resolution and additively homomorphic encryption"
(arXiv 1711.10677), Sections 3-4, on two data holders and a coordinator:

* **A, the bank**, holds features ``X_A`` of the aligned customers and their labels
  ``y`` in {-1, +1} (``y = 2 label - 1`` for the data's 0/1 labels) and the intercept;
* **B, the bureau**, holds features ``X_B`` of the same customers, in the same order (entity
  alignment by private set intersection comes first);
* **C, the coordinator**, holds the Paillier private key (:mod:`fl_helpers.paillier`) and no data.

The logistic loss ``log(1 + e^{-y z})`` of the score ``z = u_A + u_B`` (``u_A = X_A w_A + b``,
``u_B = X_B w_B``) is replaced by its second-order Taylor expansion at 0 (Hardy et al., Section
3.2): ``log 2 - y z / 2 + z^2 / 8``, whose derivative ``d = z / 4 - y / 2`` is *linear*
in the parties' scores, so that it can be computed under additively homomorphic encryption. One
mini-batch (:func:`encrypted_step`; Hardy et al., Section 4, with the roles named as here):

1. B encrypts ``[[u_B / 4]]`` and sends it to A.
2. A forms ``[[d]] = [[u_B / 4]] + (u_A / 4 - y / 2)`` (a plaintext added to a ciphertext) and
   sends ``[[d]]`` to B.
3. Each party computes its encrypted gradient ``[[X^T d]]`` (:func:`paillier.dot_columns`),
   adds a secret mask ``r`` drawn uniformly from ``Z_n`` (:mod:`secrets`), re-randomises the
   ciphertext and sends it to C.
4. C decrypts ``X^T d + r mod n`` and returns it; each party subtracts its mask, decodes, divides
   by the batch size, adds its own ridge term ``l2 w`` (not on the intercept) and updates.

Optionally (``compute_loss=True``) B also sends ``[[u_B^2 / 8]]`` and A sends C the encrypted
batch loss ``[[sum_i l_i]]``, which C decrypts: as in Hardy et al., the coordinator learns the
loss (a stopping criterion).

Who sees what (honest-but-curious parties, no collusion; each message is in the
:class:`MessageLog`): A sees ciphertexts from B and its own masked gradient; B sees ``[[d]]``
and its own masked gradient; C sees only ``X^T d + r mod n`` for masks ``r`` uniform in ``Z_n``,
which is uniform in ``Z_n`` whatever the gradient (a one-time pad), and the loss if asked. What
the protocol does *not* hide: each party learns its own gradient ``X^T d / b`` every batch, and
``d`` depends on the labels, so B learns a label-dependent quantity every batch: a batch of one
row gives B ``d_i x_i``, hence ``d_i = (u_A + u_B) / 4 - y_i / 2``, and at the first step, with
every weight 0, that is ``-y_i / 2``, the label itself. Batches of many rows only sum it.
The final model is split: A holds ``w_A`` and ``b``, B holds ``w_B``; scoring a customer needs
both.

The notebook must run fast, so :func:`train_vertical` runs the encrypted protocol for the first
``encrypted_batches`` mini-batches (checking each encrypted gradient against the plaintext
Taylor gradient, :func:`taylor_gradients`, within the fixed-point bound of
:func:`fixed_point_gradient_bound`) and the same arithmetic in floats afterwards.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import time
from typing import Any

import numpy as np

from fl_helpers import _validation as v
from fl_helpers import paillier

#: The parties' names in messages: A (the bank, label holder), B (the bureau), C (coordinator).
BANK, BUREAU, COORDINATOR = "A", "B", "C"
#: The losses :func:`train_vertical` can train.
LOSSES: tuple[str, ...] = ("taylor", "logistic")
#: Most epochs one run may train.
MAX_EPOCHS = 10_000
#: Most fractional bits the protocol's fixed-point encoding may use (products carry twice).
MAX_PROTOCOL_PRECISION_BITS = 128
#: Bytes of a plaintext float (the decrypted loss C keeps).
FLOAT_BYTES = 8


# ------------------------------------------------------------------------------- checks

def _check_data(features_a: Any, features_b: Any,
                labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two parties' aligned feature matrices and the labels as signs in {-1, +1}."""
    x_a = v.check_float_array("features_a", features_a, ndim=2)
    x_b = v.check_float_array("features_b", features_b, ndim=2)
    if x_b.shape[0] != x_a.shape[0]:
        raise ValueError(f"features_b must have one row per row of features_a ({x_a.shape[0]}, "
                         f"the aligned customers), got {x_b.shape[0]}.")
    signs = _check_labels(labels, len(x_a))
    return x_a, x_b, signs


def _check_labels(labels: Any, rows: int) -> np.ndarray:
    if labels is None or isinstance(labels, (str, bytes)):
        raise TypeError(f"labels must be an array of 0/1 labels, got {type(labels).__name__}.")
    try:
        array = np.asarray(labels)
    except (TypeError, ValueError) as error:
        raise TypeError("labels must be an array of 0/1 labels, got a ragged sequence.") \
            from error
    if array.dtype == np.bool_ or array.dtype.kind not in "iuf":
        raise TypeError(f"labels must hold the integers 0 and 1, got dtype {array.dtype}.")
    if array.shape != (rows,):
        raise ValueError(f"labels must have shape ({rows},) (one per aligned row), got "
                         f"{array.shape}.")
    if not np.isin(array, (0, 1)).all():
        raise ValueError("labels must hold only 0 and 1 (1 = default); the protocol uses "
                         "y = 2 label - 1.")
    return 2.0 * array.astype(np.float64) - 1.0


def _check_weights(name: str, weights: Any, size: int) -> np.ndarray:
    array = v.check_float_array(name, weights, ndim=1, min_size=0)
    if array.shape != (size,):
        raise ValueError(f"{name} must have {size} entries, got {array.shape[0]}.")
    return array


def _check_loss(loss: Any) -> str:
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {v._fmt(loss)}.")
    return loss


def _check_protocol_precision(value: Any) -> int:
    return v.check_int("precision_bits", value, minimum=1, maximum=MAX_PROTOCOL_PRECISION_BITS)


# ------------------------------------------------------------------------------- plaintext

def _with_intercept(features_a: np.ndarray) -> np.ndarray:
    return np.column_stack([features_a, np.ones(len(features_a))])


def _residuals(x_a: np.ndarray, x_b: np.ndarray, signs: np.ndarray, weights_a: np.ndarray,
               weights_b: np.ndarray, loss: str) -> tuple[np.ndarray, np.ndarray]:
    """The scores ``z`` and ``d = dl/dz`` per row."""
    u_a = x_a @ weights_a[:-1] + weights_a[-1]
    u_b = x_b @ weights_b
    z = u_a + u_b
    if loss == "taylor":
        return z, (u_a + u_b) / 4.0 - signs / 2.0
    return z, -signs / (1.0 + np.exp(signs * z))


def _split_gradients(x_a: np.ndarray, x_b: np.ndarray, d: np.ndarray, weights_a: np.ndarray,
                     weights_b: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray]:
    rows = len(d)
    gradient_a = np.append(x_a.T @ d, d.sum()) / rows
    gradient_b = x_b.T @ d / rows
    gradient_a[:-1] += l2 * weights_a[:-1]
    gradient_b += l2 * weights_b
    return gradient_a, gradient_b


def _gradients(features_a: Any, features_b: Any, labels: Any, weights_a: Any, weights_b: Any,
               l2: Any, loss: str) -> tuple[np.ndarray, np.ndarray]:
    x_a, x_b, signs = _check_data(features_a, features_b, labels)
    w_a = _check_weights("weights_a", weights_a, x_a.shape[1] + 1)
    w_b = _check_weights("weights_b", weights_b, x_b.shape[1])
    l2 = v.check_non_negative("l2", l2)
    _, d = _residuals(x_a, x_b, signs, w_a, w_b, loss)
    return _split_gradients(x_a, x_b, d, w_a, w_b, l2)


def taylor_gradients(features_a: Any, features_b: Any, labels: Any, weights_a: Any,
                     weights_b: Any, *, l2: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The gradients of the mean Taylor loss (Hardy et al. 2017, Section 3.2) in floats: the
    arithmetic the encrypted protocol performs.

    ``d = (u_A + u_B) / 4 - y / 2``; ``g_A = [X_A, 1]^T d / b + l2 [w_A, 0]``,
    ``g_B = X_B^T d / b + l2 w_B``, for the mean over the ``b`` rows of
    ``log 2 - y z / 2 + z^2 / 8`` plus ``l2 / 2 (|w_A|^2 + |w_B|^2)``.

    Args:
        features_a: The bank's float ``(b, d_A)`` features.
        features_b: The bureau's float ``(b, d_B)`` features, the same customers in the same
            order.
        labels: ``(b,)`` of 0/1 (1 = default), the bank's.
        weights_a: The bank's ``(d_A + 1,)`` weights, the intercept last.
        weights_b: The bureau's ``(d_B,)`` weights.
        l2: Ridge penalty (not on the intercept), >= 0.

    Returns:
        ``(gradient_a, gradient_b)``, shaped like the weights.
    """
    return _gradients(features_a, features_b, labels, weights_a, weights_b, l2, "taylor")


def logistic_gradients(features_a: Any, features_b: Any, labels: Any, weights_a: Any,
                       weights_b: Any, *, l2: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The gradients of the mean logistic loss ``log(1 + e^{-y z})``, ``d = -y / (1 + e^{y z})``
    (the loss the Taylor expansion approximates; it cannot be computed under additively
    homomorphic encryption). Arguments and result as for :func:`taylor_gradients`."""
    return _gradients(features_a, features_b, labels, weights_a, weights_b, l2, "logistic")


def batch_loss(features_a: Any, features_b: Any, labels: Any, weights_a: Any, weights_b: Any,
               *, l2: float = 0.0, loss: str = "taylor") -> float:
    """The mean loss over the rows plus ``l2 / 2 (|w_A|^2 + |w_B|^2)`` (intercept excluded).

    Args:
        features_a, features_b, labels, weights_a, weights_b, l2: As for
            :func:`taylor_gradients`.
        loss: ``"taylor"`` (``log 2 - y z / 2 + z^2 / 8``) or ``"logistic"``
            (``log(1 + e^{-y z})``).
    """
    x_a, x_b, signs = _check_data(features_a, features_b, labels)
    w_a = _check_weights("weights_a", weights_a, x_a.shape[1] + 1)
    w_b = _check_weights("weights_b", weights_b, x_b.shape[1])
    l2 = v.check_non_negative("l2", l2)
    loss = _check_loss(loss)
    z = x_a @ w_a[:-1] + w_a[-1] + x_b @ w_b
    margins = signs * z
    if loss == "taylor":
        per_row = math.log(2.0) - margins / 2.0 + margins * margins / 8.0
    else:
        per_row = np.logaddexp(0.0, -margins)
    return float(per_row.mean() + 0.5 * l2 * (w_a[:-1] @ w_a[:-1] + w_b @ w_b))


def fixed_point_gradient_bound(*, max_abs_feature: float, max_abs_residual: float,
                               precision_bits: int) -> float:
    """How far an encrypted mean gradient may lie from the float Taylor gradient.

    With ``k`` fractional bits, ``u_B / 4`` and ``u_A / 4 - y / 2`` are each rounded to within
    ``2^-(k+1)``, so ``|d~ - d| <= 2^-k``; each feature is rounded to within ``2^-(k+1)``; the
    sum of products is exact in ``Z_n`` and decoded exactly. So every entry of the mean
    gradient is within ``2^-k (max|x| + 2^-(k+1)) + 2^-(k+1) max|d|`` of the float one
    (plus float rounding of the reference, far below this).

    Args:
        max_abs_feature: The largest ``|x|`` of the batch (the intercept's column is 1), >= 0.
        max_abs_residual: The largest ``|d|`` of the batch, >= 0.
        precision_bits: ``k``, 1..128.

    Returns:
        The bound, in gradient units.
    """
    x = v.check_non_negative("max_abs_feature", max_abs_feature)
    d = v.check_non_negative("max_abs_residual", max_abs_residual)
    k = _check_protocol_precision(precision_bits)
    return 2.0**-k * (x + 2.0**-(k + 1)) + 2.0**-(k + 1) * d


# ------------------------------------------------------------------------------- messages

@dataclasses.dataclass(frozen=True)
class Message:
    """One message of the protocol, as the network sees it.

    Attributes:
        batch: The mini-batch it belongs to (-1 for the set-up).
        sender: ``"A"``, ``"B"`` or ``"C"``.
        receiver: ``"A"``, ``"B"`` or ``"C"``.
        content: What it is, e.g. ``"[[u_B/4]]"`` or ``"X_A^T d + r_A mod n"``.
        protection: ``"encrypted"`` (Paillier ciphertexts the receiver cannot read),
            ``"masked"`` (a plaintext plus a mask uniform in ``Z_n`` the receiver does not
            know), ``"public"`` (the public key) or ``"plaintext"`` (read by its receiver).
        elements: How many numbers it carries.
        num_bytes: Its size on the wire: ``2 key_bits / 8`` bytes per ciphertext,
            ``key_bits / 8`` per element of ``Z_n``, 8 per float.
    """

    batch: int
    sender: str
    receiver: str
    content: str
    protection: str
    elements: int
    num_bytes: int


class MessageLog:
    """Every message of a run, in order (and, if asked, what it carried, for tests)."""

    def __init__(self, *, keep_payloads: bool = False) -> None:
        """Args:
            keep_payloads: Keep each message's content too (``payloads[i]`` for
                ``messages[i]``); off by default, as payloads are large.
        """
        self.keep_payloads = v.check_flag("keep_payloads", keep_payloads)
        self.messages: list[Message] = []
        self.payloads: list[Any] = []

    def send(self, message: Message, payload: Any) -> Any:
        """Records ``message`` and delivers ``payload`` (returns it to the receiver)."""
        if not isinstance(message, Message):
            raise TypeError(f"message must be a Message, got {type(message).__name__}.")
        self.messages.append(message)
        if self.keep_payloads:
            self.payloads.append(payload)
        return payload

    def total_bytes(self, *, sender: str | None = None, receiver: str | None = None) -> int:
        """Bytes of all messages, or of those from ``sender`` and/or to ``receiver``."""
        for name, value in (("sender", sender), ("receiver", receiver)):
            if value is not None and value not in (BANK, BUREAU, COORDINATOR):
                raise ValueError(f"{name} must be 'A', 'B', 'C' or None, got {v._fmt(value)}.")
        return sum(m.num_bytes for m in self.messages
                   if (sender is None or m.sender == sender)
                   and (receiver is None or m.receiver == receiver))

    def table(self) -> list[dict[str, Any]]:
        """The messages as rows (dicts) for a table."""
        return [dataclasses.asdict(m) for m in self.messages]


def setup_messages(*, key_bits: int) -> list[Message]:
    """The set-up: C sends its public key ``n`` to A and to B."""
    key_bits = v.check_int("key_bits", key_bits, minimum=paillier.MIN_KEY_BITS,
                           maximum=paillier.MAX_KEY_BITS)
    size = (key_bits + 7) // 8
    return [Message(-1, COORDINATOR, party, "public key n", "public", 1, size)
            for party in (BANK, BUREAU)]


def batch_messages(*, batch_rows: int, num_features_a: int, num_features_b: int,
                   key_bits: int, compute_loss: bool = False, batch: int = 0) -> list[Message]:
    """The messages one mini-batch of :func:`encrypted_step` sends, computed from the sizes.

    Args:
        batch_rows: Rows in the mini-batch, >= 1.
        num_features_a: The bank's feature columns (the intercept is added: ``d_A + 1``
            gradient entries).
        num_features_b: The bureau's feature columns.
        key_bits: Bits of the Paillier modulus.
        compute_loss: Whether the encrypted loss is computed too.
        batch: The batch index to write into the messages, >= 0.

    Returns:
        The :class:`Message` list, in the order :func:`encrypted_step` sends them.
    """
    rows = v.check_int("batch_rows", batch_rows, minimum=1, maximum=paillier.MAX_SIZE)
    d_a = v.check_int("num_features_a", num_features_a, minimum=0,
                      maximum=paillier.MAX_SIZE) + 1
    d_b = v.check_int("num_features_b", num_features_b, minimum=0, maximum=paillier.MAX_SIZE)
    key_bits = v.check_int("key_bits", key_bits, minimum=paillier.MIN_KEY_BITS,
                           maximum=paillier.MAX_KEY_BITS)
    compute_loss = v.check_flag("compute_loss", compute_loss)
    batch = v.check_int("batch", batch, minimum=0)
    cipher, residue = (2 * key_bits + 7) // 8, (key_bits + 7) // 8
    messages = [Message(batch, BUREAU, BANK, "[[u_B/4]]", "encrypted", rows, rows * cipher)]
    if compute_loss:
        messages.append(Message(batch, BUREAU, BANK, "[[u_B^2/8]]", "encrypted", rows,
                                rows * cipher))
    messages += [
        Message(batch, BANK, BUREAU, "[[d]]", "encrypted", rows, rows * cipher),
        Message(batch, BANK, COORDINATOR, "[[X_A^T d + r_A]]", "encrypted", d_a, d_a * cipher),
        Message(batch, BUREAU, COORDINATOR, "[[X_B^T d + r_B]]", "encrypted", d_b,
                d_b * cipher),
    ]
    if compute_loss:
        messages.append(Message(batch, BANK, COORDINATOR, "[[sum loss]]", "encrypted", 1,
                                cipher))
    messages += [
        Message(batch, COORDINATOR, BANK, "X_A^T d + r_A mod n", "masked", d_a, d_a * residue),
        Message(batch, COORDINATOR, BUREAU, "X_B^T d + r_B mod n", "masked", d_b,
                d_b * residue),
    ]
    return messages


def epoch_bytes(*, num_rows: int, batch_size: int, num_features_a: int, num_features_b: int,
                key_bits: int, compute_loss: bool = False) -> int:
    """Bytes one epoch of the encrypted protocol sends (all parties, set-up excluded).

    Args:
        num_rows: Aligned training rows, >= 1.
        batch_size: Rows per mini-batch (the last one may be smaller), >= 1.
        num_features_a, num_features_b, key_bits, compute_loss: As for
            :func:`batch_messages`.
    """
    num_rows = v.check_int("num_rows", num_rows, minimum=1)
    batch_size = v.check_int("batch_size", batch_size, minimum=1)
    sizes = [batch_size] * (num_rows // batch_size)
    if num_rows % batch_size:
        sizes.append(num_rows % batch_size)
    per_size: dict[int, int] = {}
    for size in set(sizes):
        per_size[size] = sum(m.num_bytes for m in batch_messages(
            batch_rows=min(size, paillier.MAX_SIZE), num_features_a=num_features_a,
            num_features_b=num_features_b, key_bits=key_bits, compute_loss=compute_loss))
    return sum(per_size[size] for size in sizes)


# ------------------------------------------------------------------------------- parties

def _check_rows(rows: Any, num_rows: int) -> np.ndarray:
    array = v.check_ids("rows", rows, num=num_rows, unique=True)
    if array.size == 0:
        raise ValueError("rows must hold at least one row index, got none.")
    if array.size > paillier.MAX_SIZE:
        raise ValueError(f"rows must hold at most {paillier.MAX_SIZE} indices, got "
                         f"{array.size}.")
    return array


class Coordinator:
    """C: generates the Paillier key pair, decrypts masked gradients (and the loss if asked).

    :attr:`view` records everything C decrypted, for the notebook's "who sees what".
    """

    def __init__(self, *, key_bits: int = paillier.DEFAULT_KEY_BITS,
                 backend: str | None = None) -> None:
        """Args:
            key_bits: Bits of the Paillier modulus (1024 for the class; 2048/3072 deployed).
            backend: ``"gmpy2"``, ``"python"`` or None (gmpy2 if importable).
        """
        self.public_key, self._private_key = paillier.generate_keypair(key_bits=key_bits,
                                                                       backend=backend)
        #: ``(sender, what C decrypted)``: masked residues, or the batch's total loss.
        self.view: list[tuple[str, Any]] = []

    def decrypt_masked(self, encrypted: paillier.EncryptedVector,
                       *, sender: str) -> tuple[int, ...]:
        """Decrypts a masked gradient to residues in ``Z_n`` (not decoded: they are masked)."""
        if sender not in (BANK, BUREAU):
            raise ValueError(f"sender must be 'A' or 'B', got {v._fmt(sender)}.")
        residues = paillier.decrypt_raw(self._private_key, encrypted)
        self.view.append((sender, residues))
        return residues

    def decrypt_loss(self, encrypted: paillier.EncryptedVector) -> float:
        """Decrypts and decodes the encrypted total loss of a batch (one entry)."""
        if not isinstance(encrypted, paillier.EncryptedVector) or len(encrypted) != 1:
            raise ValueError("encrypted must be an EncryptedVector of one entry (the total "
                             "loss).")
        total = float(paillier.decrypt_vector(self._private_key, encrypted)[0])
        self.view.append((BANK, total))
        return total


class _Party:
    """A data holder: its own features (never sent), weights, and one mask per batch."""

    name = ""

    def __init__(self, features: np.ndarray, public_key: paillier.PublicKey,
                 precision_bits: int) -> None:
        if not isinstance(public_key, paillier.PublicKey):
            raise TypeError(f"public_key must be a paillier.PublicKey, got "
                            f"{type(public_key).__name__}.")
        self.public_key = public_key
        self.precision_bits = _check_protocol_precision(precision_bits)
        self._features = features
        self.weights = np.zeros(features.shape[1])
        self._masks: tuple[int, ...] | None = None
        self._batch_rows = 0

    @property
    def num_rows(self) -> int:
        """How many aligned rows the party holds."""
        return int(self._features.shape[0])

    def masked_gradient(self, residual: paillier.EncryptedVector,
                        rows: Any) -> paillier.EncryptedVector:
        """``[[X^T d + r]]``: the encrypted gradient sum of the batch plus a fresh secret mask
        ``r`` uniform in ``Z_n`` per entry, re-randomised (a fresh encryption for C)."""
        rows = _check_rows(rows, self.num_rows)
        if not isinstance(residual, paillier.EncryptedVector) or len(residual) != len(rows):
            raise ValueError(f"residual must be an EncryptedVector with one entry per index "
                             f"in rows ({len(rows)}): [[d]] of the batch.")
        gradient = paillier.dot_columns(residual, self._features[rows],
                                        precision_bits=self.precision_bits)
        masks = tuple(secrets.randbelow(self.public_key.n) for _ in range(len(gradient)))
        return self._mask(gradient, masks, len(rows))

    def _mask(self, gradient: paillier.EncryptedVector, masks: tuple[int, ...],
              batch_rows: int) -> paillier.EncryptedVector:
        key = gradient.public_key
        masked = tuple(paillier.rerandomize(key, paillier.add_plain(key, c, r))
                       for c, r in zip(gradient.ciphertexts, masks, strict=True))
        self._masks, self._batch_rows = masks, batch_rows
        return paillier.EncryptedVector(key, masked, gradient.precision_bits)

    def unmask_gradient(self, residues: Any) -> np.ndarray:
        """Removes the mask from what C returned and decodes the mean gradient (no ridge term).

        Raises:
            ValueError: no masked gradient is outstanding (each mask serves one batch).
        """
        if self._masks is None:
            raise ValueError("residues arrived but this party has no outstanding masked "
                             "gradient (each mask is used once).")
        masks, self._masks = self._masks, None
        if not isinstance(residues, tuple) or len(residues) != len(masks):
            raise ValueError(f"residues must be a tuple of {len(masks)} residues, got "
                             f"{type(residues).__name__}.")
        n = self.public_key.n
        unmasked = [(int(r) - m) % n for r, m in zip(residues, masks, strict=True)]
        sums = paillier.decode_vector(self.public_key, unmasked,
                                      precision_bits=2 * self.precision_bits)
        return sums / self._batch_rows


class Bank(_Party):
    """A: the label holder. Its features get an intercept column (last); it never receives a
    plaintext of B's features or scores."""

    name = BANK

    def __init__(self, features: Any, labels: Any, public_key: paillier.PublicKey,
                 *, precision_bits: int = paillier.DEFAULT_PRECISION_BITS) -> None:
        """Args:
            features: Float ``(m, d_A)``: its features of the aligned customers.
            labels: ``(m,)`` of 0/1.
            public_key: C's public key.
            precision_bits: Fractional bits of the fixed-point encoding, 1..128.
        """
        x = v.check_float_array("features", features, ndim=2)
        self._signs = _check_labels(labels, len(x))
        super().__init__(_with_intercept(x), public_key, precision_bits)

    def scores(self, rows: Any) -> np.ndarray:
        """``u_A = X_A w_A + b`` for the batch (A's own, never sent)."""
        rows = _check_rows(rows, self.num_rows)
        return self._features[rows] @ self.weights

    def encrypted_residual(self, quarter_scores_b: paillier.EncryptedVector,
                           rows: Any) -> paillier.EncryptedVector:
        """``[[d]] = [[u_B / 4]] + (u_A / 4 - y / 2)``, a plaintext added to each ciphertext."""
        rows = _check_rows(rows, self.num_rows)
        if not isinstance(quarter_scores_b, paillier.EncryptedVector) \
                or len(quarter_scores_b) != len(rows):
            raise ValueError(f"quarter_scores_b must be an EncryptedVector with one entry per "
                             f"index in rows ({len(rows)}).")
        own = self.scores(rows) / 4.0 - self._signs[rows] / 2.0
        return paillier.add_plain_vector(quarter_scores_b, own)

    def encrypted_loss(self, quarter_scores_b: paillier.EncryptedVector,
                       eighth_squares_b: paillier.EncryptedVector,
                       rows: Any) -> paillier.EncryptedVector:
        """``[[sum_i l_i]]`` with ``l = log 2 - y z / 2 + z^2 / 8`` expanded as
        ``(u_A - 2 y) [[u_B / 4]] + [[u_B^2 / 8]] + (log 2 - y u_A / 2 + u_A^2 / 8)``."""
        rows = _check_rows(rows, self.num_rows)
        u_a, signs = self.scores(rows), self._signs[rows]
        k = self.precision_bits
        cross = paillier.dot_columns(quarter_scores_b, (u_a - 2.0 * signs)[:, None],
                                     precision_bits=k)
        squares = paillier.dot_columns(eighth_squares_b, np.ones((len(rows), 1)),
                                       precision_bits=k)
        plain = float(np.sum(math.log(2.0) - signs * u_a / 2.0 + u_a * u_a / 8.0))
        total = paillier.add_vectors(cross, squares)
        return paillier.add_plain_vector(total, [plain])


class Bureau(_Party):
    """B: holds features only; sends its scores encrypted."""

    name = BUREAU

    def __init__(self, features: Any, public_key: paillier.PublicKey,
                 *, precision_bits: int = paillier.DEFAULT_PRECISION_BITS) -> None:
        """Args:
            features: Float ``(m, d_B)``: its features of the aligned customers, in A's order.
            public_key: C's public key.
            precision_bits: Fractional bits of the fixed-point encoding, 1..128.
        """
        x = v.check_float_array("features", features, ndim=2)
        super().__init__(x, public_key, precision_bits)

    def scores(self, rows: Any) -> np.ndarray:
        """``u_B = X_B w_B`` for the batch (B's own, never sent in the clear)."""
        rows = _check_rows(rows, self.num_rows)
        return self._features[rows] @ self.weights

    def encrypted_quarter_scores(self, rows: Any) -> paillier.EncryptedVector:
        """``[[u_B / 4]]``, freshly encrypted."""
        return paillier.encrypt_vector(self.public_key, self.scores(rows) / 4.0,
                                       precision_bits=self.precision_bits)

    def encrypted_eighth_squares(self, rows: Any) -> paillier.EncryptedVector:
        """``[[u_B^2 / 8]]``, freshly encrypted (for the encrypted loss only)."""
        u_b = self.scores(rows)
        return paillier.encrypt_vector(self.public_key, u_b * u_b / 8.0,
                                       precision_bits=self.precision_bits)


# ------------------------------------------------------------------------------- one step

@dataclasses.dataclass(frozen=True)
class StepResult:
    """What one encrypted mini-batch gives the parties.

    Attributes:
        gradient_a: A's mean gradient ``[X_A, 1]^T d / b`` (no ridge term), intercept last.
        gradient_b: B's mean gradient ``X_B^T d / b`` (no ridge term).
        loss: The batch's mean Taylor loss (no ridge term) as C decrypted it, or None.
    """

    gradient_a: np.ndarray
    gradient_b: np.ndarray
    loss: float | None


def encrypted_step(bank: Bank, bureau: Bureau, coordinator: Coordinator, rows: Any,
                   *, log: MessageLog | None = None, batch: int = 0,
                   compute_loss: bool = False) -> StepResult:
    """One mini-batch of Hardy et al.'s protocol (Section 4), every message logged.

    The parties' current ``weights`` are used; nothing is updated here (the caller adds each
    party's ridge term and steps).

    Args:
        bank: A (:class:`Bank`).
        bureau: B (:class:`Bureau`), with the same rows in the same order.
        coordinator: C (:class:`Coordinator`), whose public key A and B hold.
        rows: Indices of the batch's aligned rows (unique).
        log: Where to record the messages (a new, discarded log if None).
        batch: The batch's index for the log, >= 0.
        compute_loss: Also compute the encrypted Taylor loss (C learns it).

    Returns:
        A :class:`StepResult`.
    """
    if not isinstance(bank, Bank):
        raise TypeError(f"bank must be a Bank, got {type(bank).__name__}.")
    if not isinstance(bureau, Bureau):
        raise TypeError(f"bureau must be a Bureau, got {type(bureau).__name__}.")
    if not isinstance(coordinator, Coordinator):
        raise TypeError(f"coordinator must be a Coordinator, got {type(coordinator).__name__}.")
    if bank.public_key.n != coordinator.public_key.n \
            or bureau.public_key.n != coordinator.public_key.n:
        raise ValueError("bank and bureau must hold the coordinator's public key, got another "
                         "key.")
    if bureau.num_rows != bank.num_rows:
        raise ValueError(f"bureau must hold the bank's {bank.num_rows} aligned rows, got "
                         f"{bureau.num_rows}.")
    rows = _check_rows(rows, bank.num_rows)
    batch = v.check_int("batch", batch, minimum=0)
    compute_loss = v.check_flag("compute_loss", compute_loss)
    if log is None:
        log = MessageLog()
    elif not isinstance(log, MessageLog):
        raise TypeError(f"log must be a MessageLog or None, got {type(log).__name__}.")
    expected = iter(batch_messages(batch_rows=len(rows),
                                   num_features_a=bank._features.shape[1] - 1,
                                   num_features_b=bureau._features.shape[1],
                                   key_bits=coordinator.public_key.key_bits,
                                   compute_loss=compute_loss, batch=batch))

    def send(payload: Any) -> Any:
        return log.send(next(expected), payload)

    quarter_b = send(bureau.encrypted_quarter_scores(rows))
    eighth_squares_b = send(bureau.encrypted_eighth_squares(rows)) if compute_loss else None
    residual = send(bank.encrypted_residual(quarter_b, rows))
    masked_a = send(bank.masked_gradient(residual, rows))
    masked_b = send(bureau.masked_gradient(residual, rows))
    loss = None
    if compute_loss:
        assert eighth_squares_b is not None
        total = send(bank.encrypted_loss(quarter_b, eighth_squares_b, rows))
        loss = coordinator.decrypt_loss(total) / len(rows)
    residues_a = send(coordinator.decrypt_masked(masked_a, sender=BANK))
    residues_b = send(coordinator.decrypt_masked(masked_b, sender=BUREAU))
    return StepResult(bank.unmask_gradient(residues_a), bureau.unmask_gradient(residues_b), loss)


# ------------------------------------------------------------------------------- training

@dataclasses.dataclass(frozen=True)
class VerticalTrainingResult:
    """A trained vertical logistic regression and what its training cost.

    Attributes:
        weights_a: The bank's weights, the intercept last (A keeps them).
        weights_b: The bureau's weights (B keeps them).
        history: Per epoch: ``epoch``, ``taylor_loss`` and ``logistic_loss`` on the training
            rows (with the ridge term), computed in the clear for the reader (the evaluator's
            view, not a message of the protocol).
        log: The messages of the encrypted batches (set-up included).
        encrypted_batches: How many mini-batches ran encrypted.
        batch_losses: The mean Taylor losses C decrypted (``compute_loss=True``), one per
            encrypted batch.
        max_gradient_difference: The largest ``|encrypted - float|`` over every gradient entry
            of the encrypted batches (None if none ran encrypted).
        gradient_bound: The largest :func:`fixed_point_gradient_bound` of those batches.
        bytes_per_epoch: What one epoch of the encrypted protocol sends (:func:`epoch_bytes`).
        seconds_encrypted: Wall time of the encrypted batches (key generation included).
        seconds_plaintext: Wall time of the float batches.
    """

    weights_a: np.ndarray
    weights_b: np.ndarray
    history: list[dict[str, float]]
    log: MessageLog
    encrypted_batches: int
    batch_losses: list[float]
    max_gradient_difference: float | None
    gradient_bound: float | None
    bytes_per_epoch: int
    seconds_encrypted: float
    seconds_plaintext: float

    def weights(self) -> np.ndarray:
        """``[w_A, w_B, b]``: the model on ``np.column_stack([features_a, features_b])``, in
        the layout of :func:`fl_helpers.vertical.fit_logistic`."""
        return np.concatenate([self.weights_a[:-1], self.weights_b, self.weights_a[-1:]])

    def scores(self, features_a: Any, features_b: Any) -> np.ndarray:
        """The logits ``X_A w_A + b + X_B w_B`` (scoring needs both parties' parts)."""
        x_a = v.check_float_array("features_a", features_a, ndim=2)
        x_b = v.check_float_array("features_b", features_b, ndim=2)
        if x_a.shape[1] != len(self.weights_a) - 1 or x_b.shape[1] != len(self.weights_b) \
                or len(x_a) != len(x_b):
            raise ValueError(f"features_a and features_b must be aligned with "
                             f"{len(self.weights_a) - 1} and {len(self.weights_b)} columns, got "
                             f"shapes {x_a.shape} and {x_b.shape}.")
        return x_a @ self.weights_a[:-1] + self.weights_a[-1] + x_b @ self.weights_b


def train_vertical(features_a: Any, features_b: Any, labels: Any, *, num_epochs: int,
                   batch_size: int, learning_rate: float, rng: np.random.Generator,
                   l2: float = 0.0, loss: str = "taylor", encrypted_batches: int = 0,
                   key_bits: int = paillier.DEFAULT_KEY_BITS,
                   precision_bits: int = paillier.DEFAULT_PRECISION_BITS,
                   compute_loss: bool = False, backend: str | None = None
                   ) -> VerticalTrainingResult:
    """Mini-batch gradient descent on vertically split data, the first batches encrypted.

    Every epoch visits the rows in a fresh order drawn from ``rng`` (public randomness both
    parties share) in batches of ``batch_size`` (the last may be smaller). The first
    ``encrypted_batches`` batches run :func:`encrypted_step` (Paillier, ``key_bits``), each
    checked against :func:`taylor_gradients` at the same weights; the rest compute the same
    Taylor gradients in floats (or, with ``loss="logistic"``, the logistic gradients: the cost
    of the approximation, plaintext only). Weights start at zero; each step is
    ``w <- w - learning_rate (g + l2 w)`` (no ridge on the intercept).

    Args:
        features_a: The bank's float ``(m, d_A)`` features of the aligned training customers.
        features_b: The bureau's float ``(m, d_B)`` features, same customers, same order.
        labels: ``(m,)`` of 0/1 (1 = default), the bank's.
        num_epochs: Passes over the rows, 1..10,000.
        batch_size: Rows per mini-batch, 1..m.
        learning_rate: Step size, > 0.
        rng: Public randomness for the batch order.
        l2: Ridge penalty, >= 0.
        loss: ``"taylor"`` or ``"logistic"`` (plaintext only).
        encrypted_batches: How many of the first mini-batches run encrypted, 0..all of them.
        key_bits: Bits of the Paillier modulus (when ``encrypted_batches > 0``).
        precision_bits: Fractional bits of the fixed-point encoding, 1..128.
        compute_loss: Also compute the encrypted batch loss (C learns it).
        backend: ``"gmpy2"``, ``"python"`` or None (gmpy2 if importable).

    Returns:
        A :class:`VerticalTrainingResult`.
    """
    x_a, x_b, signs = _check_data(features_a, features_b, labels)
    num_epochs = v.check_int("num_epochs", num_epochs, minimum=1, maximum=MAX_EPOCHS)
    batch_size = v.check_int("batch_size", batch_size, minimum=1, maximum=len(x_a))
    learning_rate = v.check_positive("learning_rate", learning_rate)
    rng = v.check_rng("rng", rng)
    l2 = v.check_non_negative("l2", l2)
    loss = _check_loss(loss)
    batches_per_epoch = -(-len(x_a) // batch_size)
    total_batches = num_epochs * batches_per_epoch
    encrypted_batches = v.check_int("encrypted_batches", encrypted_batches, minimum=0,
                                    maximum=total_batches)
    key_bits = v.check_int("key_bits", key_bits, minimum=paillier.MIN_KEY_BITS,
                           maximum=paillier.MAX_KEY_BITS)
    precision_bits = _check_protocol_precision(precision_bits)
    compute_loss = v.check_flag("compute_loss", compute_loss)
    backend = paillier.check_backend(backend)
    if encrypted_batches and loss != "taylor":
        raise ValueError(f"loss must be 'taylor' when encrypted_batches > 0 (the logistic "
                         f"loss has no additively homomorphic form), got {v._fmt(loss)}.")
    if encrypted_batches * batch_size > paillier.MAX_SIZE:
        raise ValueError(f"encrypted_batches must encrypt at most {paillier.MAX_SIZE} rows in "
                         f"all, got {encrypted_batches} batches of {batch_size}.")
    labels01 = (signs > 0).astype(np.int64)
    log = MessageLog()
    weights_a, weights_b = np.zeros(x_a.shape[1] + 1), np.zeros(x_b.shape[1])
    bank: Bank | None = None
    bureau: Bureau | None = None
    coordinator: Coordinator | None = None
    seconds_encrypted = seconds_plaintext = 0.0
    if encrypted_batches:
        start = time.perf_counter()
        coordinator = Coordinator(key_bits=key_bits, backend=backend)
        bank = Bank(x_a, labels01, coordinator.public_key, precision_bits=precision_bits)
        bureau = Bureau(x_b, coordinator.public_key, precision_bits=precision_bits)
        for message in setup_messages(key_bits=key_bits):
            log.send(message, coordinator.public_key.n)
        seconds_encrypted += time.perf_counter() - start
    x_a1 = _with_intercept(x_a)
    history: list[dict[str, float]] = []
    batch_losses: list[float] = []
    max_difference: float | None = None
    bound: float | None = None
    step = 0
    for epoch in range(num_epochs):
        order = rng.permutation(len(x_a))
        for first in range(0, len(order), batch_size):
            rows = order[first:first + batch_size]
            start = time.perf_counter()
            _, d = _residuals(x_a[rows], x_b[rows], signs[rows], weights_a, weights_b, loss)
            plain_a, plain_b = _split_gradients(x_a[rows], x_b[rows], d, weights_a, weights_b,
                                                0.0)
            if step < encrypted_batches:
                assert bank is not None and bureau is not None and coordinator is not None
                bank.weights, bureau.weights = weights_a.copy(), weights_b.copy()
                result = encrypted_step(bank, bureau, coordinator, rows, log=log, batch=step,
                                        compute_loss=compute_loss)
                gradient_a, gradient_b = result.gradient_a, result.gradient_b
                difference = float(max(np.abs(gradient_a - plain_a).max(),
                                       np.abs(gradient_b - plain_b).max()
                                       if len(gradient_b) else 0.0))
                batch_bound = fixed_point_gradient_bound(
                    max_abs_feature=float(max(1.0, np.abs(x_a[rows]).max(initial=0.0),
                                              np.abs(x_b[rows]).max(initial=0.0))),
                    max_abs_residual=float(np.abs(d).max()), precision_bits=precision_bits)
                max_difference = difference if max_difference is None \
                    else max(max_difference, difference)
                bound = batch_bound if bound is None else max(bound, batch_bound)
                if result.loss is not None:
                    batch_losses.append(result.loss)
                seconds_encrypted += time.perf_counter() - start
            else:
                gradient_a, gradient_b = plain_a, plain_b
            gradient_a[:-1] += l2 * weights_a[:-1]
            gradient_b += l2 * weights_b
            weights_a = weights_a - learning_rate * gradient_a
            weights_b = weights_b - learning_rate * gradient_b
            if step >= encrypted_batches:
                seconds_plaintext += time.perf_counter() - start
            step += 1
        with np.errstate(all="ignore"):  # a diverging run is refused just below
            z = x_a1 @ weights_a + x_b @ weights_b
            ridge = 0.5 * l2 * (weights_a[:-1] @ weights_a[:-1] + weights_b @ weights_b)
            margins = signs * z
            history.append({
                "epoch": float(epoch + 1),
                "taylor_loss": float(np.mean(math.log(2.0) - margins / 2.0 + margins**2 / 8.0)
                                     + ridge),
                "logistic_loss": float(np.mean(np.logaddexp(0.0, -margins)) + ridge),
            })
        if not all(math.isfinite(value) for value in history[-1].values()):
            raise ValueError(f"learning_rate must let training converge, got {learning_rate}: "
                             f"the loss is not finite after epoch {epoch + 1}.")
    return VerticalTrainingResult(
        weights_a=weights_a, weights_b=weights_b, history=history, log=log,
        encrypted_batches=encrypted_batches, batch_losses=batch_losses,
        max_gradient_difference=max_difference, gradient_bound=bound,
        bytes_per_epoch=epoch_bytes(num_rows=len(x_a), batch_size=batch_size,
                                    num_features_a=x_a.shape[1], num_features_b=x_b.shape[1],
                                    key_bits=key_bits, compute_loss=compute_loss),
        seconds_encrypted=seconds_encrypted, seconds_plaintext=seconds_plaintext)
