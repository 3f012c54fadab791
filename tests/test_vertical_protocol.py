"""Tests of fl_helpers.vertical_protocol: Hardy et al. 2017's encrypted vertical logistic
regression (two data holders A and B, a coordinator C with the Paillier key).

What is checked: the Taylor approximation and its gradient against closed forms and finite
differences; the encrypted gradients against the float Taylor gradients within the stated
fixed-point bound (1024-bit keys, random data); the message log against the sizes computed
from the protocol; and, as attacks, what C learns from the masked gradients and what A learns
from B's messages, each on a deliberately broken variant (where the attack succeeds) and on the
real protocol (where it fails). :data:`FUZZ` is the bad-input table of every public function.
"""

from __future__ import annotations

import inspect
import math
import secrets

import numpy as np
import pytest
from scipy import stats

from fl_helpers import paillier, vertical
from fl_helpers import vertical_protocol as vp

#: One coordinator (a 1024-bit key) for the module's protocol tests.
COORDINATOR = vp.Coordinator(key_bits=1024)
KEY = COORDINATOR.public_key


def _data(rows: int = 40, d_a: int = 5, d_b: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    x_a, x_b = rng.normal(size=(rows, d_a)) * 2, rng.normal(size=(rows, d_b)) * 2
    labels = (x_a[:, 0] + x_b[:, 0] + rng.logistic(size=rows) > 0).astype(np.int64)
    w_a, w_b = rng.normal(size=d_a + 1) * 0.3, rng.normal(size=d_b) * 0.3
    return x_a, x_b, labels, w_a, w_b


def _parties(x_a, x_b, labels, w_a, w_b, *, coordinator=COORDINATOR, bank_class=None,
             bureau_class=None):
    bank = (bank_class or vp.Bank)(x_a, labels, coordinator.public_key)
    bureau = (bureau_class or vp.Bureau)(x_b, coordinator.public_key)
    bank.weights, bureau.weights = w_a.copy(), w_b.copy()
    return bank, bureau


# ------------------------------------------------------------------------------- the loss

def test_the_taylor_expansion_of_the_logistic_loss():
    """log(1 + e^-z) = log 2 - z/2 + z^2/8 - z^4/192 + ...: the error of the quadratic is at
    most z^4/192 for |z| <= 1 (an alternating series with decreasing terms), and grows
    without bound far from 0 (the price of the approximation)."""
    z = np.linspace(-1.0, 1.0, 2001)
    exact = np.logaddexp(0.0, -z)
    quadratic = math.log(2.0) - z / 2.0 + z**2 / 8.0
    assert np.all(np.abs(exact - quadratic) <= z**4 / 192 + 1e-15)
    np.testing.assert_allclose(quadratic, vertical.taylor_loss(z), rtol=0, atol=1e-15)
    # The derivatives z/4 - 1/2 and -1/(1 + e^z) agree to first order at 0 ...
    small = np.linspace(-0.1, 0.1, 21)
    assert np.all(np.abs((small / 4 - 0.5) + 1 / (1 + np.exp(small))) <= np.abs(small)**3 / 48
                  + 1e-15)
    # ... and part far from it: at z = 6 (a confidently right row) the true loss is 0.0025 and
    # its slope -0.0025, the quadratic's 2.19 and +1: such rows pull the weights back.
    assert math.log1p(math.exp(-6.0)) < 0.003 and math.log(2.0) - 3.0 + 36.0 / 8 > 2.1
    assert 6.0 / 4 - 0.5 == 1.0


@pytest.mark.parametrize("loss", ["taylor", "logistic"])
def test_gradients_are_the_derivatives_of_the_loss(loss):
    x_a, x_b, labels, w_a, w_b = _data(rows=30)
    l2 = 0.05
    gradient = vp.taylor_gradients if loss == "taylor" else vp.logistic_gradients
    g_a, g_b = gradient(x_a, x_b, labels, w_a, w_b, l2=l2)
    h = 1e-6
    for which, weights, g in (("a", w_a, g_a), ("b", w_b, g_b)):
        for j in range(len(weights)):
            step = np.zeros_like(weights)
            step[j] = h
            args = [(w_a + step, w_b), (w_a - step, w_b)] if which == "a" else \
                [(w_a, w_b + step), (w_a, w_b - step)]
            up, down = (vp.batch_loss(x_a, x_b, labels, *w, l2=l2, loss=loss) for w in args)
            assert abs((up - down) / (2 * h) - g[j]) < 1e-6, (which, j)
    margins = (2 * labels - 1) * (np.column_stack([x_a, x_b]) @ np.append(w_a[:-1], w_b)
                                  + w_a[-1])
    per_row = vertical.taylor_loss(margins) if loss == "taylor" else np.logaddexp(0, -margins)
    assert vp.batch_loss(x_a, x_b, labels, w_a, w_b, loss=loss) == pytest.approx(
        float(per_row.mean()), rel=1e-12)


def test_the_intercept_is_not_regularised():
    x_a, x_b, labels, w_a, w_b = _data()
    g0_a, g0_b = vp.taylor_gradients(x_a, x_b, labels, w_a, w_b)
    g1_a, g1_b = vp.taylor_gradients(x_a, x_b, labels, w_a, w_b, l2=0.5)
    np.testing.assert_allclose(g1_a[:-1] - g0_a[:-1], 0.5 * w_a[:-1])
    assert g1_a[-1] == g0_a[-1]
    np.testing.assert_allclose(g1_b - g0_b, 0.5 * w_b)


# ------------------------------------------------------------------------------- encrypted

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_encrypted_gradients_equal_the_taylor_gradients_to_fixed_point_precision(seed):
    """With k = 32 fractional bits each gradient entry is within 2^-k (max|x| + 2^-(k+1)) +
    2^-(k+1) max|d| (about 1e-9 here) of the float Taylor gradient."""
    x_a, x_b, labels, w_a, w_b = _data(seed=seed)
    bank, bureau = _parties(x_a, x_b, labels, w_a, w_b)
    rows = np.random.default_rng(seed).choice(len(x_a), size=17, replace=False)
    log = vp.MessageLog()
    result = vp.encrypted_step(bank, bureau, COORDINATOR, rows, log=log, batch=3,
                               compute_loss=True)
    plain_a, plain_b = vp.taylor_gradients(x_a[rows], x_b[rows], labels[rows], w_a, w_b)
    z = x_a[rows] @ w_a[:-1] + w_a[-1] + x_b[rows] @ w_b
    d = z / 4 - (2 * labels[rows] - 1) / 2
    bound = vp.fixed_point_gradient_bound(
        max_abs_feature=max(1.0, np.abs(x_a[rows]).max(), np.abs(x_b[rows]).max()),
        max_abs_residual=float(np.abs(d).max()), precision_bits=32)
    assert bound < 3e-9
    difference = max(np.abs(result.gradient_a - plain_a).max(),
                     np.abs(result.gradient_b - plain_b).max())
    assert difference <= bound + 1e-14
    assert difference > 0  # really computed in fixed point, not copied from the floats
    loss = vp.batch_loss(x_a[rows], x_b[rows], labels[rows], w_a, w_b)
    assert abs(result.loss - loss) <= 1e-8
    assert [m for m in log.messages] == vp.batch_messages(
        batch_rows=17, num_features_a=5, num_features_b=4, key_bits=1024, compute_loss=True,
        batch=3)


def test_the_message_sizes_are_the_payloads_sizes():
    x_a, x_b, labels, w_a, w_b = _data()
    bank, bureau = _parties(x_a, x_b, labels, w_a, w_b)
    log = vp.MessageLog(keep_payloads=True)
    vp.encrypted_step(bank, bureau, COORDINATOR, np.arange(10), log=log)
    for message, payload in zip(log.messages, log.payloads, strict=True):
        if isinstance(payload, paillier.EncryptedVector):
            assert message.protection == "encrypted" and payload.num_bytes == message.num_bytes
        else:
            assert message.protection == "masked"
            assert len(payload) * KEY.plaintext_bytes == message.num_bytes
        assert len(payload) == message.elements
    assert log.total_bytes() == sum(m.num_bytes for m in log.messages)
    assert log.total_bytes(sender="B", receiver="A") == 10 * 256
    assert [row["content"] for row in log.table()][:3] == ["[[u_B/4]]", "[[d]]",
                                                           "[[X_A^T d + r_A]]"]


def test_epoch_bytes_is_the_log_of_an_encrypted_epoch():
    x_a, x_b, labels, *_ = _data(rows=25)
    result = vp.train_vertical(x_a, x_b, labels, num_epochs=1, batch_size=10, learning_rate=0.1,
                               rng=np.random.default_rng(0), encrypted_batches=3)
    setup = sum(m.num_bytes for m in vp.setup_messages(key_bits=1024))
    assert result.log.total_bytes() - setup == result.bytes_per_epoch == vp.epoch_bytes(
        num_rows=25, batch_size=10, num_features_a=5, num_features_b=4, key_bits=1024)
    # 25 rows: two ciphertext vectors of the batch per batch, 2 x 25 x 256 bytes in all, plus
    # per batch (3) the 6 + 4 masked gradients, out as ciphertexts and back as residues.
    assert result.bytes_per_epoch == 2 * 25 * 256 + 3 * 10 * (256 + 128)


def test_encrypted_then_plaintext_training_matches_plaintext_training():
    x_a, x_b, labels, *_ = _data(rows=60)
    common = dict(num_epochs=3, batch_size=16, learning_rate=0.2, l2=0.01)
    mixed = vp.train_vertical(x_a, x_b, labels, rng=np.random.default_rng(5),
                              encrypted_batches=4, compute_loss=True, **common)
    plain = vp.train_vertical(x_a, x_b, labels, rng=np.random.default_rng(5), **common)
    assert mixed.encrypted_batches == 4 and len(mixed.batch_losses) == 4
    assert mixed.batch_losses[0] == pytest.approx(math.log(2.0), abs=1e-9)  # weights start at 0
    assert mixed.max_gradient_difference <= mixed.gradient_bound < 1e-8
    np.testing.assert_allclose(mixed.weights(), plain.weights(), rtol=0, atol=1e-8)
    assert plain.max_gradient_difference is None and plain.log.messages == []
    losses = [h["taylor_loss"] for h in plain.history]
    assert losses[-1] < losses[0] < math.log(2.0)
    assert len(plain.weights()) == 5 + 4 + 1
    np.testing.assert_allclose(plain.scores(x_a, x_b),
                               vertical.scores(plain.weights(), np.column_stack([x_a, x_b])))


def test_the_logistic_loss_trains_in_plaintext_only():
    x_a, x_b, labels, *_ = _data(rows=60)
    result = vp.train_vertical(x_a, x_b, labels, num_epochs=20, batch_size=60, learning_rate=1.0,
                               rng=np.random.default_rng(0), loss="logistic")
    assert result.history[-1]["logistic_loss"] < result.history[0]["logistic_loss"]
    with pytest.raises(ValueError, match="loss must be 'taylor' when encrypted_batches > 0"):
        vp.train_vertical(x_a, x_b, labels, num_epochs=1, batch_size=60, learning_rate=1.0,
                          rng=np.random.default_rng(0), loss="logistic", encrypted_batches=1)


def test_a_diverging_learning_rate_is_named():
    x_a, x_b, labels, *_ = _data(rows=60)
    with pytest.raises(ValueError, match="learning_rate must let training converge"):
        vp.train_vertical(x_a * 1e50, x_b, labels, num_epochs=50, batch_size=60,
                          learning_rate=1e10, rng=np.random.default_rng(0))


def test_python_backend_gives_the_same_gradients():
    x_a, x_b, labels, w_a, w_b = _data(rows=12, d_a=2, d_b=2)
    slow = vp.Coordinator(key_bits=1024, backend="python")
    bank, bureau = _parties(x_a, x_b, labels, w_a, w_b, coordinator=slow)
    result = vp.encrypted_step(bank, bureau, slow, np.arange(12))
    plain_a, plain_b = vp.taylor_gradients(x_a, x_b, labels, w_a, w_b)
    np.testing.assert_allclose(result.gradient_a, plain_a, rtol=0, atol=1e-8)
    np.testing.assert_allclose(result.gradient_b, plain_b, rtol=0, atol=1e-8)


# ------------------------------------------------------------------------------- attacks

class _UnmaskedBank(vp.Bank):
    """Broken variant: sends its encrypted gradient to C without a mask (r = 0)."""

    def masked_gradient(self, residual, rows):
        rows = np.asarray(rows)
        gradient = paillier.dot_columns(residual, self._features[rows],
                                        precision_bits=self.precision_bits)
        return self._mask(gradient, (0,) * len(gradient), len(rows))


def _coordinator_guess(coordinator, rows):
    """C's attack: read the last residues it decrypted from A as an unmasked gradient sum."""
    _, residues = [entry for entry in coordinator.view if entry[0] == "A"][-1]
    guesses = []
    for residue in residues:
        try:
            guesses.append(paillier.decode(coordinator.public_key, residue,
                                           precision_bits=64) / rows)
        except paillier.PlaintextOverflowError:
            guesses.append(math.nan)
    return np.array(guesses)


def test_the_coordinator_reads_unmasked_gradients_but_not_masked_ones():
    """Adversary: C (honest-but-curious, holds the private key, knows the public precision
    and batch size) decodes what it decrypts. Broken variant (no mask): it reads A's gradient
    exactly. Real protocol: its guesses are nowhere near (most residues fall in the gap)."""
    x_a, x_b, labels, w_a, w_b = _data()
    rows = np.arange(20)
    plain_a, _ = vp.taylor_gradients(x_a[rows], x_b[rows], labels[rows], w_a, w_b)
    coordinator = vp.Coordinator(key_bits=1024)
    bank, bureau = _parties(x_a, x_b, labels, w_a, w_b, coordinator=coordinator,
                            bank_class=_UnmaskedBank)
    vp.encrypted_step(bank, bureau, coordinator, rows)
    np.testing.assert_allclose(_coordinator_guess(coordinator, 20), plain_a, rtol=0, atol=1e-8)
    bank, bureau = _parties(x_a, x_b, labels, w_a, w_b, coordinator=coordinator)
    hits = 0
    for _ in range(5):
        vp.encrypted_step(bank, bureau, coordinator, rows)
        guess = _coordinator_guess(coordinator, 20)
        hits += int(np.sum(np.abs(guess - plain_a) < 1.0))  # nan compares False
    assert hits == 0


def test_what_the_coordinator_sees_does_not_depend_on_the_gradient():
    """C's view of a masked gradient is g + r mod n with r uniform in Z_n: (1) for any two
    gradients there are masks that give C the identical view; (2) over fresh masks the view is
    uniform in Z_n whether the gradient is 0 or large (Kolmogorov-Smirnov on view / n)."""
    x_a, x_b, labels, w_a, w_b = _data(rows=8, d_a=1, d_b=1)
    n = KEY.n
    bank, _ = _parties(x_a, x_b, labels, w_a, w_b)
    small = paillier.encrypt_vector(KEY, [0.0, 0.0], precision_bits=64)
    large = paillier.encrypt_vector(KEY, [123.456, -98765.4321], precision_bits=64)
    g_small = [paillier.encode(KEY, 0.0, precision_bits=64)] * 2
    g_large = [paillier.encode(KEY, x, precision_bits=64) for x in (123.456, -98765.4321)]
    masks = tuple(int(r) for r in np.random.default_rng(0).integers(0, 2**62, size=2))
    shifted = tuple((r + a - b) % n for r, a, b in zip(masks, g_small, g_large, strict=True))
    view_small = paillier.decrypt_raw(COORDINATOR._private_key, bank._mask(small, masks, 8))
    view_large = paillier.decrypt_raw(COORDINATOR._private_key, bank._mask(large, shifted, 8))
    assert view_small == view_large
    for gradient in (small, large):
        views = []
        for _ in range(150):
            fresh = tuple(secrets.randbelow(n) for _ in range(2))
            views += paillier.decrypt_raw(COORDINATOR._private_key,
                                          bank._mask(gradient, fresh, 8))
        assert stats.kstest(np.array([x / n for x in views]), "uniform").pvalue > 1e-3


class _DeterministicBureau(vp.Bureau):
    """Broken variant: "encrypts" with r = 1, i.e. sends g^m = 1 + m n (no randomness)."""

    def encrypted_quarter_scores(self, rows):
        values = self.scores(rows) / 4.0
        return paillier.EncryptedVector(self.public_key, tuple(
            1 + paillier.encode(self.public_key, x, precision_bits=self.precision_bits)
            * self.public_key.n for x in values), self.precision_bits)


def _bank_reads_bureau_scores(log):
    """A's attack on what it received from B: read (c - 1) / n as the plaintext (true exactly
    when r^n = 1), decode it, and multiply by 4 to get u_B = X_B w_B."""
    payload = next(p for m, p in zip(log.messages, log.payloads, strict=True)
                   if m.receiver == "A" and m.content == "[[u_B/4]]")
    n = payload.public_key.n
    guesses = []
    for c in payload.ciphertexts:
        try:
            guesses.append(4 * paillier.decode(payload.public_key, (c - 1) // n % n,
                                               precision_bits=payload.precision_bits))
        except paillier.PlaintextOverflowError:
            guesses.append(math.nan)
    return np.array(guesses)


def test_the_bank_never_receives_the_bureaus_scores_or_features_in_the_clear():
    """Adversary: A (honest-but-curious, no private key) reads every message it receives.
    Every payload to A is a ciphertext under C's key or its own masked gradient. Broken
    variant (B encrypts without randomness): A reads u_B = X_B w_B exactly. Real protocol: its
    reading is garbage. A's object holds no private key and no array of B's."""
    x_a, x_b, labels, w_a, w_b = _data()
    rows = np.arange(15)
    u_b = x_b[rows] @ w_b
    for bureau_class, readable in ((_DeterministicBureau, True), (vp.Bureau, False)):
        bank, bureau = _parties(x_a, x_b, labels, w_a, w_b, bureau_class=bureau_class)
        log = vp.MessageLog(keep_payloads=True)
        result = vp.encrypted_step(bank, bureau, COORDINATOR, rows, log=log, compute_loss=True)
        guess = _bank_reads_bureau_scores(log)
        if readable:
            np.testing.assert_allclose(guess, u_b, rtol=0, atol=1e-8)
            continue
        assert not np.any(np.abs(guess - u_b) < 1.0)
        to_a = [(m, p) for m, p in zip(log.messages, log.payloads, strict=True)
                if m.receiver == "A"]
        assert {m.content for m, _ in to_a} == {"[[u_B/4]]", "[[u_B^2/8]]",
                                                "X_A^T d + r_A mod n"}
        for message, payload in to_a:
            if message.protection == "encrypted":
                assert isinstance(payload, paillier.EncryptedVector)
                assert payload.public_key.n == KEY.n
            else:  # its own gradient, masked by its own mask (already used)
                assert message.protection == "masked" and len(payload) == 6
        plain_a, _ = vp.taylor_gradients(x_a[rows], x_b[rows], labels[rows], w_a, w_b)
        np.testing.assert_allclose(result.gradient_a, plain_a, atol=1e-8)
        held = [value for value in vars(bank).values()]
        assert not any(isinstance(value, paillier.PrivateKey) for value in held)
        assert not any(isinstance(value, np.ndarray) and value.shape == x_b.shape
                       for value in held)


def test_each_mask_serves_one_batch():
    x_a, x_b, labels, w_a, w_b = _data()
    bank, bureau = _parties(x_a, x_b, labels, w_a, w_b)
    vp.encrypted_step(bank, bureau, COORDINATOR, np.arange(5))
    with pytest.raises(ValueError, match="no outstanding masked gradient"):
        bank.unmask_gradient(COORDINATOR.view[-2][1])


# ------------------------------------------------------------------------------- bad inputs

_X_A, _X_B, _LABELS, _W_A, _W_B = _data(rows=6, d_a=2, d_b=2)
_ARRAY_BAD = [None, "abc", [[np.nan, 1.0]], np.array([[np.inf, 0.0]]),
              np.array([[True, False]]), np.array([[1 + 2j]]), [[1.0], [1.0, 2.0]]]
_LABELS_BAD = [None, "ab", np.array([0, 1, 2, 0, 1, 0]), np.array([0.5] * 6),
               np.ones(5, dtype=int), np.array([True] * 6), np.array([-1, 1, 1, -1, 1, 1])]
_WEIGHTS_A_BAD = [None, np.zeros(2), np.zeros(4), [np.nan, 0, 0], "w"]
_WEIGHTS_B_BAD = [None, np.zeros(3), [np.inf, 0.0], "w"]
_L2_BAD = [-1.0, np.nan, np.inf, None, "0", True]
_INT_BAD = [1.5, None, True, "3", -1]
_KEY_BITS_BAD = [512, 8192, 1024.0, None, True]
_GRADIENT_ARGS = {"features_a": _X_A, "features_b": _X_B, "labels": _LABELS,
                  "weights_a": _W_A, "weights_b": _W_B}
_GRADIENT_BAD = {"features_a": [*_ARRAY_BAD, np.zeros(6), np.zeros((5, 2))],
                 "features_b": [*_ARRAY_BAD, np.zeros((7, 2))], "labels": _LABELS_BAD,
                 "weights_a": _WEIGHTS_A_BAD, "weights_b": _WEIGHTS_B_BAD, "l2": _L2_BAD}
_TRAIN = dict(features_a=_X_A, features_b=_X_B, labels=_LABELS, num_epochs=1, batch_size=3,
              learning_rate=0.1, rng=np.random.default_rng(0))
_BANK, _BUREAU = _parties(_X_A, _X_B, _LABELS, _W_A, _W_B)
_VECTOR = paillier.encrypt_vector(KEY, [0.5, 1.0])


def _step(**kwargs):
    defaults = dict(bank=_BANK, bureau=_BUREAU, coordinator=COORDINATOR, rows=[0, 1])
    return vp.encrypted_step(**{**defaults, **kwargs})


_step.__name__ = "encrypted_step"

#: (function, valid keyword arguments, {argument: [bad values]}): every public function and
#: the parties' constructors and methods.
FUZZ = [
    (vp.taylor_gradients, _GRADIENT_ARGS, _GRADIENT_BAD),
    (vp.logistic_gradients, _GRADIENT_ARGS, _GRADIENT_BAD),
    (vp.batch_loss, dict(_GRADIENT_ARGS, loss="logistic"),
     {**_GRADIENT_BAD, "loss": ["hinge", None, 1, ["taylor"]]}),
    (vp.fixed_point_gradient_bound,
     {"max_abs_feature": 3.0, "max_abs_residual": 1.0, "precision_bits": 32},
     {"max_abs_feature": [-1.0, np.nan, np.inf, None, "3"],
      "max_abs_residual": [-1.0, np.nan, None, True],
      "precision_bits": [0, 129, 1.5, None, True]}),
    (vp.setup_messages, {"key_bits": 1024}, {"key_bits": _KEY_BITS_BAD}),
    (vp.batch_messages, {"batch_rows": 4, "num_features_a": 2, "num_features_b": 3,
                         "key_bits": 1024},
     {"batch_rows": [0, *_INT_BAD, paillier.MAX_SIZE + 1],
      "num_features_a": _INT_BAD, "num_features_b": _INT_BAD, "key_bits": _KEY_BITS_BAD,
      "compute_loss": [1, None, "yes"], "batch": _INT_BAD}),
    (vp.epoch_bytes, {"num_rows": 10, "batch_size": 4, "num_features_a": 2,
                      "num_features_b": 3, "key_bits": 1024},
     {"num_rows": [0, *_INT_BAD], "batch_size": [0, *_INT_BAD], "num_features_a": _INT_BAD,
      "num_features_b": _INT_BAD, "key_bits": _KEY_BITS_BAD, "compute_loss": [0, None]}),
    (vp.train_vertical, _TRAIN,
     {"features_a": [*_ARRAY_BAD, np.zeros((5, 2))], "features_b": [*_ARRAY_BAD],
      "labels": _LABELS_BAD, "num_epochs": [0, vp.MAX_EPOCHS + 1, *_INT_BAD],
      "batch_size": [0, 7, *_INT_BAD], "learning_rate": [0.0, -1.0, np.nan, None, "1", True],
      "rng": [None, 0, np.random.RandomState(0)], "l2": _L2_BAD,
      "loss": ["hinge", None, 3], "encrypted_batches": [3, *_INT_BAD],
      "key_bits": _KEY_BITS_BAD, "precision_bits": [0, 129, None, 1.5],
      "compute_loss": [1, None], "backend": ["gmp", 3]}),
    (_step, {}, {"bank": [None, _BUREAU, "A"], "bureau": [None, _BANK],
                 "coordinator": [None, KEY], "rows": [[], [0, 0], [6], [-1], [0.5], None,
                                                      "ab", [True, False]],
                 "log": ["log", 3], "batch": _INT_BAD, "compute_loss": [1, None]}),
    (vp.Coordinator, {"key_bits": 1024}, {"key_bits": _KEY_BITS_BAD, "backend": ["gmp", 1]}),
    (vp.Bank, {"features": _X_A, "labels": _LABELS, "public_key": KEY},
     {"features": [*_ARRAY_BAD, np.zeros(6)], "labels": _LABELS_BAD,
      "public_key": [None, COORDINATOR, 12345],
      "precision_bits": [0, 129, None, 1.5]}),
    (vp.Bureau, {"features": _X_B, "public_key": KEY},
     {"features": [*_ARRAY_BAD], "public_key": [None, 12345],
      "precision_bits": [0, 129, None]}),
    (vp.MessageLog, {}, {"keep_payloads": [1, None, "yes"]}),
    (_BANK.encrypted_residual, {"quarter_scores_b": _VECTOR, "rows": [0, 1]},
     {"quarter_scores_b": [None, (1, 2), paillier.encrypt_vector(KEY, [1.0])],
      "rows": [[0], [9], None]}),
    (_BANK.masked_gradient, {"residual": _VECTOR, "rows": [0, 1]},
     {"residual": [None, paillier.encrypt_vector(KEY, [1.0])], "rows": [[0, 0], [0.5, 1]]}),
    (_BUREAU.encrypted_quarter_scores, {"rows": [0, 1]}, {"rows": [[], [6], None]}),
    (COORDINATOR.decrypt_masked, {"encrypted": _VECTOR, "sender": "A"},
     {"encrypted": [None, (1,)], "sender": ["C", None, 1]}),
    (COORDINATOR.decrypt_loss, {"encrypted": paillier.encrypt_vector(KEY, [1.0])},
     {"encrypted": [None, _VECTOR]}),
]


def test_fuzz_covers_every_public_function_and_class():
    public = {name for name, obj in vars(vp).items()
              if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
              and getattr(obj, "__module__", "") == vp.__name__}
    covered = {function.__name__ for function, _, _ in FUZZ}
    # Records, not entry points: a message, a step's result, a training result.
    assert public - covered == {"Message", "StepResult", "VerticalTrainingResult"}
