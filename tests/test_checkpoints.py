"""Checkpoint and resume (fl_helpers.checkpoints): an interrupted run resumes bit for bit, a
checkpoint of another run is refused, a wrapped server optimizer comes back with its state.
"""

import numpy as np
import pytest
import test_faults

from fl_helpers import (
    aggregation,
    checkpoints,
    models,
    schedule,
    training,
)

federation = test_faults.federation  # the fixture: 8 IID MNIST clients of 100 images
_fedavg = test_faults._fedavg


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("engine", ["fast", "loop"])
def test_interrupted_run_resumes_bit_identically(federation, tmp_path, engine):
    options = {"num_rounds": 5, "engine": engine,
               "server_optimizer": aggregation.ServerSGD(1.0, momentum=0.5)}
    full = _fedavg(federation, **options)

    def stop_after_3(figures):
        if figures["round"] == 3:
            raise _Interrupt

    path = tmp_path / "run.npz"
    with pytest.raises(_Interrupt):
        _fedavg(federation, checkpoint=path, callback=stop_after_3, **{
            **options, "server_optimizer": aggregation.ServerSGD(1.0, momentum=0.5)})
    assert path.exists() and not list(tmp_path.glob("*.tmp"))
    resumed = _fedavg(federation, checkpoint=path, **{
        **options, "server_optimizer": aggregation.ServerSGD(1.0, momentum=0.5)})
    for a, b in zip(resumed.final_weights, full.final_weights, strict=True):
        np.testing.assert_array_equal(a, b)  # bit-identical
    np.testing.assert_array_equal(resumed.test_accuracy, full.test_accuracy)
    np.testing.assert_array_equal(resumed.rounds, full.rounds)


def test_resumed_dp_run_with_the_same_randomness_is_identical(federation, tmp_path):
    clients, test = federation
    options = {"num_rounds": 4, "sampling_probability": 0.5, "local_epochs": 1,
               "batch_size": 20, "client_learning_rate": 0.1, "clipping_norm": 1.0,
               "noise_multiplier": 1.0, "target_delta": 1e-5, "progress": False,
               "server_optimizer": None, "expected_clients": 0.5 * len(clients)}
    randomness = schedule.PrivateRandomness.reproducible(3, warn=False)
    full = training.run_dp_fedavg(models.make_softmax_regression, clients,
                                  randomness=randomness, **options)
    path = tmp_path / "dp.npz"
    with pytest.raises(_Interrupt):
        training.run_dp_fedavg(models.make_softmax_regression, clients, randomness=randomness,
                               checkpoint=path, callback=lambda f: _raise_at(f, 2), **options)
    resumed = training.run_dp_fedavg(models.make_softmax_regression, clients,
                                     randomness=randomness, checkpoint=path, **options)
    for a, b in zip(resumed.final_weights, full.final_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(resumed.epsilon, full.epsilon)
    keys = checkpoints.load_checkpoint(path)
    assert not any("norms/values" in k and keys[k].size for k in keys)  # no private figures


def _raise_at(figures, round_number):
    if figures["round"] == round_number:
        raise _Interrupt


def test_checkpoint_of_another_run_is_refused(federation, tmp_path):
    path = tmp_path / "run.npz"
    _fedavg(federation, num_rounds=2, checkpoint=path)
    with pytest.raises(ValueError, match="belongs to another run"):
        _fedavg(federation, num_rounds=3, checkpoint=path)


def test_resume_restores_a_wrapped_optimizer_and_its_average(federation, tmp_path):
    def optimizer():
        return aggregation.ExponentialAverage(aggregation.ServerSGD(1.0, momentum=0.5),
                                              decay=0.7)

    full_optimizer = optimizer()
    full = _fedavg(federation, num_rounds=4, engine="fast", server_optimizer=full_optimizer)

    def stop_after_2(figures):
        if figures["round"] == 2:
            raise _Interrupt

    path = tmp_path / "run.npz"
    with pytest.raises(_Interrupt):
        _fedavg(federation, num_rounds=4, engine="fast", server_optimizer=optimizer(),
                checkpoint=path, callback=stop_after_2)
    resumed_optimizer = optimizer()
    resumed = _fedavg(federation, num_rounds=4, engine="fast", server_optimizer=resumed_optimizer,
                      checkpoint=path)
    for a, b in zip(resumed.final_weights, full.final_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(resumed_optimizer.averaged_weights, full_optimizer.averaged_weights,
                    strict=True):
        np.testing.assert_array_equal(a, b)
