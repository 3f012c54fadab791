"""Secure aggregation as a whole (fl_helpers.secagg_crypto, secagg_protocol, distributed_dp): the
DistributedDPSecAgg rule in the training loop, huge modulus_bits, and the three modules' bad-input
table (ENTRIES, which tests/test_bad_inputs.py reads). Each module's own behaviour is tested in
tests/test_secagg_crypto.py, tests/test_secagg_protocol.py and tests/test_distributed_dp.py.
"""

from __future__ import annotations

import inspect
import math

import guards
import numpy as np
import pytest
from test_discrete_noise import _reproducible

from fl_helpers import _validation as v
from fl_helpers import accounting, aggregation, schedule
from fl_helpers import discrete_noise as dn
from fl_helpers import distributed_dp as ddp
from fl_helpers import secagg_crypto as crypto
from fl_helpers import secagg_protocol as protocol

# --------------------------------------------------------------------------------------------
# The aggregation rule
# --------------------------------------------------------------------------------------------


def test_rule_plugs_into_run_fedavg():
    from fl_helpers import models, training

    rng = np.random.default_rng(9)
    clients = [(rng.random((12, 28, 28), dtype=np.float32), rng.integers(0, 10, 12))
               for _ in range(4)]
    common = dict(num_rounds=2, clients_per_round=3, local_epochs=1, batch_size=6,
                  client_learning_rate=0.1, progress=False)
    plain = training.run_fedavg(models.make_softmax_regression, clients, **common,
                                aggregation_rule=aggregation.DPFedAvg(
                                    clipping_norm=0.5, noise_multiplier=0.0,
                                    expected_clients=3.0))
    rule = ddp.DistributedDPSecAgg(clipping_norm=0.5, expected_clients=3.0,
                                  randomness=_reproducible(10))
    secure = training.run_fedavg(models.make_softmax_regression, clients, **common,
                                 aggregation_rule=rule)
    assert secure.aggregation == "SecAgg + distributed DP" and rule.rounds_aggregated == 2
    for a, b in zip(secure.final_weights, plain.final_weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)


# --------------------------------------------------------------------------------------------
# Size arguments that used to hang, integers beyond 2^53, and every public entry point's
# bad-input behaviour (the pattern of tests/test_bad_inputs.py, for this module)
# --------------------------------------------------------------------------------------------

_run_with_timeout = guards.run_with_timeout


_PUBLIC_KEY = protocol.SecAggClient(2, threshold=2, modulus_bits=8).advertise_keys()[1]

#: The calls that computed 2**modulus_bits before checking it (2**(2**64) never finishes).
HUGE_BITS_CALLS = {
    "to_modular": lambda b: crypto.to_modular(np.arange(3), b),
    "from_modular": lambda b: crypto.from_modular(np.arange(3, dtype=np.uint64), b),
    "pairwise_mask_sum": lambda b: crypto.pairwise_mask_sum(bytes(16), 1, {2: _PUBLIC_KEY}, 3, b,
                                                        b""),
    "SecAggClient": lambda b: protocol.SecAggClient(1, threshold=2, modulus_bits=b),
    "SecAggServer": lambda b: protocol.SecAggServer(threshold=2, modulus_bits=b, size=3),
    "prg_mask": lambda b: crypto.prg_mask(bytes(16), 3, modulus_bits=b),
    "secure_sum": lambda b: protocol.secure_sum([np.arange(3)] * 3, modulus_bits=b),
    "DistributedDPSecAgg": lambda b: ddp.DistributedDPSecAgg(clipping_norm=1.0,
                                                            expected_clients=1.0,
                                                            modulus_bits=b),
}


def _tiny_clients() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(9)
    return [(rng.random((6, 28, 28), dtype=np.float32), rng.integers(0, 10, 6))
            for _ in range(4)]


def _softmax_regression():
    from fl_helpers import models
    return models.make_softmax_regression()


