"""The numpy logistic regression, DP-SGD and FedAvg of fl_helpers.cross_silo, checked against
closed forms, brute force, TensorFlow and dp-accounting."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from fl_helpers import accounting, cross_silo, discrete_noise, schedule


def _rep(seed: int) -> schedule.PrivateRandomness:
    """Reproducible randomness for the tests (NOT private; no warning)."""
    return schedule.PrivateRandomness.reproducible(seed, warn=False)


CFG = cross_silo.TrainingConfig(num_rounds=5, local_steps=4)


@pytest.fixture(scope="module")
def federation():
    return cross_silo.load_federation()


@pytest.fixture(scope="module")
def public_federation():
    return cross_silo.load_federation(preprocessing="public")


def _toy(n=40, d=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = (rng.random(n) < 0.4).astype(float)
    params = rng.normal(size=d + 1) * 0.3
    return params, x, y


def test_per_example_gradients_match_finite_differences():
    params, x, y = _toy(n=6)
    grads = cross_silo.per_example_gradients(params, x, y)
    eps = 1e-6
    for i in range(len(y)):
        for j in range(len(params)):
            step = np.zeros_like(params)
            step[j] = eps
            numeric = (cross_silo.loss(params + step, x[i:i + 1], y[i:i + 1])
                       - cross_silo.loss(params - step, x[i:i + 1], y[i:i + 1])) / (2 * eps)
            assert grads[i, j] == pytest.approx(numeric, abs=1e-7)


def test_loss_is_stable_for_large_logits():
    x = np.array([[1000.0], [-1000.0]])
    y = np.array([1.0, 0.0])
    assert cross_silo.loss(np.array([1.0, 0.0]), x, y) == pytest.approx(0.0, abs=1e-12)
    assert np.isfinite(cross_silo.loss(np.array([-1.0, 0.0]), x, y))


def test_sgd_update_matches_tensorflow():
    """The ClientApp's numpy update equals the same SGD written with TensorFlow."""
    import tensorflow as tf

    params, x, y = _toy(n=30)
    kwargs = dict(local_steps=9, batch_size=8, client_learning_rate=0.1)
    ours = cross_silo.sgd_update(params, x, y, rng=np.random.default_rng(3), **kwargs)
    # The same batches (replaying the permutations), the same loss in TensorFlow.
    rng, batches, order, pos = np.random.default_rng(3), [], None, len(y)
    for _ in range(kwargs["local_steps"]):
        if pos >= len(y):
            order, pos = rng.permutation(len(y)), 0
        batches.append(order[pos:pos + 8])
        pos += 8
    w = tf.Variable(params[:-1, None], dtype=tf.float64)
    b = tf.Variable(params[-1:], dtype=tf.float64)
    for batch in batches:
        with tf.GradientTape() as tape:
            z = tf.squeeze(tf.constant(x[batch]) @ w, 1) + b
            value = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
                labels=tf.constant(y[batch]), logits=z))
        for variable, grad in zip([w, b], tape.gradient(value, [w, b]), strict=True):
            variable.assign_sub(0.1 * grad)  # plain SGD in float64 (Keras keeps lr in float32)
    theirs = np.concatenate([w.numpy()[:, 0], b.numpy()])
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def _brute_auc(y, s):
    pos, neg = s[y > 0.5], s[y < 0.5]
    return np.mean([1.0 if p > q else 0.5 if p == q else 0.0
                    for p, q in itertools.product(pos, neg)])


def test_roc_auc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(1)
    y = (rng.random(60) < 0.3).astype(float)
    scores = rng.integers(0, 5, size=60).astype(float)  # many ties
    assert cross_silo.roc_auc(y, scores) == pytest.approx(_brute_auc(y, scores), abs=1e-12)
    assert cross_silo.roc_auc([0, 1], [0.2, 0.9]) == 1.0
    assert cross_silo.roc_auc([0, 1], [0.9, 0.2]) == 0.0


def test_roc_auc_refuses_one_class():
    with pytest.raises(ValueError, match="both classes"):
        cross_silo.roc_auc(np.ones(5), np.arange(5.0))


def test_clip_rows_never_increases_a_norm():
    g = np.random.default_rng(2).normal(size=(100, 7)) * 3
    clipped = cross_silo.clip_rows(g, 1.5)
    norms, before = np.linalg.norm(clipped, axis=1), np.linalg.norm(g, axis=1)
    assert (norms <= 1.5 + 1e-12).all() and (norms <= before + 1e-12).all()
    inside = before <= 1.5
    np.testing.assert_array_equal(clipped[inside], g[inside])


