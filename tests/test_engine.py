"""The fast multi-client engine against the per-client loop (client.LoopTrainer).

Tolerances: the engine and the loop run the same SGD steps on the same batches in float32 but sum
in different orders, so they agree to rounding. For softmax regression (smooth loss) the final
weights agree to ``WEIGHT_ATOL = 1e-5`` after several rounds (observed: ~1e-7) and the test
accuracies to one example in 1,000. For the 2NN a pre-activation within rounding of 0 can take the
other side of the ReLU kink in one implementation, which changes that step's gradient by a small
finite amount; its test is therefore on accuracy and loss (``2NN_*`` bounds below).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fl_helpers import aggregation, client, engine, models, schedule, training

WEIGHT_ATOL = 1e-5
ACCURACY_ATOL = 1.5e-3  # one example in 1,000 may flip
LOSS_RTOL = 1e-4
NN_ACCURACY_ATOL = 5e-3
NN_LOSS_RTOL = 5e-3


def _fedavg(clients, test, engine_name, model_fn=models.make_softmax_regression, **kwargs):
    args = dict(num_rounds=3, clients_per_round=5, local_epochs=1, batch_size=10,
                client_learning_rate=0.2, test_data=test, seed=4, progress=False, diagnostics=True)
    args.update(kwargs)
    return training.run_fedavg(model_fn, clients, engine=engine_name, **args)


def _assert_same_history(fast, loop, *, weights=True, accuracy_atol=ACCURACY_ATOL,
                         loss_rtol=LOSS_RTOL):
    np.testing.assert_array_equal(fast.diagnostics.sampled_clients,
                                  loop.diagnostics.sampled_clients)
    np.testing.assert_allclose(fast.test_accuracy, loop.test_accuracy, rtol=0, atol=accuracy_atol)
    np.testing.assert_allclose(fast.test_loss, loop.test_loss, rtol=loss_rtol)
    if weights:
        for a, b in zip(fast.final_weights, loop.final_weights, strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=WEIGHT_ATOL)


@pytest.mark.parametrize("split", ["iid", "dirichlet"])
@pytest.mark.parametrize("local_epochs", [1, 2])
def test_engine_equals_loop(small_federation, split, local_epochs):
    clients, test = small_federation
    sizes = [len(y) for _, y in clients[split]]
    assert any(n % 10 for n in sizes)  # partial last batches are exercised
    if split == "dirichlet":
        assert max(sizes) > 2 * min(sizes)  # and clients of very different sizes
    fast = _fedavg(clients[split], test, "fast", local_epochs=local_epochs)
    loop = _fedavg(clients[split], test, "loop", local_epochs=local_epochs)
    assert (fast.engine, loop.engine) == (training.Engine.FAST, training.Engine.LOOP)
    _assert_same_history(fast, loop)


def test_engine_equals_loop_full_batch(small_federation):
    clients, test = small_federation
    fast = _fedavg(clients["dirichlet"], test, "fast", batch_size=None, num_rounds=2)
    loop = _fedavg(clients["dirichlet"], test, "loop", batch_size=None, num_rounds=2)
    _assert_same_history(fast, loop)


def test_engine_equals_loop_on_the_2nn(small_federation):
    clients, test = small_federation
    kwargs = dict(model_fn=models.make_2nn, local_epochs=2, client_learning_rate=0.05)
    fast = _fedavg(clients["dirichlet"], test, "fast", **kwargs)
    loop = _fedavg(clients["dirichlet"], test, "loop", **kwargs)
    _assert_same_history(fast, loop, weights=False, accuracy_atol=NN_ACCURACY_ATOL,
                         loss_rtol=NN_LOSS_RTOL)
    # Most weights still agree to rounding; only units that crossed a kink differ.
    diffs = np.concatenate([np.abs(a - b).ravel()
                            for a, b in zip(fast.final_weights, loop.final_weights, strict=True)])
    assert np.median(diffs) < 1e-6


def test_auto_picks_the_fast_engine_for_dense_stacks(small_federation):
    clients, _ = small_federation
    assert engine.supports(models.make_softmax_regression())
    assert engine.supports(models.make_2nn())
    history = _fedavg(clients["iid"], None, "auto", num_rounds=1)
    assert history.engine is training.Engine.FAST


def test_engine_is_deterministic(small_federation):
    clients, test = small_federation
    first = _fedavg(clients["dirichlet"], test, "fast")
    again = _fedavg(clients["dirichlet"], test, "fast")
    other = _fedavg(clients["dirichlet"], test, "fast", seed=5)
    np.testing.assert_array_equal(first.test_accuracy, again.test_accuracy)
    for a, b in zip(first.final_weights, again.final_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.final_weights[0], other.final_weights[0])


def _engine(clients, model, **kwargs):
    args = dict(local_epochs=2, batch_size=10, client_learning_rate=0.2, seed=1)
    args.update(kwargs)
    datasets = client.check_datasets(model, clients)
    return engine.MultiClientEngine(model, datasets, **args), datasets


def test_group_size_changes_nothing_but_speed(small_federation):
    clients, _ = small_federation
    model = models.make_softmax_regression()
    sampled = np.arange(0, 16, 2)  # 8 clients of different sizes: groups mix short and long
    start = model.get_weights()
    sizes = np.array([len(clients["dirichlet"][k][1]) for k in sampled], dtype=np.float64)
    results = []
    for group_size in (1, 3, 8):
        fast, _ = _engine(clients["dirichlet"], model, group_size=group_size)
        results.append(fast.clipped_sum(start, sampled, 0, scales=sizes, clipping_norm=None))
    for other in results[1:]:
        for a, b in zip(results[0].total, other.total, strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=WEIGHT_ATOL * sizes.sum())


def test_fused_clipped_sum_equals_the_rules_reference_sum(small_federation):
    # The engine computes sum_k a_k clip(delta_k, C) in its graph; the rule's sum_updates does
    # it client by client from the loop's updates. Both must agree, norms included.
    clients, _ = small_federation
    model = models.make_softmax_regression()
    fast, datasets = _engine(clients["dirichlet"], model)
    loop = client.LoopTrainer(model, datasets, local_epochs=2, batch_size=10,
                              client_learning_rate=0.2, seed=1)
    rule = aggregation.DPFedAvg(clipping_norm=0.4, noise_multiplier=0.0, expected_clients=4.0)
    start = model.get_weights()
    sampled = np.array([1, 4, 5, 9, 12])
    fused = fast.clipped_sum(start, sampled, 3, scales=np.ones(5), clipping_norm=0.4)
    results = loop.train(start, sampled, 3)
    reference = rule.sum_updates(results.deltas, results.num_examples)
    assert 0 < np.mean(reference.update_norms > 0.4) <= 1  # C really clips
    np.testing.assert_allclose(fused.update_norms, reference.update_norms, rtol=1e-5)
    np.testing.assert_allclose(fused.clipped_norms, reference.clipped_norms, rtol=1e-5)
    assert np.all(fused.clipped_norms <= 0.4 * (1 + 1e-6))
    for a, b in zip(fused.total, reference.total, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_engine_returns_every_update_like_the_loop(small_federation):
    clients, _ = small_federation
    model = models.make_softmax_regression()
    fast, datasets = _engine(clients["dirichlet"], model, group_size=3)
    loop = client.LoopTrainer(model, datasets, local_epochs=2, batch_size=10,
                              client_learning_rate=0.2, seed=1)
    start = model.get_weights()
    sampled = np.array([15, 0, 7, 3])  # unsorted: results come back in this order
    got, expected = fast.train(start, sampled, 2), loop.train(start, sampled, 2)
    np.testing.assert_array_equal(got.num_examples, expected.num_examples)
    for a, b in zip(got.deltas, expected.deltas, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(x, y, rtol=0, atol=WEIGHT_ATOL)
    assert fast.train(start, np.zeros(0, np.int64), 0).deltas == []


def test_median_rule_runs_on_both_engines(small_federation):
    clients, test = small_federation
    kwargs = dict(aggregation_rule=aggregation.CoordinateMedian())
    fast = _fedavg(clients["iid"], test, "fast", **kwargs)
    loop = _fedavg(clients["iid"], test, "loop", **kwargs)
    assert fast.aggregation == "median"
    _assert_same_history(fast, loop)
    mean = _fedavg(clients["iid"], test, "fast")
    assert not np.allclose(mean.final_weights[0], fast.final_weights[0], atol=1e-4)


def test_training_reports_divergence(small_federation):
    clients, _ = small_federation
    with pytest.raises(ValueError, match="diverged"):
        _fedavg(clients["iid"], None, "fast", model_fn=models.make_2nn,
                client_learning_rate=1e20, num_rounds=1)


# -- the one-step path: every client takes one local step (FedSGD, or one small batch each) ----


@pytest.mark.parametrize("model_fn", [models.make_softmax_regression, models.make_2nn])
@pytest.mark.parametrize("clipping_norm", [None, 0.05])
def test_one_step_clipped_sum_equals_the_loop(small_federation, model_fn, clipping_norm):
    # E = 1 with B = inf (FedSGD: one full-batch step, batches of 24-108 examples, wider than
    # the Dirichlet clients' smallest) and with one example per client (B = 10 > n_k = 1, the
    # private-MNIST headline's layout): the engine's one-pass round (ghost norms, one matmul per
    # layer) must give the loop's sum and every client's norm before and after clipping.
    clients, _ = small_federation
    one_each = [(x[:1], y[:1]) for x, y in clients["iid"]]
    for datasets, batch_size in ((clients["dirichlet"], None), (one_each, 10)):
        model = model_fn()
        fast, checked = _engine(datasets, model, local_epochs=1, batch_size=batch_size)
        assert fast.one_step
        loop = client.LoopTrainer(model, checked, local_epochs=1, batch_size=batch_size,
                                  client_learning_rate=0.2, seed=1)
        start = model.get_weights()
        sampled = np.array([12, 1, 4, 5, 9, 3, 0, 15, 7])  # 9: padded to a bucket of 10
        scales = np.linspace(0.5, 2.0, len(sampled))
        fused = fast.clipped_sum(start, sampled, 3, scales=scales, clipping_norm=clipping_norm)
        results = loop.train(start, sampled, 3)
        norms = np.array([np.sqrt(sum(np.sum(d.astype(np.float64) ** 2) for d in delta))
                          for delta in results.deltas])
        factor = np.ones_like(norms) if clipping_norm is None else np.minimum(
            1.0, clipping_norm / norms)
        if clipping_norm is not None:
            assert 0 < np.mean(factor < 1)  # C really clips
        np.testing.assert_allclose(fused.update_norms, norms, rtol=2e-5)
        np.testing.assert_allclose(fused.clipped_norms, norms * factor, rtol=2e-5)
        np.testing.assert_array_equal(fused.num_examples, results.num_examples)
        for layer, total in enumerate(fused.total):
            expected = sum(a * f * delta[layer]
                           for a, f, delta in zip(scales, factor, results.deltas, strict=True))
            np.testing.assert_allclose(total, expected, rtol=0,
                                       atol=1e-6 * max(1.0, np.abs(expected).max()))


def test_one_step_path_is_taken_only_when_every_client_takes_one_step(small_federation):
    clients, _ = small_federation
    model = models.make_2nn()
    assert _engine(clients["iid"], model, local_epochs=1, batch_size=None)[0].one_step
    assert _engine(clients["iid"], model, local_epochs=1, batch_size=45)[0].one_step
    assert not _engine(clients["iid"], model, local_epochs=1, batch_size=44)[0].one_step
    assert not _engine(clients["iid"], model, local_epochs=2, batch_size=None)[0].one_step
    assert not _engine(clients["iid"][:2], models.make_cnn(), local_epochs=1,
                       batch_size=None)[0].one_step


@pytest.mark.parametrize(("noise", "noise_multiplier"), [("float", 0.5), ("exact", 1e-9)])
def test_one_step_dp_fedavg_equals_the_loop(small_federation, noise, noise_multiplier):
    # A whole private run (reproducible noise) on clients of one example each: DP-FedAvg is then
    # DP-SGD, and the fast path must not change it. Float noise: both engines add the same
    # noise. Exact noise: the fast path sums rank-one factors on a finer grid (2^22 steps per
    # C, against 2^16), so its noise integers differ; with the smallest noise (variance 1, a
    # grid step) the runs must agree to the grid's rounding.
    clients, test = small_federation
    one_each = [(x[i:i + 1], y[i:i + 1]) for x, y in clients["iid"] for i in range(3)]
    runs = {}
    for name in ("fast", "loop"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # seeded noise; the float control
            runs[name] = training.run_dp_fedavg(
                models.make_softmax_regression, one_each, num_rounds=4,
                sampling_probability=0.5, local_epochs=1, batch_size=10,
                client_learning_rate=0.5, clipping_norm=0.5, noise_multiplier=noise_multiplier,
                test_data=test, seed=3, progress=False, engine=name,
                randomness=schedule.PrivateRandomness.reproducible(3),
                expected_clients=0.5 * len(one_each), noise=noise)
    assert (runs["fast"].engine, runs["loop"].engine) == (training.Engine.FAST,
                                                          training.Engine.LOOP)
    np.testing.assert_allclose(runs["fast"].test_accuracy, runs["loop"].test_accuracy, rtol=0,
                               atol=ACCURACY_ATOL)
    # Exact noise: the 2^16 grid also leaves room for its rounding by shortening a clipped
    # update by sqrt(d) / 2 steps (0.07 % here), the factor grid by less: about 1e-5 over 4
    # rounds (measured: at most 2e-5).
    tolerance = WEIGHT_ATOL if noise == "float" else 1e-4
    for a, b in zip(runs["fast"].final_weights, runs["loop"].final_weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=tolerance)


def test_consecutive_runs_on_the_same_clients_share_one_upload(small_federation):
    # A widget retrains the same federation at every move: its data is uploaded once.
    clients, _ = small_federation
    model = models.make_softmax_regression()
    first, _ = _engine(clients["dirichlet"], model)
    again, _ = _engine([(x.copy(), y.copy()) for x, y in clients["dirichlet"]], model)
    assert again.x_all is first.x_all and again.y_all is first.y_all
    assert not engine._UPLOADS[next(reversed(engine._UPLOADS))][0].flags.writeable


@pytest.mark.parametrize("change", ["image", "label", "negative zero"])
def test_changed_client_data_is_uploaded_afresh(small_federation, change):
    # Same sizes, one value different (even a bit-level one, -0.0 for 0.0): no stale data.
    clients, _ = small_federation
    model = models.make_softmax_regression()
    original = [(x.copy(), y.copy()) for x, y in clients["dirichlet"]]
    first, _ = _engine(original, model)
    changed = [(x.copy(), y.copy()) for x, y in original]
    x, y = changed[3]
    if change == "image":
        x[0, 5, 5] += 0.5
    elif change == "label":
        y[0] = (y[0] + 1) % 10
    else:
        zero = np.flatnonzero(x.reshape(-1) == 0.0)[0]
        x.reshape(-1)[zero] = -0.0
    fresh, datasets = _engine(changed, model)
    assert fresh.x_all is not first.x_all
    start = int(fresh.offsets[3])
    np.testing.assert_array_equal(fresh.x_all.numpy()[start], datasets[3][0][0].reshape(-1))
    np.testing.assert_array_equal(fresh.y_all.numpy()[start], datasets[3][1][0])
    # and the reused upload is never the changed one: the original data gets its own again
    back, _ = _engine(original, model)
    np.testing.assert_array_equal(back.x_all.numpy()[start], original[3][0][0].reshape(-1))


def test_uploads_are_bounded(small_federation):
    clients, _ = small_federation
    model = models.make_softmax_regression()
    for count in range(3, 3 + engine.MAX_UPLOADS + 2):
        _engine(clients["dirichlet"][:count], model)
    assert len(engine._UPLOADS) == engine.MAX_UPLOADS
    engine.release_uploads()
    assert not engine._UPLOADS


@pytest.mark.parametrize("local_epochs, batch_size", [(1, 10), (3, 7), (2, None), (2, 1000)])
def test_layout_holds_exactly_the_batches_of_client_batches(small_federation, local_epochs,
                                                            batch_size):
    from fl_helpers import schedule

    clients, _ = small_federation
    model = models.make_softmax_regression()
    fast, _ = _engine(clients["dirichlet"], model, local_epochs=local_epochs,
                      batch_size=batch_size, group_size=3)
    sampled = np.array([7, 2, 11, 0, 5])
    idx, mask, group_steps, num_groups, slot_of = fast._layout(sampled, 4)
    assert num_groups == 2
    flat_idx = idx.reshape(-1, *idx.shape[2:])
    flat_mask = mask.reshape(-1, *mask.shape[2:])
    for i, k in enumerate(sampled):
        batches = schedule.client_batches(
            len(clients["dirichlet"][k][1]), local_epochs=local_epochs, batch_size=batch_size,
            rng=np.random.default_rng(schedule.client_seed(1, 4, int(k))))
        slot = slot_of[i]
        assert group_steps[slot // 3] >= len(batches)
        for s, batch in enumerate(batches):
            real = flat_mask[slot, s] == 1.0
            assert real.sum() == len(batch)
            np.testing.assert_array_equal(flat_idx[slot, s][real], batch + fast.offsets[k])
        assert not flat_mask[slot, len(batches):].any()


@pytest.mark.parametrize("scale", [5e2, 2e3, 1e4])
def test_one_step_clipping_holds_when_a_clients_gradients_cancel(scale):
    """Attack (the audit's): a client whose per-example gradients are huge and cancel. The
    Gram-matrix ("ghost") norm then subtracts huge float32 numbers; the result can come out
    0 or negative (clamped to 0), so the engine would not clip an update whose true norm is
    far above C. Two examples x and -x with one label, from zero weights: the kernel gradients
    cancel exactly, the bias gradients add up (true norm 0.19, C = 0.01). Before the fix the
    computed norm was 0 for scales 400 to 3,000 and the engine released 0.19, 19 C. The
    contribution the engine sums must have norm <= C."""
    u = np.random.default_rng(0).uniform(0.1, 1.0, size=(28, 28)).astype(np.float32)
    x = np.stack([scale * u, -scale * u])
    y = np.array([3, 3], dtype=np.int32)
    datasets = [(x, y), (x[:1].copy(), y[:1].copy())]
    model = models.make_softmax_regression()
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    fast, checked = _engine(datasets, model, local_epochs=1, batch_size=None)
    assert fast.one_step
    start = model.get_weights()
    clipping_norm = 0.01
    fused = fast.clipped_sum(start, np.array([0]), 0, scales=np.ones(1),
                             clipping_norm=clipping_norm)
    loop = client.LoopTrainer(model, checked, local_epochs=1, batch_size=None,
                              client_learning_rate=0.2, seed=1)
    true_norm = np.sqrt(sum(np.sum(d.astype(np.float64) ** 2)
                            for d in loop.train(start, np.array([0]), 0).deltas[0]))
    assert true_norm > 10 * clipping_norm  # the update really needs clipping
    released = np.sqrt(sum(np.sum(t.astype(np.float64) ** 2) for t in fused.total))
    assert released <= clipping_norm * (1 + 1e-4)