#: A valid run_distributed_dp call: one round over four clients of six images.
_RUN_VALID = dict(model_fn=_softmax_regression, client_datasets=_tiny_clients(), num_rounds=1,
                  sampling_probability=0.5, local_epochs=1, batch_size=3,
                  client_learning_rate=0.1, clipping_norm=0.5, noise_multiplier=1.0,
                  expected_clients=2.0, target_delta=1e-5, scale=None, modulus_bits=32,
                  server_learning_rate=1.0, test_data=None, seed=0, progress=False,
                  engine="auto", callback=None, randomness=None)


# Bad values by kind (see tests/test_bad_inputs.py for the families' rationale).
_NUMBERS = ["1", None, True, 1 + 0j, [1], np.array([1.0, 2.0]), object()]
COUNT = [*_NUMBERS, 2.0, 1.5, 2**64, 10**400, -1, 0, math.nan]
INDEX = [*_NUMBERS, 2.0, 2**64, 10**400, -1, math.nan]
POSITIVE = [*_NUMBERS, math.nan, math.inf, -math.inf, 10**400, -1.0, 0.0, 5e-324]
PROBABILITY = [*POSITIVE[:-1], 1.5]  # (0, 1]; a subnormal probability is merely tiny
UNIT = [*PROBABILITY, 1.0]  # (0, 1)
FLAG = [1, 0, "yes", None, np.array([True])]
BYTES = ["abc", 3, None, bytearray(16), [1, 2]]
INT_ARRAY = [None, "abc", 5, np.array([0.5, 1.0]), np.array([True, False]),
             np.zeros((2, 2), dtype=np.int64), np.array([object()], dtype=object),
             [[1], [1, 2]]]
FLOAT_ARRAY = [None, "abc", 5, np.array([1.0, np.nan]), np.array([np.inf]),
               np.zeros((2, 2)), np.array([object()], dtype=object), np.array([1 + 1j]),
               np.array([2**60])]
SOURCE = [None, 0, np.random.default_rng(0), "secret"]
DICT = [None, [1, 2], "abc", {0: b""}, {2**20: b""}, {"1": b""}, {1.0: b""}]


def _setup_round(step):
    """A 3-client round (t = 2) advanced to ``step``; returns (clients, server, inboxes)."""
    clients = {u: protocol.SecAggClient(u, threshold=2, modulus_bits=8) for u in (1, 2, 3)}
    server = protocol.SecAggServer(threshold=2, modulus_bits=8, size=3)
    for u, c in clients.items():
        server.receive_keys(u, c.advertise_keys())
    if step == "keys":
        return clients, server, None
    inboxes = server.route({u: c.share_keys(server.public_keys) for u, c in clients.items()})
    if step == "shared":
        return clients, server, inboxes
    for u, c in clients.items():
        server.receive_masked(u, c.masked_input(np.arange(3), inboxes[u]))
    return clients, server, inboxes


def _client(step):
    return _setup_round(step)[0][1]


def _server(step):
    return _setup_round(step)[1]


def _shares():
    return crypto.shamir_share(12345, num_shares=3, threshold=2)[:2]


_LATEST: dict = {}


def _valid_public_keys():
    """A round's public keys; its client 1 (not yet sharing) is kept for the call."""
    clients, server, _ = _setup_round("keys")
    _LATEST["client"] = clients[1]
    return server.public_keys


def _responses():
    clients, server, _ = _setup_round("masked")
    return {u: c.reveal_shares([1, 2, 3], []) for u, c in clients.items()}