def test_weighted_average():
    a, b = np.array([1.0, 2.0]), np.array([3.0, 6.0])
    np.testing.assert_allclose(cross_silo.weighted_average([a, b], [1, 3]), [2.5, 5.0])
    np.testing.assert_array_equal(cross_silo.weighted_average([a, a, a], [5, 1, 2]), a)
    with pytest.raises(ValueError, match="weights must be > 0"):
        cross_silo.weighted_average([a, b], [1, 0])


def test_dp_noise_is_secret_by_default_and_reproducible_on_request():
    params, x, y = _toy()
    kw = dict(local_steps=3, sampling_probability=0.5, expected_batch_size=20.0,
              clipping_norm=1.0, noise_multiplier=1.0, client_learning_rate=0.1)
    assert not np.array_equal(cross_silo.dp_sgd_update(params, x, y, **kw),
                              cross_silo.dp_sgd_update(params, x, y, **kw))
    with pytest.warns(UserWarning, match="reproducible noise from seed 7"):
        rng_a = schedule.PrivateRandomness.reproducible(7)
    rng_b = schedule.PrivateRandomness.reproducible(7, warn=False)
    np.testing.assert_array_equal(cross_silo.dp_sgd_update(params, x, y, randomness=rng_a, **kw),
                                  cross_silo.dp_sgd_update(params, x, y, randomness=rng_b, **kw))
    with pytest.raises(TypeError, match="randomness must be a PrivateRandomness"):
        cross_silo.dp_sgd_update(params, x, y, randomness=np.random.default_rng(7), **kw)


def test_dp_noise_has_the_calibrated_std():
    """With zero residuals (labels = predictions) a step is pure noise of std sigma C / (q n)."""
    n, q, sigma, clip, lr = 1000, 0.5, 2.0, 1.0, 1.0
    x = np.random.default_rng(4).normal(size=(n, 13))
    params = np.zeros(14)
    y = cross_silo.predict_proba(params, x)
    # (one update per randomness: a reproducible object would replay the same noise)
    steps = np.stack([cross_silo.dp_sgd_update(params, x, y, local_steps=1,
                                               sampling_probability=q,
                                               expected_batch_size=q * n, clipping_norm=clip,
                                               noise_multiplier=sigma, client_learning_rate=lr,
                                               randomness=_rep(5_000 + s)) for s in range(300)])
    expected = lr * sigma * clip / (q * n)
    # 4200 draws: the sample std is within 5 % of the truth with overwhelming probability.
    assert np.std(steps) == pytest.approx(expected, rel=0.05)
    assert abs(np.mean(steps)) < 4 * expected / np.sqrt(steps.size)


def test_dp_sgd_follows_the_clipped_gradient_without_noise():
    """With q = 1 and tiny noise, one DP step is the mean clipped gradient step: up to the
    integer grid (C / 2^16 per patient) and the smallest discrete Gaussian (variance 1, a few
    grid steps) with exact noise; to float rounding with float noise."""
    params, x, y = _toy()
    clipped = cross_silo.clip_rows(cross_silo.per_example_gradients(params, x, y), 0.1)
    kw = dict(local_steps=1, sampling_probability=1.0, expected_batch_size=len(y),
              clipping_norm=0.1, noise_multiplier=1e-12, client_learning_rate=1.0)
    step = cross_silo.dp_sgd_update(params, x, y, randomness=_rep(0), **kw)
    grid = 0.1 / discrete_noise.GRID_STEPS
    np.testing.assert_allclose(step, params - clipped.mean(axis=0),
                               atol=(len(y) / 2 + 8) * grid / len(y))
    with pytest.warns(UserWarning, match="noise='float'"):
        floating = cross_silo.dp_sgd_update(params, x, y, randomness=_rep(0),
                                            noise="float", **kw)
    np.testing.assert_allclose(floating, params - clipped.mean(axis=0), atol=1e-12)


def test_epsilon_matches_accounting_and_small_hospitals_pay_more():
    config = dataclasses.replace(CFG, noise_multiplier=1.2)
    steps = config.num_rounds * config.local_steps
    big = cross_silo.epsilon(config, 200, target_delta=1e-3)
    small = cross_silo.epsilon(config, 40, target_delta=1e-3)
    reference = accounting.dp_fedavg_epsilon(noise_multiplier=1.2, sampling_probability=8 / 200,
                                             num_rounds=steps, target_delta=1e-3,
                                             accountant="discrete")  # exact noise, the default
    assert big == pytest.approx(reference, rel=1e-9)
    assert small > big
    assert cross_silo.epsilon(CFG, 200, target_delta=1e-3) == np.inf


