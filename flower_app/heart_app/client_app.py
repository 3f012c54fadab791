"""The hospital's side: a Flower ClientApp running the course's numpy client update.

Every message starts a fresh ``flwr-clientapp`` process, so this module imports only numpy, flwr
and ``fl_helpers.cross_silo`` (no TensorFlow). The SuperNode tells it which hospital it is with
``--node-config "hospital-id=K data-dir='...'"``; it reads only that hospital's file.

In a private run (``noise-multiplier > 0``) a hospital sends only what epsilon covers: its noised
model, its id (public) and, where Flower wants a count, its *public* training size
(:func:`cross_silo.public_train_size`), the same whether a patient is added or removed. It
prepares its data with the public constants (``preprocessing="public"``) and answers no
evaluation request unless the run sets ``clear-test-metrics = true``, an explicit opt-in whose
loss, accuracy and AUC on the private test set are NOT covered by epsilon. Without DP it sends
its exact counts and test metrics, as in FedAvg.
"""

from __future__ import annotations

import numpy as np
from flwr.app import Context, Message
from flwr.app.message_type import MessageType
from flwr.client import ClientApp, NumPyClient
from flwr.client.mod import secaggplus_mod

from fl_helpers import cross_silo, data, schedule
from heart_app.common import training_config


class HospitalClient(NumPyClient):
    """One hospital: trains on its training split, evaluates on its test split."""

    def __init__(self, hospital: cross_silo.Hospital, run_config: dict) -> None:
        self.hospital = hospital
        self.run_config = run_config
        self.config = training_config(run_config)
        if self.config.private:
            cross_silo.check_private_preparation([hospital])

    def fit(self, parameters, config):
        round_index = int(config["round-index"])
        params = np.asarray(parameters[0], dtype=np.float64)
        h = self.hospital
        randomness = None  # secret: this process's own OS entropy, shared with nobody
        if self.config.private and bool(self.run_config["reproducible-noise"]):
            randomness = schedule.PrivateRandomness.reproducible(self.config.seed, warn=False)
        update = cross_silo.client_update(params, h.x_train, h.y_train, config=self.config,
                                          round_index=round_index, hospital_id=h.hospital_id,
                                          public_train_size=h.public_train_size,
                                          randomness=randomness)
        # Private: the public size, never the count of rows this hospital holds.
        weight = h.public_train_size if self.config.private else h.num_train
        return [update], weight, {"hospital-id": h.hospital_id}

    def evaluate(self, parameters, config):
        params = np.asarray(parameters[0], dtype=np.float64)
        h = self.hospital
        if self.config.private and not bool(self.run_config.get("clear-test-metrics", False)):
            raise RuntimeError("a private run releases no test metrics (epsilon does not cover "
                               "them); set clear-test-metrics = true to opt in.")
        metrics = cross_silo.evaluate(params, h.x_test, h.y_test)
        return metrics["loss"], h.num_test, {"hospital-id": h.hospital_id,
                                             "accuracy": metrics["accuracy"],
                                             "auc": metrics["auc"]}


def client_fn(context: Context):
    node = context.node_config
    if "hospital-id" not in node:
        raise ValueError("this SuperNode has no hospital-id in its --node-config; start it with "
                         "--node-config \"hospital-id=K\" (K in 0..3).")
    hospital_id = int(node["hospital-id"])
    if not 0 <= hospital_id < data.NUM_HOSPITALS:
        raise ValueError(f"hospital-id must be in 0..{data.NUM_HOSPITALS - 1}, got {hospital_id}.")
    data_dir = node.get("data-dir") or None
    hospital = cross_silo.load_hospital(
        hospital_id, missing=str(context.run_config["missing"]),
        preprocessing=str(context.run_config.get("preprocessing", "local")), data_dir=data_dir)
    return HospitalClient(hospital, dict(context.run_config)).to_client()


def optional_secaggplus(msg: Message, ctxt: Context, call_next):
    """Flower's ``secaggplus_mod`` when the run asks for SecAgg+, else nothing."""
    if bool(ctxt.run_config.get("secagg", False)) and \
            msg.metadata.message_type == MessageType.TRAIN:
        return secaggplus_mod(msg, ctxt, call_next)
    return call_next(msg, ctxt)


app = ClientApp(client_fn=client_fn, mods=[optional_secaggplus])