#: (label, function(**kwargs), valid kwargs factory, {argument: bad values}).
ENTRIES = [
    ("prg_mask", crypto.prg_mask, lambda: dict(seed=bytes(16), size=3, modulus_bits=8),
     {"seed": [*BYTES, bytes(15)], "size": [*INDEX, dn.MAX_SIZE + 1],
      "modulus_bits": [*COUNT, 63]}),
    ("discrete_gaussian", dn.discrete_gaussian,
     lambda: dict(variance=4, size=3, randomness=schedule.PrivateRandomness.secret()),
     {"variance": [*COUNT, dn.MAX_VARIANCE + 1], "size": [*INDEX, dn.MAX_SIZE + 1],
      "randomness": SOURCE}),
    ("discrete_gaussian_pmf", dn.discrete_gaussian_pmf,
     lambda: dict(values=np.arange(-2, 3), variance=4.0),
     {"values": [None, "abc", np.array([0.5]), np.array([np.nan]), np.array([True]),
                 np.array([2**53 + 1]), np.array([object()], dtype=object)],
      "variance": [*POSITIVE, 1e12]}),
    ("check_modulus_bits", crypto.check_modulus_bits, lambda: dict(modulus_bits=8),
     {"modulus_bits": [*COUNT, 63]}),
    ("quantize", ddp.quantize,
     lambda: dict(update=np.array([0.1, -0.2]), clipping_norm=1.0, scale=10.0,
                  randomness=schedule.PrivateRandomness.secret()),
     {"update": FLOAT_ARRAY, "clipping_norm": POSITIVE, "scale": [*POSITIVE, 1e300],
      "randomness": SOURCE}),
    ("quantized_norm_bound", ddp.quantized_norm_bound,
     lambda: dict(clipping_norm=1.0, scale=10.0, dimension=4),
     {"clipping_norm": POSITIVE, "scale": POSITIVE, "dimension": [*COUNT, dn.MAX_SIZE + 1]}),
    ("to_modular", crypto.to_modular, lambda: dict(values=np.arange(3), modulus_bits=8),
     {"values": INT_ARRAY, "modulus_bits": [*COUNT, 63]}),
    ("from_modular", crypto.from_modular,
     lambda: dict(residues=np.arange(3, dtype=np.uint64), modulus_bits=8),
     {"residues": [*INT_ARRAY, np.array([256]), np.array([-1])],
      "modulus_bits": [*COUNT, 63]}),
    ("shamir_share", crypto.shamir_share, lambda: dict(secret=5, num_shares=3, threshold=2),
     {"secret": [*(x for x in INDEX if not (type(x) is int and x == 2**64)), crypto.FIELD_PRIME],
      "num_shares": [*COUNT, 1, crypto.MAX_CLIENTS + 1],
      "threshold": [*COUNT, 1, 4]}),
    ("shamir_reconstruct", crypto.shamir_reconstruct, lambda: dict(shares=_shares(), threshold=2),
     {"shares": [None, "ab", 5, np.zeros((2, 2)), [(0, 1), (1, 2)], [(1.5, 2), (2, 3)],
                 [(1, -1), (2, 3)], [(1,), (2, 3)], [(1, 2), (1, 3)]],
      "threshold": [*COUNT, 1, crypto.MAX_CLIENTS + 1]}),
    ("check_threshold", protocol.check_threshold, lambda: dict(threshold=2, num_clients=3),
     {"threshold": [*COUNT, 1, 4], "num_clients": [*COUNT, 1, crypto.MAX_CLIENTS + 1]}),
    ("pairwise_mask_sum", crypto.pairwise_mask_sum,
     lambda: dict(mask_key_seed=bytes(16), me=1, public_keys={2: _PUBLIC_KEY}, size=3,
                  modulus_bits=8, round_tag=b""),
     {"mask_key_seed": BYTES, "me": [*COUNT, crypto.MAX_CLIENTS + 1],
      "public_keys": [*DICT, {2: b"short"}, {2: "key"}], "size": [*INDEX, dn.MAX_SIZE + 1],
      "modulus_bits": [*COUNT, 63], "round_tag": ["r", 1, None, bytes(2000)]}),
    ("SecAggClient", protocol.SecAggClient,
     lambda: dict(client_id=1, threshold=2, modulus_bits=8, round_tag=b"", double_masking=True),
     {"client_id": [*COUNT, crypto.MAX_CLIENTS + 1], "threshold": [*COUNT, 1],
      "modulus_bits": [*COUNT, 63], "round_tag": ["r", 1, None],
      "double_masking": FLAG}),
    ("SecAggClient.share_keys", lambda public_keys: _LATEST["client"].share_keys(public_keys),
     lambda: dict(public_keys=_valid_public_keys()),
     {"public_keys": [*DICT, {1: (b"x", b"y")}, {1: b"k" * 32}]}),
    ("SecAggClient.masked_input",
     lambda values, inbox: _client("shared").masked_input(values, inbox),
     lambda: dict(values=np.arange(3), inbox={}),
     {"values": [*INT_ARRAY, np.array([128])], "inbox": [*DICT, {2: "text"}]}),
    ("SecAggClient.reveal_shares",
     lambda included, dropped: _client("masked").reveal_shares(included, dropped),
     lambda: dict(included=[1, 2, 3], dropped=[]),
     {"included": [None, "abc", 5, [1.5], [0], [1, 1, 2], [True, 2], [2**20]],
      "dropped": [None, "abc", 5, [1.5], [0], [2**20]]}),
    ("SecAggServer", protocol.SecAggServer,
     lambda: dict(threshold=2, modulus_bits=8, size=3, round_tag=b"", double_masking=True),
     {"threshold": [*COUNT, 1], "modulus_bits": [*COUNT, 63],
      "size": [*INDEX, dn.MAX_SIZE + 1], "round_tag": ["r", 1, None],
      "double_masking": FLAG}),
    ("SecAggServer.receive_keys",
     lambda client_id, keys: protocol.SecAggServer(threshold=2, modulus_bits=8, size=3)
     .receive_keys(client_id, keys),
     lambda: dict(client_id=1, keys=(_PUBLIC_KEY, _PUBLIC_KEY)),
     {"client_id": [*COUNT, crypto.MAX_CLIENTS + 1],
      "keys": [None, b"k" * 32, (b"k", b"k"), ("a" * 32, "b" * 32), (_PUBLIC_KEY,)]}),
    ("SecAggServer.route", lambda outboxes: _server("keys").route(outboxes),
     lambda: dict(outboxes={}),
     {"outboxes": [*DICT, {1: {2: "text"}}, {1: [b"x"]}, {9: {}}]}),
    ("SecAggServer.receive_masked",
     lambda client_id, masked: _server("shared").receive_masked(client_id, masked),
     lambda: dict(client_id=1, masked=np.arange(3, dtype=np.uint64)),
     {"client_id": [*COUNT, crypto.MAX_CLIENTS + 1, 9],
      "masked": [*INT_ARRAY, np.arange(4), np.array([256, 0, 0]), np.array([-1, 0, 0])]}),
    ("SecAggServer.unmask", lambda responses: _server("masked").unmask(responses),
     lambda: dict(responses=_responses()),
     {"responses": [*DICT, {1: {2: ("both", 5)}, 2: {}}, {1: {2: ("self", -1)}, 2: {}},
                    {1: [], 2: {}}]}),  # (too few responses: a test above)
    ("secure_sum", protocol.secure_sum,
     lambda: dict(inputs=[np.arange(3)] * 3, modulus_bits=8, threshold=2,
                  dropped_before_masking=[], dropped_before_unmasking=[], round_tag=b"",
                  double_masking=True),
     {"inputs": [None, "abc", [np.arange(3)], [np.arange(3.0)] * 3, [np.array([2**62])] * 3,
                 [[1, 2], [1]], [np.arange(3)] * (crypto.MAX_CLIENTS + 1)],
      "modulus_bits": [*COUNT, 63],
      "threshold": [*(x for x in COUNT if x is not None), 1, 4],
      "dropped_before_masking": [None, "abc", [3], [-1], [1.5]],
      "dropped_before_unmasking": [None, "abc", [3], [-1], [1.5]],
      "round_tag": ["r", 1, None, bytes(2000)], "double_masking": FLAG}),
    ("ddg_rho", accounting.ddg_rho,
     lambda: dict(sensitivity=1.0, client_variance=1.0, num_clients=3, dimension=4),
     {"sensitivity": POSITIVE, "client_variance": [*POSITIVE, 0.2],
      "num_clients": [*COUNT, accounting.MAX_ACCOUNTED_CLIENTS + 1], "dimension": COUNT}),
    ("ddg_tau", accounting.ddg_tau, lambda: dict(client_variance=1.0, num_clients=3),
     {"client_variance": POSITIVE, "num_clients": [*COUNT, accounting.MAX_ACCOUNTED_CLIENTS + 1]}),
    ("poisson_subsampled_rdp", accounting.poisson_subsampled_rdp,
     lambda: dict(rdp=np.array([0.1, 0.2]), orders=[2, 3], sampling_probability=0.1),
     {"rdp": [None, "abc", np.array([0.1]), np.array([np.nan, 0.1]), np.array([-1.0, 0.1])],
      "orders": [None, "ab", 5, [3, 4], [2, 4], [], [2.0, 3.0], list(range(2, 2000))],
      "sampling_probability": PROBABILITY}),
    ("ddg_epsilon", accounting.ddg_epsilon,
     lambda: dict(rho=0.1, num_rounds=3, target_delta=1e-5, sampling_probability=0.5),
     {"rho": POSITIVE, "num_rounds": COUNT, "target_delta": UNIT,
      "sampling_probability": PROBABILITY}),
    ("ddg_noise_multiplier_for_epsilon", accounting.ddg_noise_multiplier_for_epsilon,
     lambda: dict(target_epsilon=2.0, target_delta=1e-5, sampling_probability=0.1,
                  num_rounds=3),
     {"target_epsilon": POSITIVE, "target_delta": UNIT,
      "sampling_probability": PROBABILITY, "num_rounds": COUNT}),
    ("DistributedDPSecAgg", ddp.DistributedDPSecAgg,
     lambda: dict(clipping_norm=1.0, expected_clients=2.0, noise_multiplier=0.0, scale=None,
                  modulus_bits=32, threshold_fraction=2 / 3, randomness=None),
     {"clipping_norm": POSITIVE, "expected_clients": POSITIVE,
      "noise_multiplier": [*_NUMBERS, math.nan, math.inf, -1.0],
      "scale": [*(x for x in POSITIVE if x is not None), 1e300],
      "modulus_bits": [*COUNT, 63], "threshold_fraction": [*PROBABILITY, 0.5],
      "randomness": [0, np.random.default_rng(0), "secret"]}),
    ("DistributedDPSecAgg.sensitivity",
     lambda dimension: ddp.DistributedDPSecAgg(clipping_norm=1.0, expected_clients=2.0)
     .sensitivity(dimension), lambda: dict(dimension=4),
     {"dimension": [*COUNT, dn.MAX_SIZE + 1]}),
    ("DistributedDPSecAgg.client_variance",
     lambda dimension, num_clients: ddp.DistributedDPSecAgg(
         clipping_norm=1.0, expected_clients=2.0, noise_multiplier=1.0)
     .client_variance(dimension, num_clients), lambda: dict(dimension=4, num_clients=3),
     {"dimension": [*COUNT, dn.MAX_SIZE + 1], "num_clients": [*COUNT, crypto.MAX_CLIENTS + 1]}),
    ("ddg_rho_by_client_count", accounting.ddg_rho_by_client_count,
     lambda: dict(sensitivity=1.0, noise_variance=4.0, max_clients=3, dimension=4),
     {"sensitivity": POSITIVE, "noise_variance": POSITIVE,
      "max_clients": [*COUNT, accounting.MAX_ACCOUNTED_CLIENTS + 1], "dimension": COUNT}),
    ("DistributedDPSecAgg.round_rho",
     lambda dimension, num_clients: ddp.DistributedDPSecAgg(
         clipping_norm=1.0, expected_clients=2.0, noise_multiplier=1.0)
     .round_rho(dimension=dimension, num_clients=num_clients),
     lambda: dict(dimension=4, num_clients=3),
     {"dimension": [*COUNT, dn.MAX_SIZE + 1],
      "num_clients": [*COUNT, accounting.MAX_ACCOUNTED_CLIENTS]}),
    ("DistributedDPSecAgg.dp_event",
     lambda sampling_probability, dimension, num_clients: ddp.DistributedDPSecAgg(
         clipping_norm=1.0, expected_clients=2.0, noise_multiplier=1.0)
     .dp_event(sampling_probability=sampling_probability, dimension=dimension,
               num_clients=num_clients),
     lambda: dict(sampling_probability=0.1, dimension=4, num_clients=3),
     {"sampling_probability": PROBABILITY, "dimension": [*COUNT, dn.MAX_SIZE + 1],
      "num_clients": [*COUNT, accounting.MAX_ACCOUNTED_CLIENTS]}),
    ("run_distributed_dp", ddp.run_distributed_dp, lambda: dict(_RUN_VALID),
     {"model_fn": [None, 3, "softmax", lambda: 3],
      "client_datasets": [None, "abc", 3, [], [(np.zeros((4, 28, 28), np.float32),)]],
      "num_rounds": [None, 0, 1.5, 10**8], "sampling_probability": [None, 0.0, 1.5, math.nan],
      "local_epochs": [None, 0, 1.5], "batch_size": [0, 1.5, "4"],
      "client_learning_rate": [None, 0.0, math.nan], "clipping_norm": [None, 0.0, math.inf],
      "noise_multiplier": [None, 0.0, -1.0, math.nan], "expected_clients": [None, 0.0, -1.0],
      "target_delta": [None, 0.0, 1.0, math.nan], "scale": [0.0, -1.0, 1e300],
      "modulus_bits": [None, 0, 63, 2**64], "server_learning_rate": [None, 0.0, math.inf],
      "test_data": ["ab", 3], "seed": [None, -1, 1.5], "progress": [None, "yes", 2],
      "engine": ["gpu", None, 3], "callback": [3, "f"],
      "randomness": [0, np.random.default_rng(0), "secret"]}),
    ("client_bits", protocol.client_bits,
     lambda: dict(num_clients=3, dimension=4, value_bits=16, key_bits=256, share_bits=256),
     {"num_clients": [*COUNT, 1], "dimension": COUNT, "value_bits": [*COUNT, 1025],
      "key_bits": [*COUNT, 2**16 + 1], "share_bits": [*COUNT, 2**16 + 1]}),
    ("expansion_factor", protocol.expansion_factor,
     lambda: dict(num_clients=3, dimension=4, value_bits=16, key_bits=256, share_bits=256),
     {"num_clients": [*COUNT, 1], "dimension": COUNT, "value_bits": [*COUNT, 1025],
      "key_bits": COUNT, "share_bits": COUNT}),
]