def test_fedavg_of_one_hospital_is_that_hospital_alone(federation):
    h = federation[1]
    fed, _ = cross_silo.run_fedavg([h], CFG)
    alone = cross_silo.train_alone(h.x_train, h.y_train, CFG, hospital_id=h.hospital_id)
    # Equal up to the rounding of (n * theta) / n in the weighted average.
    np.testing.assert_allclose(fed, alone, rtol=1e-13, atol=1e-15)


def test_fedavg_is_deterministic_and_seed_dependent(federation):
    a, _ = cross_silo.run_fedavg(federation, CFG)
    b, _ = cross_silo.run_fedavg(federation, CFG)
    c, _ = cross_silo.run_fedavg(federation, dataclasses.replace(CFG, seed=1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fedavg_learns(federation):
    """Sanity check with honest bounds: FedAvg ranks Cleveland's test patients well."""
    params, history = cross_silo.run_fedavg(federation, cross_silo.TrainingConfig())
    h = federation[0]
    assert cross_silo.evaluate(params, h.x_test, h.y_test)["auc"] > 0.8
    assert history[-1]["train_loss"] < history[0]["train_loss"] == pytest.approx(np.log(2))


def test_compare_training_rows(federation):
    rows = cross_silo.compare_training(federation, CFG)
    assert len(rows) == 12
    assert {r["method"] for r in rows} == {"local", "fedavg", "pooled"}


@pytest.mark.parametrize("field, value, message", [
    ("client_learning_rate", 0.0, "client_learning_rate must be > 0, got 0.0."),
    ("num_rounds", 0, "num_rounds must be >= 1, got 0."),
    ("noise_multiplier", -1.0, "noise_multiplier must be >= 0, got -1.0."),
])
def test_config_errors(field, value, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        cross_silo.TrainingConfig(**{field: value})


def test_config_round_trip():
    config = cross_silo.TrainingConfig(noise_multiplier=1.5, seed=3)
    assert cross_silo.TrainingConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown TrainingConfig keys"):
        cross_silo.TrainingConfig.from_dict({"rounds": 3})


def test_private_comparison_respects_the_target(public_federation):
    federation = public_federation
    rows = cross_silo.compare_training(federation, CFG, target_epsilon=2.0, target_delta=1e-4)
    eps = [r["epsilon"] for r in rows]
    assert max(eps) == pytest.approx(2.0, rel=1e-3)
    smallest = min(federation, key=lambda h: h.public_train_size).name
    assert [r["epsilon"] for r in rows if r["method"] == "fedavg" and r["hospital"] == smallest
            ] == [pytest.approx(2.0, rel=1e-3)]
    assert all(e <= 2.0 * (1 + 1e-3) for e in eps)


def test_private_training_refuses_local_statistics(federation):
    private = dataclasses.replace(CFG, noise_multiplier=1.0)
    with pytest.raises(ValueError, match="preprocessing='public'.*'cleveland'"):
        cross_silo.run_fedavg(federation, private)
    with pytest.raises(ValueError, match="preprocessing='public'"):
        cross_silo.compare_training(federation, CFG, target_epsilon=2.0)
    h = federation[0]
    with pytest.raises(ValueError, match="a private update needs public_train_size"):
        cross_silo.client_update(cross_silo.init_params(), h.x_train, h.y_train, config=private,
                                 round_index=0, hospital_id=0)


def test_public_sizes_are_published_counts_and_match_the_shipped_splits():
    for missing in cross_silo.MISSING_MODES:
        for h in cross_silo.load_federation(missing=missing, preprocessing="public"):
            assert h.public_train_size == h.num_train
    assert [cross_silo.public_train_size(k) for k in range(4)] == [199, 194, 81, 132]
    assert [cross_silo.public_train_size(k, missing="drop") for k in range(4)] == [
        199, 172, 30, 85]  # FLamby's README


def test_private_weights_and_divisor_do_not_use_the_row_count(public_federation):
    """The FedAvg weights of a private run are the public sizes, and a DP-SGD step is the same
    whether a hospital holds n rows or n + 1 (the extra patient has a zero gradient): the
    divisor is the public expected batch size, not a count of the rows."""
    private = dataclasses.replace(CFG, noise_multiplier=1.0)
    assert cross_silo.public_weights(public_federation, private) == [199.0, 194.0, 81.0, 132.0]
    h = public_federation[2]
    params = cross_silo.init_params()
    # Features all zero and label 0.5 = the prediction at zero params: gradient (p - y)[x, 1] = 0.
    x_more = np.vstack([h.x_train, np.zeros((1, h.x_train.shape[1]))])
    y_more = np.append(h.y_train, 0.5)
    steps = [cross_silo.dp_sgd_update(params, x, y, local_steps=1, sampling_probability=1.0,
                                      expected_batch_size=81.0, clipping_norm=1.0,
                                      noise_multiplier=1e-300, client_learning_rate=1.0,
                                      randomness=_rep(0))
             for x, y in ((h.x_train, h.y_train), (x_more, y_more))]
    # The two steps differ only by their (independent) smallest discrete Gaussian noise, a few
    # grid steps of C / 2^16 on the sum: never by the divisor, which would be a factor 81 / 82.
    np.testing.assert_allclose(steps[0], steps[1], rtol=0,
                               atol=16 / discrete_noise.GRID_STEPS / 81.0)


def test_exact_noise_dp_sgd_step_is_the_integer_sum_plus_integer_noise():
    """noise='exact' in a hospital: with q = 1 and z -> 0 a step moves the parameters by the
    integer sum of the clipped per-patient gradients (grid C / 2^16) over the public divisor;
    with noise, by that plus discrete Gaussian integers of std z C; epsilon by the discrete
    accountant; the config round-trips through Flower's dict."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 4)), (rng.random(30) < 0.5).astype(np.float64)
    params = np.zeros(5)
    kw = dict(local_steps=1, sampling_probability=1.0, expected_batch_size=30.0,
              clipping_norm=0.5, client_learning_rate=1.0, noise="exact")
    integers = discrete_noise.clip_to_integer_grid(
        cross_silo.per_example_gradients(params, x, y), clipping_norm=0.5,
        steps=discrete_noise.GRID_STEPS).sum(axis=0)
    quiet = cross_silo.dp_sgd_update(params, x, y, noise_multiplier=1e-9,
                                     randomness=_rep(1), **kw)
    # (z = 1e-9 still draws the smallest discrete Gaussian, variance 1: a few grid steps.)
    grid_step = 0.5 / discrete_noise.GRID_STEPS / 30.0
    np.testing.assert_allclose(-quiet / grid_step, integers, rtol=0, atol=6)
    steps = np.stack([cross_silo.dp_sgd_update(params, x, y, noise_multiplier=2.0,
                                               randomness=_rep(seed), **kw)
                      for seed in range(400)])
    noise = (steps - quiet) * 30.0  # the noise on the sum
    assert noise.std() == pytest.approx(2.0 * 0.5, rel=0.06)  # 2,000 draws
    config = cross_silo.TrainingConfig(noise_multiplier=1.0, noise="exact")
    assert cross_silo.TrainingConfig.from_dict(config.to_dict()) == config
    assert cross_silo.epsilon(config, 100, target_delta=1e-4) == pytest.approx(
        accounting.dp_fedavg_epsilon(noise_multiplier=1.0, sampling_probability=0.08,
                                     num_rounds=200, target_delta=1e-4, accountant="discrete"))
    with pytest.raises(ValueError, match="noise must be 'float' or 'exact'"):
        cross_silo.TrainingConfig(noise="exactly")


def test_an_empty_poisson_batch_is_noised_like_any_other():
    """A step whose Poisson batch is empty must not fail (an error would reveal the secret
    sample): exact noise moves the parameters by the noise alone, of std z C / b."""
    params, x, y = _toy(n=5)
    steps = np.stack([cross_silo.dp_sgd_update(params, x, y, local_steps=1,
                                               sampling_probability=1e-12, expected_batch_size=2.0,
                                               clipping_norm=0.5, noise_multiplier=2.0,
                                               client_learning_rate=1.0,
                                               randomness=_rep(seed))
                      for seed in range(300)])
    moved = (steps - params) * 2.0  # the noise on the (empty) sum
    assert moved.std() == pytest.approx(2.0 * 0.5, rel=0.08)  # 1,800 draws


def test_the_interval_attack_breaks_float_noise_and_not_exact_noise():
    """The second audit's attack on a hospital's DP-SGD step. The adversary knows the
    parameters, every other patient's record and the target's, and (q = 1) the batch; only the
    noise is secret. Float noise is n = fl(sigma C g), g a float64 standard normal, and each
    released coordinate is params - lr (S + n) / b, monotone in g: bisecting over all float64
    numbers finds the g that give it, and under the wrong hypothesis some coordinates have none
    (each proves the target's presence or absence). With exact noise any integer is a possible
    noise value: nothing is proved."""
    from fl_helpers import aggregation, audit

    steps = discrete_noise.GRID_STEPS
    counts = {("float", "right"): 0, ("float", "wrong"): 0, ("exact", "right"): 0,
              ("exact", "wrong"): 0}
    for trial in range(10):
        _, x, y = _toy(n=25, d=13, seed=trial)
        params = cross_silo.init_params(13)  # round 1 starts from zeros: no rounding in w - step
        kw = dict(local_steps=1, sampling_probability=1.0, expected_batch_size=25.0,
                  clipping_norm=0.5, noise_multiplier=1.3, client_learning_rate=0.5)
        hypotheses = {"right": (x, y), "wrong": (x[1:], y[1:])}  # patient 0 did take part
        for noise in ("float", "exact"):
            with pytest.warns(aggregation.FloatNoiseWarning) if noise == "float" \
                    else _no_warning():
                released = cross_silo.dp_sgd_update(params, x, y, noise=noise,
                                                    **kw)  # secret by default
            for name, (xs, ys) in hypotheses.items():
                g = cross_silo.per_example_gradients(params, xs, ys)
                if noise == "float":
                    total = cross_silo.clip_rows(g, 0.5).sum(axis=0)

                    def release(g, total=total, params=params):  # normal: loc + scale * g
                        return params - 0.5 * (total + (0.0 + 1.3 * 0.5 * g)) / 25.0

                    counts[noise, name] += audit.unexplained_coordinates(
                        released, release, noise="float64")
                else:
                    integers = discrete_noise.clip_to_integer_grid(g, clipping_norm=0.5,
                                                                   steps=steps).sum(axis=0)

                    def release(k, integers=integers, params=params):
                        step = (integers + k).astype(np.float64) * (0.5 / steps)
                        return params - 0.5 * step / 25.0

                    counts[noise, name] += audit.unexplained_coordinates(
                        released, release, noise="integer")
    # Measured: 17 of the 140 coordinates prove it (about 12 %; all 0 would take odds of 1e-8).
    assert counts["float", "right"] == 0 and counts["float", "wrong"] > 0, counts
    assert counts["exact", "right"] == counts["exact", "wrong"] == 0, counts


class _no_warning:
    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        return self._catch.__exit__(*exc)


def test_every_hospital_and_round_draws_its_own_stream():
    """The deployment's processes derive their DP streams from one PrivateRandomness: per
    hospital and per round, independent. Reproducible: the documented
    ``default_rng([seed, t, h, tag])`` (what every process recomputes from config.seed).
    Secret: each process's own OS entropy, so two parties share nothing derivable, and a
    hospital's stream of a round is handed out once."""
    seeded = schedule.PrivateRandomness.reproducible(3, warn=False)
    draws = {(t, h): seeded._party_rng(t, h).random(8) for t in range(2) for h in range(3)}
    assert len({d.tobytes() for d in draws.values()}) == 6  # hospitals and rounds all differ
    again = schedule.PrivateRandomness.reproducible(3, warn=False)  # another process, same seed
    np.testing.assert_array_equal(again._party_rng(1, 2).random(8), draws[1, 2])
    np.testing.assert_array_equal(
        draws[1, 2], np.random.default_rng([3, 1, 2, 0x4E6F697365]).random(8))
    # Secret: two processes' objects (two hospitals) draw unrelated streams for the same (t, h),
    # neither equals any seed's, and neither hands out the same stream twice.
    first, second = schedule.PrivateRandomness.secret(), schedule.PrivateRandomness.secret()
    a, b = first._party_rng(0, 0).random(8), second._party_rng(0, 0).random(8)
    assert not np.array_equal(a, b)
    assert not any(np.array_equal(a, d) for d in draws.values())
    with pytest.raises(schedule.NoiseReuseError, match="round 0 for party 0"):
        first._party_rng(0, 0)
    assert "entropy" not in repr(first) and str(first._entropy) not in repr(first)


def test_run_fedavg_claims_a_secret_randomness_and_replays_a_seeded_one():
    hospitals = cross_silo.load_federation(preprocessing="public")
    config = dataclasses.replace(cross_silo.TrainingConfig(), num_rounds=1, noise_multiplier=1.0)
    secret = schedule.PrivateRandomness.secret()
    cross_silo.run_fedavg(hospitals, config, randomness=secret)
    with pytest.raises(ValueError, match="already used by cross_silo.run_fedavg"):
        cross_silo.run_fedavg(hospitals, config, randomness=secret)
    runs = [cross_silo.run_fedavg(
        hospitals, config, randomness=_rep(0))[0]
        for _ in range(2)]
    np.testing.assert_array_equal(*runs)
    with pytest.raises(TypeError, match="randomness must be a PrivateRandomness"):
        cross_silo.run_fedavg(hospitals, config, randomness=0)
