"""What a hospital's ClientApp sends in a private run: nothing that depends on its patients
except the noised model.

The adversary is the server or another hospital: it sees every reply of the hospital and knows
every patient but the target. It compares the replies with and without the target patient. In a
private run everything besides the noised model (the count field Flower sends with an update,
the metrics) must be the same on both neighbours, and no test metric is sent at all. The control
is a non-private run, where the count tells the two apart."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest

from fl_helpers import cross_silo, paths

sys.path.insert(0, str(paths.app_dir()))
from heart_app import client_app  # noqa: E402
from heart_app.common import TRAINING_KEYS  # noqa: E402


def _run_config(config, **extra):
    values = config.to_dict()
    run_config = {key: values[field] for key, field in TRAINING_KEYS.items()}
    run_config.update({"missing": "impute", "reproducible-noise": False, "secagg": False,
                       "clear-test-metrics": False}, **extra)
    return run_config


def _without_first_patient(h):
    return dataclasses.replace(h, x_train=h.x_train[1:], y_train=h.y_train[1:],
                               x_train_raw=h.x_train_raw[1:])


def _replies(hospital, run_config):
    client = client_app.HospitalClient(hospital, run_config)
    params = [cross_silo.init_params()]
    return client.fit(params, {"round-index": 0})


@pytest.mark.parametrize("hospital_id", range(4))
def test_private_fit_replies_carry_no_count_or_metric(hospital_id):
    h = cross_silo.load_hospital(hospital_id, preprocessing="public")
    run_config = _run_config(cross_silo.TrainingConfig(noise_multiplier=1.0))
    with_target = _replies(h, run_config)
    without_target = _replies(_without_first_patient(h), run_config)
    # Everything but the model is identical on the neighbours, and it is public.
    assert with_target[1:] == without_target[1:]
    assert with_target[1] == cross_silo.public_train_size(hospital_id)
    assert with_target[2] == {"hospital-id": hospital_id}
    assert [np.shape(p) for p in with_target[0]] == [(cross_silo.NUM_FEATURES + 1,)]


def test_private_run_answers_no_evaluation_unless_opted_in():
    h = cross_silo.load_hospital(2, preprocessing="public")
    private = cross_silo.TrainingConfig(noise_multiplier=1.0)
    client = client_app.HospitalClient(h, _run_config(private))
    with pytest.raises(RuntimeError, match="releases no test metrics"):
        client.evaluate([cross_silo.init_params()], {})
    opted_in = client_app.HospitalClient(h, _run_config(private, **{"clear-test-metrics": True}))
    loss, _, metrics = opted_in.evaluate([cross_silo.init_params()], {})
    assert set(metrics) == {"hospital-id", "accuracy", "auc"} and np.isfinite(loss)


def test_private_client_refuses_local_statistics():
    h = cross_silo.load_hospital(0)
    with pytest.raises(ValueError, match="preprocessing='public'"):
        client_app.HospitalClient(h, _run_config(cross_silo.TrainingConfig(noise_multiplier=1.0)))


def test_control_a_non_private_reply_reveals_the_count():
    """Without DP the hospital sends its exact count (FedAvg's weight): the neighbours differ."""
    h = cross_silo.load_hospital(1)
    run_config = _run_config(cross_silo.TrainingConfig())
    assert _replies(h, run_config)[1] != _replies(_without_first_patient(h), run_config)[1]