def _bad_cases():
    return [pytest.param(function, valid, argument, value, id=f"{label}-{argument}-{k}")
            for label, function, valid, corrupt in ENTRIES
            for argument, values in corrupt.items() for k, value in enumerate(values)]


@pytest.mark.parametrize("label, function, valid",
                         [(label, f, valid) for label, f, valid, _ in ENTRIES],
                         ids=[e[0] for e in ENTRIES])
def test_valid_calls_succeed(label, function, valid):
    status, result = _run_with_timeout(lambda: function(**valid()))
    assert status == "returned", f"{label}: the valid call {status}: {result!r}"


@pytest.mark.parametrize("function, valid, argument, value", _bad_cases())
def test_bad_input_is_rejected_naming_the_argument(function, valid, argument, value):
    kwargs = valid()
    kwargs[argument] = value
    status, error = _run_with_timeout(lambda: function(**kwargs))
    label = f"{argument}={v._fmt(value)}"
    assert status == "raised", f"{label}: {status}"
    assert isinstance(error, (ValueError, TypeError)), \
        f"{label}: raised {type(error).__name__}: {error}"
    assert argument in str(error), f"{label}: the message does not name it: {error}"


def test_every_public_function_and_class_of_the_module_has_an_entry():
    labels = {label.split(".")[0] for label, *_ in ENTRIES}
    public = {name for module in (crypto, protocol, ddp)
              for name, obj in vars(module).items()
              if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
              and getattr(obj, "__module__", "") == module.__name__}
    # Not entry points: exceptions, the result record.
    exempt = {"ProtocolAbort", "MaskReuseError", "SecureSumResult"}
    assert public - exempt - labels == set()


@pytest.mark.parametrize("bits", [2**64, 10**400], ids=["2**64", "10**400"])
@pytest.mark.parametrize("name", sorted(HUGE_BITS_CALLS))
def test_huge_modulus_bits_raise_instead_of_hanging(name, bits):
    status, error = _run_with_timeout(lambda: HUGE_BITS_CALLS[name](bits))
    assert status == "raised", f"{name}(modulus_bits={v._fmt(bits)}) {status}"
    assert isinstance(error, ValueError)
    assert "modulus_bits must be <= 62" in str(error)
