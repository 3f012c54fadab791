"""Table-driven fuzz of every public function's arguments with bad values.

Every public function of the modules in :data:`MODULES` has one :class:`Entry` in
:data:`REGISTRY`: a valid call, plus, for each argument to corrupt, the families of bad values
that apply to it (:data:`FAMILIES`). For every entry, argument and bad value the test makes the
valid call with that one argument replaced, in a worker thread with a :data:`TIMEOUT` (a guard
against hangs, not a timing assertion); one test per entry runs all of its cases and lists every
case (by its id, ``function-argument-family-index``) that fails on

* silent acceptance (the call returns),
* any exception other than ``ValueError`` / ``TypeError``,
* a message that does not name the argument (and, for a scalar bad value, does not show it:
  ``"epsilon must be > 0, got 0.0."``), as the template of ``STYLE.md`` asks,
* a call still running after :data:`TIMEOUT` seconds.

How to add an entry (e.g. for ``fl_helpers.schedule``):

1. Add the module to :data:`MODULES`; :func:`test_registry_covers_every_public_function` then
   lists its public functions that have no entry yet.
2. For each function append ``Entry(module.function, args=(...), kwargs={...},
   corrupt={"argument": PRESET, ...})`` to :data:`REGISTRY`. ``args``/``kwargs`` must be a call
   that succeeds (:func:`test_valid_calls_succeed` checks it). ``PRESET`` is a tuple of family
   names from :data:`FAMILIES`; the presets below (``POSITIVE``, ``COUNT``, ``PROBABILITY``,
   ...) cover the usual kinds of argument, and a new family is one line in :data:`FAMILIES`.
   Values that only make sense for one function go in ``extra={"argument": [values]}``; where
   the module's own test file keeps a table of them (``FUZZ`` in tests/test_psi.py, ...), each
   of its rows becomes an Entry with its valid call and those values (:func:`_table_entry`).
3. A known failure that belongs to someone else's module gets ``xfail={"argument": "reason
   naming the module"}`` (or ``{("argument", "family"): reason}``) until it is fixed.

The only public functions without an entry are the unchecked internal fast paths listed, each
with its reason, in :data:`UNCHECKED` (``schedule.client_batches_unchecked``: the trainers check
once per run, then call it every round); their checked public versions are fuzzed. Classes are
not required to have entries, but the constructors of the aggregation rules, the server
optimizers, ``client.Evaluator`` and ``client.LoopTrainer`` have them: they are entry points too.

The number of bad inputs tried is printed by :func:`test_print_count`.
"""

from __future__ import annotations

import functools
import inspect
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dp_accounting
import guards
import keras
import numpy as np
import pytest

from fl_helpers import _validation as v
from fl_helpers import (
    accounting,
    aggregation,
    checkpoints,
    client,
    data,
    discrete_noise,
    experiment,
    faults,
    models,
    privacy,
    reporting,
    schedule,
    training,
)

MODULES = (privacy, accounting, data, models, schedule, discrete_noise, aggregation, client,
           faults, checkpoints, training, experiment, reporting)

#: Seconds a single bad call may run before it counts as a hang.
TIMEOUT = 5.0


class _Unprintable:
    def __repr__(self) -> str:
        return "<unprintable>"


# ------------------------------------------------------------------------------- bad values

#: Families of bad values, by name. Scalar families are checked for the value in the message.
FAMILIES: dict[str, list[Any]] = {
    # -- for real-number scalars
    "nan": [math.nan, np.float64("nan")],
    "inf": [math.inf, -math.inf],
    "bool": [True, False, np.bool_(True)],
    "string": ["1", ""],
    "none": [None],
    "complex": [1 + 0j, np.complex128(2j)],
    "container": [[1.0], (1.0,), np.array([1.0, 2.0]), np.array(1.0)],
    "object": [object()],
    "huge_float": [10**400, -(10**400)],  # float() of these raises OverflowError
    "giant_int": [10**5000],  # str() raises ValueError (4300-digit limit): don't print it
    "negative": [-1, -1.0, -1e-300],
    "zero": [0, 0.0],
    "subnormal": [5e-324, 1e-310],  # 1 / 5e-324 overflows
    "one": [1, 1.0],
    "above_one": [1.5, 2],
    "huge_scale": [1e308],
    # -- for integer scalars
    "float_int": [2.0, 1.5, np.float64(3.0)],
    "huge_int": [2**64, 10**400, -(2**64)],  # beyond a C long
    "int_container": [[1], np.array([1, 2]), np.array(1)],
    # -- for numeric arrays
    "array_none": [None],
    "array_string": ["abc", b"abc"],
    "array_nonfinite": [np.array([1.0, np.nan]), [np.inf], np.array([[1.0], [-np.inf]])],
    "array_object": [np.array([object(), 1.0], dtype=object)],
    "array_complex": [np.array([1 + 1j, 2.0])],
    "array_ragged": [[[1.0], [1.0, 2.0]]],
    # -- for label arrays
    "labels_float": [np.array([0.0, 1.0, 2.0])],
    "labels_bool": [np.array([True, False])],
    "labels_shape": [np.zeros((2, 2), dtype=np.int64), np.array(3), 5],
    "labels_empty": [np.array([], dtype=np.int64)],
    # -- for lists of index arrays
    "ids": [[np.array([-1])], [np.array([True, False])], [np.array([1.5])],
            [np.array([10**6])], [np.array([0, 0])], [np.array([[0]])], [], None, "abc",
            np.arange(3), [None]],
    # -- for random generators
    "rng": [0, None, "rng", np.random.RandomState(0), np.random.default_rng],
    "optional_rng": [0, "rng", np.random.RandomState(0), np.random.default_rng],
    # -- for names chosen from a list
    "name": ["moments", "", None, 1, True, ["laplace"], _Unprintable()],
    # -- for names where None means a default
    "optional_name": ["moments", "", 1, True, ["laplace"], _Unprintable()],
    # -- for paths
    "path": [3, 2.5, True, ["data"], b"data", object()],
}

#: Families whose message must show the value (``v._fmt(value)``) as well as the name.
SCALAR_FAMILIES = {"nan", "inf", "bool", "string", "none", "complex", "container", "huge_float",
                   "negative", "zero", "subnormal", "one", "above_one", "huge_scale",
                   "float_int", "huge_int", "giant_int", "int_container"}

_BASE = ("nan", "inf", "bool", "string", "none", "complex", "container", "object", "huge_float",
         "giant_int")
REAL = _BASE
NON_NEGATIVE = (*_BASE, "negative")
POSITIVE = (*NON_NEGATIVE, "zero", "subnormal")
PROBABILITY = (*POSITIVE, "above_one")  # (0, 1]
OPEN_UNIT = (*_BASE, "negative", "zero", "one", "above_one")  # (0, 1)
_INT_BASE = ("float_int", "huge_int", "giant_int", "bool", "string", "none", "complex",
             "int_container", "nan", "inf", "object")
INDEX = (*_INT_BASE, "negative")  # int >= 0
COUNT = (*INDEX, "zero")  # int >= 1
ARRAY = ("array_none", "array_string", "array_nonfinite", "array_object", "array_complex",
         "array_ragged")
BITS = ("array_none", "array_string", "array_object", "labels_float", "labels_shape",
        "labels_empty")  # 1-D arrays of 0s and 1s (booleans allowed)
LABELS = ("array_none", "array_string", "array_object", "labels_float", "labels_bool",
          "labels_shape", "labels_empty")
IDS = ("ids",)
RNG = ("rng",)
NAME = ("name",)
OPTIONAL_NAME = ("optional_name",)  # accountant=None picks the one that bounds the noise
PATH = ("path",)


@dataclass(frozen=True)
class Entry:
    """One public function: a valid call and what to corrupt in it."""

    function: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    corrupt: dict[str, tuple[str, ...]] = field(default_factory=dict)
    extra: dict[str, list[Any]] = field(default_factory=dict)
    xfail: dict[Any, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        name = getattr(self.function, "__qualname__", self.function.__name__)
        return f"{self.function.__module__.rsplit('.', 1)[-1]}.{name}"


X = np.arange(20.0).reshape(10, 2)
Y = np.arange(10)
LABEL_ARRAY = np.repeat(np.arange(10), 10)  # 100 examples
PARTS = [np.array([0, 1, 2]), np.array([5, 9])]
DELTA = 1e-5
ACCOUNTING = {"noise_multiplier": 1.0, "sampling_probability": 0.1, "num_rounds": 10,
              "target_delta": DELTA}
ACCOUNTING_CORRUPT = {"noise_multiplier": (*POSITIVE, "huge_scale"),
                      "sampling_probability": PROBABILITY, "num_rounds": COUNT,
                      "target_delta": (*OPEN_UNIT, "subnormal"), "accountant": NAME}


#: Known failures of whole families in a module, by (module, family).
KNOWN_FAILURES: dict[tuple[str, str], str] = {}


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


REGISTRY: list[Entry] = [
    # ------------------------------------------------------------------ fl_helpers.privacy
    Entry(privacy.laplace_scale, kwargs={"sensitivity": 1.0, "epsilon": 1.0},
          corrupt={"sensitivity": NON_NEGATIVE, "epsilon": POSITIVE}),
    Entry(privacy.laplace_mechanism, args=(1.0,), kwargs={"sensitivity": 1.0, "epsilon": 1.0},
          corrupt={"value": ARRAY, "sensitivity": NON_NEGATIVE, "epsilon": POSITIVE,
                   "randomness": ("randomness",)}),
    Entry(privacy.laplace_mechanism_spec, kwargs={"sensitivity": 1.0, "epsilon": 1.0, "size": 3},
          corrupt={"sensitivity": POSITIVE, "epsilon": POSITIVE, "size": COUNT}),
    Entry(privacy.classic_gaussian_sigma,
          kwargs={"sensitivity": 1.0, "epsilon": 0.5, "delta": DELTA},
          corrupt={"sensitivity": NON_NEGATIVE, "epsilon": POSITIVE, "delta": OPEN_UNIT}),
    Entry(privacy.gaussian_delta, kwargs={"sigma": 1.0, "sensitivity": 1.0, "epsilon": 1.0},
          corrupt={"sigma": POSITIVE, "sensitivity": NON_NEGATIVE, "epsilon": NON_NEGATIVE}),
    Entry(privacy.gaussian_sigma, kwargs={"sensitivity": 1.0, "epsilon": 1.0, "delta": DELTA},
          corrupt={"sensitivity": NON_NEGATIVE, "epsilon": POSITIVE, "delta": OPEN_UNIT}),
    Entry(privacy.gaussian_mechanism, args=(np.array([1.0, 2.0]),),
          kwargs={"sensitivity": 1.0, "epsilon": 1.0, "delta": DELTA},
          corrupt={"value": ARRAY, "sensitivity": NON_NEGATIVE, "epsilon": POSITIVE,
                   "delta": OPEN_UNIT, "randomness": ("randomness",)}),
    Entry(privacy.gaussian_mechanism_spec,
          kwargs={"sensitivity": 1.0, "epsilon": 1.0, "delta": DELTA, "size": 2},
          corrupt={"sensitivity": POSITIVE, "epsilon": POSITIVE, "delta": OPEN_UNIT,
                   "size": COUNT}),
    Entry(privacy.grid_granularity, kwargs={"sensitivity": 1.0},
          corrupt={"sensitivity": POSITIVE}),
    Entry(privacy.zcdp_delta, kwargs={"rho": 0.5, "epsilon": 1.0},
          corrupt={"rho": POSITIVE, "epsilon": NON_NEGATIVE}),
    Entry(privacy.clip_by_l2_norm, args=(np.array([3.0, 4.0]), 1.0),
          # (a ragged list is valid here: one array per layer)
          corrupt={"tensors": ARRAY[:-1], "clipping_norm": POSITIVE}),
    Entry(privacy.noise_scale, args=("gaussian",),
          kwargs={"sensitivity": 1.0, "epsilon": 1.0, "delta": DELTA},
          corrupt={"mechanism": NAME, "sensitivity": NON_NEGATIVE, "epsilon": POSITIVE,
                   "delta": OPEN_UNIT}),
    Entry(privacy.noise_pdf, args=(np.linspace(-1, 1, 5), "gaussian"),
          kwargs={"sensitivity": 1.0, "epsilon": 1.0, "delta": DELTA},
          corrupt={"x": ARRAY, "mechanism": NAME, "sensitivity": POSITIVE,
                   "epsilon": POSITIVE, "delta": OPEN_UNIT}),
    Entry(privacy.expected_absolute_error, args=("gaussian",),
          kwargs={"sensitivity": 1.0, "epsilon": 1.0, "delta": DELTA},
          corrupt={"mechanism": NAME, "sensitivity": NON_NEGATIVE, "epsilon": POSITIVE,
                   "delta": OPEN_UNIT}),
    Entry(privacy.error_interval_half_width, args=("gaussian",),
          kwargs={"sensitivity": 1.0, "epsilon": 1.0, "delta": DELTA, "level": 0.95},
          corrupt={"mechanism": NAME, "sensitivity": NON_NEGATIVE, "epsilon": POSITIVE,
                   "delta": OPEN_UNIT, "level": OPEN_UNIT}),
    Entry(privacy.noisy_answer_summary, args=(10.0, "gaussian"),
          kwargs={"sensitivity": 1.0, "epsilon": 1.0, "delta": DELTA},
          corrupt={"true_answer": REAL, "mechanism": NAME, "sensitivity": NON_NEGATIVE,
                   "epsilon": POSITIVE, "delta": OPEN_UNIT}),
    Entry(privacy.mironov_impossible_outputs, args=(np.zeros(5),),
          kwargs={"other_input": 1.0, "sensitivity": 1.0, "epsilon": 1.0, "sampler": "naive"},
          corrupt={"outputs": ARRAY, "other_input": REAL, "sensitivity": POSITIVE,
                   "epsilon": POSITIVE, "sampler": NAME}),
    Entry(privacy.randomized_response_epsilon, kwargs={"truth_probability": 0.75},
          corrupt={"truth_probability": OPEN_UNIT}, extra={"truth_probability": [0.5, 0.3]}),
    Entry(privacy.randomized_response, args=(np.array([0, 1, 1]),),
          kwargs={"truth_probability": 0.75},
          corrupt={"answers": BITS, "truth_probability": OPEN_UNIT,
                   "randomness": ("randomness",)},
          extra={"answers": [np.array([0, 2]), [-1]], "truth_probability": [0.5]}),
    Entry(privacy.randomized_response_estimate, args=(np.array([0, 1, 1]),),
          kwargs={"truth_probability": 0.75},
          corrupt={"reports": BITS, "truth_probability": OPEN_UNIT},
          extra={"reports": [np.array([0, 2])], "truth_probability": [0.5]}),
    Entry(privacy.group_privacy, kwargs={"epsilon": 1.0, "delta": DELTA, "group_size": 3},
          corrupt={"epsilon": NON_NEGATIVE, "delta": (*NON_NEGATIVE, "one", "above_one"),
                   "group_size": COUNT},
          extra={"epsilon": [1e308]}),
    Entry(privacy.exponential_mechanism, args=(np.array([1.0, 3.0, 2.0]),),
          kwargs={"sensitivity": 1.0, "epsilon": 1.0},
          corrupt={"scores": ARRAY, "sensitivity": POSITIVE, "epsilon": POSITIVE,
                   "randomness": ("randomness",)},
          extra={"scores": [np.array([]), np.ones((2, 2))]}),
    Entry(privacy.exponential_mechanism_probabilities, args=(np.array([1.0, 3.0, 2.0]),),
          kwargs={"sensitivity": 1.0, "epsilon": 1.0},
          corrupt={"scores": ARRAY, "sensitivity": POSITIVE, "epsilon": POSITIVE},
          extra={"scores": [np.array([]), np.ones((2, 2))]}),
    Entry(privacy.private_quantile, args=(np.array([1.0, 2.0, 5.0]),),
          kwargs={"quantile": 0.5, "candidates": np.linspace(0.0, 6.0, 7), "epsilon": 1.0},
          corrupt={"values": ARRAY, "quantile": OPEN_UNIT, "candidates": ARRAY,
                   "epsilon": POSITIVE, "randomness": ("randomness",)},
          extra={"values": [np.array([])], "candidates": [np.array([1.0, 1.0]),
                                                          np.array([2.0, 1.0]), np.array([])]}),
    # ---------------------------------------------------------------- fl_helpers.accounting
    Entry(accounting.dp_fedavg_epsilon, kwargs=ACCOUNTING, corrupt=ACCOUNTING_CORRUPT,
          extra={"noise_multiplier": [1e300, accounting.MAX_ACCOUNTED_NOISE_MULTIPLIER * 2]}),
    Entry(accounting.epsilon_per_round, kwargs=ACCOUNTING, corrupt=ACCOUNTING_CORRUPT,
          extra={"num_rounds": [accounting.MAX_NUM_ROUNDS + 1, 2**62]}),
    Entry(accounting.laplace_epsilon_per_release,
          kwargs={"epsilon": 0.5, "num_releases": 10, "target_delta": DELTA},
          corrupt={"epsilon": POSITIVE, "num_releases": COUNT,
                   "target_delta": (*OPEN_UNIT, "subnormal"), "accountant": NAME},
          extra={"num_releases": [accounting.MAX_NUM_ROUNDS + 1]}),
    Entry(accounting.noise_multiplier_for_epsilon,
          kwargs={"target_epsilon": 2.0, "target_delta": DELTA, "sampling_probability": 0.1,
                  "num_rounds": 30, "rtol": 1e-3},
          corrupt={"target_epsilon": (*POSITIVE, "huge_scale"),
                   "target_delta": (*OPEN_UNIT, "subnormal"),
                   "sampling_probability": PROBABILITY, "num_rounds": COUNT,
                   "rtol": (*OPEN_UNIT, "subnormal"), "accountant": NAME},
          # Unreachable precision (used to hang) and unreachable budgets.
          extra={"rtol": [1e-16, 1e-9], "target_epsilon": [1e-6, 1e9]}),
    Entry(accounting.check_accountant, args=("pld",), corrupt={"accountant": NAME}),
    # None is a valid accountant here (the default: the one that bounds the noise).
    Entry(accounting.accountant_for_noise, args=(None, "exact"),
          extra={"accountant": ["moments", "", 1, True, ["laplace"], "pld", "rdp"],
                 "noise": ["", "exactly", None, 1, True, ["exact"]]}),
    Entry(accounting.sampled_discrete_gaussian_rdp,
          kwargs={"noise_multiplier": 1.5, "sampling_probability": 0.1},
          corrupt={"noise_multiplier": (*POSITIVE, "huge_scale"),
                   "sampling_probability": PROBABILITY}),
    Entry(accounting.check_sampling_probability, args=(0.1,),
          corrupt={"sampling_probability": PROBABILITY}),
    # ---------------------------------------------------------------------- fl_helpers.data
    Entry(data.default_data_dir),
    Entry(data.load_mnist, kwargs={"data_dir": None}, corrupt={"data_dir": PATH}),
    Entry(data.partition_iid, args=(100, 5), kwargs={"rng": _rng()},
          corrupt={"num_examples": COUNT, "num_clients": COUNT, "rng": RNG},
          extra={"num_clients": [101], "num_examples": [2**40]}),
    Entry(data.partition_shards, args=(LABEL_ARRAY, 5),
          kwargs={"shards_per_client": 2, "rng": _rng()},
          corrupt={"labels": LABELS, "num_clients": COUNT, "shards_per_client": COUNT,
                   "rng": RNG},
          extra={"num_clients": [101, 3]}),
    Entry(data.partition_dirichlet, args=(LABEL_ARRAY, 5), kwargs={"alpha": 1.0, "rng": _rng()},
          corrupt={"labels": LABELS, "num_clients": COUNT, "alpha": (*POSITIVE, "huge_scale"),
                   "rng": RNG},
          extra={"num_clients": [101]}),
    Entry(data.client_datasets, args=(X, Y, PARTS),
          corrupt={"x": ARRAY[:2] + ("array_object", "array_ragged"),
                   "y": ARRAY[:2] + ("array_object", "array_ragged"), "partitions": IDS},
          extra={"x": [X[:9]], "y": [Y[:0]]}),
    Entry(data.label_counts, args=(Y, PARTS), kwargs={"num_classes": 10},
          corrupt={"labels": LABELS, "partitions": IDS, "num_classes": COUNT},
          extra={"num_classes": [5, 2**40]}),
    Entry(data.heart_disease_dir),
    Entry(data.hospital_name, args=(0,),
          corrupt={"hospital": ("float_int", "huge_int", "bool", "none", "complex",
                                "int_container", "negative", "object")},
          extra={"hospital": [4, "mayo", "", "Cleveland"]}),
    Entry(data.load_heart_disease, args=(0,), kwargs={"data_dir": None},
          corrupt={"hospital": ("float_int", "huge_int", "bool", "none", "negative"),
                   "data_dir": PATH},
          extra={"hospital": [4, "mayo"]}),
    # -------------------------------------------------------------------- fl_helpers.models
    *(Entry(factory, kwargs={"seed": 0}, corrupt={"seed": INDEX})
      for factory in (models.make_softmax_regression, models.make_2nn, models.make_cnn)),
    Entry(models.make_mlp, args=((8,),),
          kwargs={"activation": "tanh", "input_shape": (4, 4), "seed": 0},
          corrupt={"seed": INDEX, "activation": NAME},
          extra={"hidden_units": [8, "8", None, (0,), (8.5,), (10**6,), (8,) * 9],
                 "input_shape": [(), 16, "4x4", (0, 4), (4.0, 4), (10**5, 10**5)]}),
    Entry(data.downsample, args=(np.zeros((2, 4, 4), np.float32), 2),
          corrupt={"images": ARRAY[:2] + ("array_nonfinite", "array_object", "array_ragged"),
                   "factor": COUNT},
          extra={"images": [np.zeros((4, 4), np.float32), np.zeros((2, 4, 4), np.int64)],
                 "factor": [3]}),
]


# ===================================================== the modules of the new architecture
# Tiny valid calls: softmax regression, 3 clients of 10 MNIST-shaped random examples, 1 round.

_DATA_RNG = np.random.default_rng(0)


def _images(count: int) -> np.ndarray:
    return _DATA_RNG.random((count, *models.INPUT_SHAPE), dtype=np.float32)


def _labels(count: int) -> np.ndarray:
    return np.arange(count, dtype=np.int64) % 10


MODEL = models.make_softmax_regression(seed=0)
MODEL_FN = functools.partial(models.make_softmax_regression, seed=0)
WEIGHTS = MODEL.get_weights()
CX, CY = _images(10), _labels(10)
DATASETS = [(_images(10), _labels(10)) for _ in range(3)]
TEST_DATA = (_images(10), _labels(10))
MNIST = ((_images(60), _labels(60)), (_images(10), _labels(10)))


def _history(**changes: Any) -> training.DPHistory:
    fields = {"rounds": np.array([1, 2]), "test_accuracy": np.array([0.5, 0.6]),
              "test_loss": np.array([1.2, 1.1]), "final_weights": WEIGHTS,
              "seconds_per_round": np.array([0.1, 0.1]), "engine": training.Engine.LOOP,
              "aggregation": "DP-FedAvg", "epsilon": np.array([0.8, 1.0]),
              "noise_multiplier": 1.0, "clipping_norm": 0.5, "sampling_probability": 1.0,
              "target_delta": DELTA}
    return training.DPHistory(**{**fields, **changes})


# A result as run_experiment makes it (its config keys), built by hand: reporting only reads it.
HISTORY = _history()
RESULT = experiment.ExperimentResult(
    config={"privacy": experiment.Privacy.CENTRAL_DP, "num_clients": 3,
            "sampling_probability": 1.0, "expected_clients_per_round": 3.0, "num_rounds": 2,
            "target_epsilon": None, "noise_multiplier": 1.0, "target_delta": DELTA,
            "clipping_norm": 0.5, "model": "softmax_regression", "local_epochs": 1,
            "batch_size": 5, "client_learning_rate": 0.1, "server_learning_rate": 1.0,
            "seed": 0, "engine": "loop", "accountant": "pld", "reproducible_noise": False},
    history=HISTORY, accountant_seconds=0.0, total_seconds=0.2)
NON_DP_HISTORY = training.History(
    rounds=np.array([1]), test_accuracy=np.array([0.5]), test_loss=np.array([1.0]),
    final_weights=WEIGHTS, seconds_per_round=np.array([0.1]), engine=training.Engine.LOOP,
    aggregation="FedAvg")


FAMILIES.update({
    # -- for booleans (flags)
    "flag": [1, 0, "yes", None, 1.0, [True]],
    # -- for argument names in messages
    "arg_name": [None, 1, True, b"x", ["x"]],
    # -- for Keras models
    "model": [None, "softmax_regression", 3, object(), models.make_softmax_regression,
              keras.layers.Dense(2)],
    # -- for functions that build a model
    "model_fn": [None, 3, "softmax_regression", object(), MODEL, lambda: 3],
    # -- for callbacks and hooks (None is allowed by every caller)
    "callable": [3, "print", object(), [print]],
    # -- for per-layer weights of MODEL
    "weights": ["abc", 3, [], WEIGHTS[:1], WEIGHTS[0], [w.T for w in WEIGHTS],
                [np.full_like(w, np.nan) for w in WEIGHTS],
                [w.astype(np.complex64) for w in WEIGHTS], [w.astype(object) for w in WEIGHTS],
                [w.astype(bool) for w in WEIGHTS], [*WEIGHTS, WEIGHTS[1]], {0: WEIGHTS[0]}],
    # -- for inputs x of MODEL
    "images": [None, "abc", 3, CX[:, :5], CX.reshape(10, -1), CX[0], np.zeros((0, 28, 28)),
               np.where(CX > 0.5, np.nan, CX), CX.astype(np.complex64), CX.astype(object),
               CX > 0.5, [[[1.0], [1.0, 2.0]]]],
    # -- for labels y of MODEL (10 classes)
    "model_labels": [None, "abc", CY.astype(float), CY > 4, CY[:5], CY.reshape(2, 5),
                     np.array(3), CY + 10, -CY - 1, CY.astype(object), [[0], [0, 1]]],
    # -- for lists of (x, y) pairs
    "datasets": [None, "abc", 3, [], DATASETS[0], np.zeros((3, 2)), [DATASETS[0][0]],
                 [(CX,)], [(CX, CY, CY)], [(CX, CY[:5])], [(CX.astype(np.complex64), CY)],
                 [(CX, CY + 10)], [(np.where(CX > 0.5, np.inf, CX), CY)], {0: (CX, CY)},
                 [(CX[:0], CY[:0])], [(CX.reshape(10, -1), CY)]],
    # -- for one (x, y) pair (None is allowed by every caller but check_pair)
    "pair": ["ab", 3, CX, (CX,), (CX, CY, CY), [CX], (CX, CY[:5]), (CX, CY + 10),
             (CX.astype(object), CY), {"x": CX, "y": CY}],
    # -- for client seeds
    "client_seed": [-1, 1.5, True, None, "7", [], [1, -2], [1, 2.5], b"ab", 2**128,
                    np.zeros((2, 2), dtype=int), [True], 10**5000],
    # -- for lists of index arrays into 10 examples (run_sgd's batches)
    "batches": [None, "abc", 3, [], np.arange(3), [np.array([-1])], [np.array([10])],
                [np.array([1.5])], [np.array([True, False])], [np.array([], dtype=int)],
                [np.array([[0]])], [None], [[0, 1], [1.5]]],
    # -- for one round's client ids (3 clients; an empty round is allowed)
    "client_ids": [[-1], [3], [0, 0], [True, False], [1.5], np.array([0.0]), [[0]], None,
                   "abc", 3, [None], [10**30]],
    # -- for schedules: one array of distinct client ids (of 3) per round
    "schedule": [None, "abc", 3, np.arange(3), [np.array([-1])], [np.array([3])],
                 [np.array([0, 0])], [np.array([True, False])], [np.array([1.5])],
                 [np.array([[0]])], [None]],
    # -- for lists of array shapes
    "shapes": [None, "abc", 3, (2, 3), [(2, -1)], [(2.5,)], [(True,)], [None], [(2**64,)],
               [("a",)], [[2, 3], 4], [(2**40, 2**40)]],
    # -- for report counts per round (non-decreasing integers >= 0)
    "counts": [None, "abc", np.array([1.5]), np.array([-1]), np.array([True]),
               np.array([[1]]), np.array([2, 1]), np.array([1, np.nan]), [1, "a"],
               np.array([10**8])],
    # -- for aggregation rules, server optimizers, randomness and results
    "rule": [3, "FedAvg", object(), aggregation.FedAvg, aggregation.ServerSGD()],
    "server_optimizer": [3, "adam", object(), aggregation.ServerAdam, aggregation.FedAvg()],
    "randomness": [0, "secret", object(), schedule.PrivateRandomness,
                   np.random.default_rng(0)],
    "placement": ["moments", "", None, 1, True, ["central"], _Unprintable()],
    "result": [None, "result", 3, object(), HISTORY, {"config": {}}],
    "history": [None, "history", 3, object(), RESULT, NON_DP_HISTORY,
                _history(target_delta=None, epsilon=np.zeros(0))],
    "mnist": ["mnist", 3, (MNIST[0],), (MNIST[0], MNIST[1], MNIST[1]), MNIST[0][0],
              ((MNIST[0][0],), MNIST[1]), ((MNIST[0][0], MNIST[0][1][:5]), MNIST[1]),
              ((MNIST[0][0], MNIST[0][1].astype(float)), MNIST[1]),
              ((MNIST[0][0].astype(object), MNIST[0][1]), MNIST[1]),
              ((np.where(MNIST[0][0] > 0.5, np.nan, MNIST[0][0]), MNIST[0][1]), MNIST[1]),
              (MNIST[0], (MNIST[1][0], MNIST[1][1][:5])), (MNIST[0], None)],
    "json_value": [1 + 0j, np.complex128(2j), object(), [1.0], (1.0,), np.array([1.0, 2.0]),
                   np.array(1.0), {"a": 1}, b"bytes"],
})
SCALAR_FAMILIES |= {"flag"}


def _without(preset: tuple[str, ...], *families: str) -> tuple[str, ...]:
    """``preset`` without ``families`` (e.g. without "none" where ``None`` is allowed)."""
    return tuple(family for family in preset if family not in families)


FLAG = ("flag",)
CALLABLE = ("callable",)
WEIGHT_LIST = ("weights", "none")  # where None is not allowed
OPTIONAL_COUNT = _without(COUNT, "none")  # batch_size: None means full batch
LOCAL = {"local_epochs": 1, "batch_size": 5, "client_learning_rate": 0.1}
LOCAL_CORRUPT = {"local_epochs": COUNT, "batch_size": OPTIONAL_COUNT,
                 "client_learning_rate": POSITIVE}
FAULTS_CORRUPT = {"client_hook": CALLABLE, "deadline_seconds": _without(POSITIVE, "none"),
                  "checkpoint": PATH, "checkpoint_every": COUNT}
# Paths that are strings but where no checkpoint can be written or read.
BAD_CHECKPOINTS = ["", "/", "/no/such/folder/run.npz"]
MAX_EPOCHS = [10**6 + 1, 2**62]  # more epochs than any run can take (used to hang)

#: Public functions left out of the fuzz, with the reason. Only unchecked internal fast paths
#: belong here: functions whose docstring says they trust their inputs, called by trainers that
#: checked them once at their own entry point.
UNCHECKED: dict[Callable[..., Any], str] = {
    schedule.client_batches_unchecked: (
        "schedule.client_batches without the checks, for the trainers (client.LoopTrainer, "
        "engine.MultiClientEngine) that checked their arguments once per run; the checked "
        "public version, schedule.client_batches, is fuzzed"),
    schedule.gaussian_noise_unchecked: (
        "schedule.gaussian_noise without the checks, for aggregation.DPFedAvg, which checked "
        "its stddev once at construction and draws noise every round; the checked public "
        "version, schedule.gaussian_noise, is fuzzed"),
    privacy.l2_norm_unchecked: (
        "the course's one L2 norm without checks, called by privacy.clip_by_l2_norm, "
        "aggregation.update_norm and attacks.clip_and_noise after their own checks; those "
        "checked entry points are fuzzed"),
}
#: The checked version of an unchecked fast path whose name is not the fast path's without
#: ``_unchecked`` in the same module.
CHECKED_VERSION: dict[Callable[..., Any], Callable[..., Any]] = {
    privacy.l2_norm_unchecked: aggregation.update_norm,
}

REGISTRY += [
    # --------------------------------------------------------------------- fl_helpers.schedule
    # --------------------------------------------------------------- fl_helpers.discrete_noise
    Entry(discrete_noise.exact_variance_at_least, args=(100.0,),
          corrupt={"variance": (*POSITIVE, "huge_scale")}, extra={"variance": [1e16]}),
    Entry(discrete_noise.discrete_gaussian, args=(100, 5),
          kwargs={"randomness": schedule.PrivateRandomness.reproducible(0, warn=False),
                  "round_index": None},
          corrupt={"variance": COUNT, "size": INDEX, "round_index": _without(INDEX, "none")},
          extra={"variance": [discrete_noise.MAX_VARIANCE + 1, 10**16],
                 "size": [discrete_noise.MAX_SIZE + 1],
                 "randomness": [None, 0, "secret", object(), np.random.default_rng(0)]}),
    Entry(discrete_noise.discrete_gaussian_pmf, args=(np.arange(3), 4.0),
          corrupt={"values": ARRAY, "variance": POSITIVE}, extra={"values": [[0.5], [2**60]]}),
    Entry(discrete_noise.clip_to_integer_grid, args=(np.ones((2, 3)),),
          kwargs={"clipping_norm": 1.0, "steps": 16},
          corrupt={"clipping_norm": POSITIVE, "steps": COUNT},
          extra={"updates": [None, "x", np.ones(3), np.full((2, 2), np.nan), [[1, 2], [3]]],
                 "steps": [2**25]}),
    Entry(discrete_noise.integer_outer_sum, args=([(np.ones((2, 3)), np.ones((2, 2)))],),
          kwargs={"clipping_norm": 1.0, "steps": 16},
          corrupt={"clipping_norm": POSITIVE, "steps": COUNT},
          extra={"layers": [None, "x", [], [(np.ones((2, 3)),)], [(np.ones(3), np.ones(2))],
                            [(np.ones((2, 3)), np.ones((3, 2)))],
                            [(np.full((2, 3), np.nan), np.ones((2, 2)))]],
                 "steps": [8, 2**28]}),
    Entry(schedule.client_batches, args=(10,), kwargs={"local_epochs": 2, "batch_size": 3,
                                                        "rng": _rng()},
          corrupt={"num_examples": COUNT, "local_epochs": COUNT, "batch_size": OPTIONAL_COUNT,
                   "rng": RNG},
          extra={"local_epochs": MAX_EPOCHS, "num_examples": [2**62]}),
    Entry(schedule.check_batch_size, args=(5,), corrupt={"batch_size": OPTIONAL_COUNT}),
    Entry(schedule.check_local_epochs, args=(3,), kwargs={"num_examples": 10},
          corrupt={"local_epochs": COUNT, "num_examples": COUNT},
          extra={"local_epochs": [*MAX_EPOCHS, schedule.MAX_BATCH_INDICES // 10 + 1]}),
    Entry(schedule.client_seed, args=(0, 1, 2),
          corrupt={"seed": INDEX, "round_index": INDEX, "client": INDEX}),
    Entry(schedule.public_rng, args=(0, "attack noise", (1, 2)),
          corrupt={"seed": INDEX, "stream": NAME},
          extra={"indices": [None, 3, "ab", (-1,), (1.5,), (True,), [None], (10**30,)]}),
    Entry(schedule.sample_clients, args=(5, 2), kwargs={"seed": 0, "round_index": 1},
          corrupt={"num_clients": COUNT, "clients_per_round": COUNT, "seed": INDEX,
                   "round_index": INDEX},
          extra={"clients_per_round": [6]}),
    Entry(schedule.sample_clients_poisson, args=(5,),
          kwargs={"sampling_probability": 0.5, "rng": _rng()},
          corrupt={"num_clients": COUNT, "sampling_probability": PROBABILITY, "rng": RNG}),
    Entry(schedule.busiest_client_counts, args=([np.array([0, 2]), np.array([1])], 3),
          corrupt={"schedule": ("schedule",), "num_clients": COUNT}, extra={"num_clients": [2]}),
    Entry(schedule.gaussian_noise, args=([(2, 3), (4,)],), kwargs={"stddev": 0.5, "rng": _rng()},
          corrupt={"shapes": ("shapes",), "stddev": (*NON_NEGATIVE, "huge_scale"), "rng": RNG}),
    Entry(schedule.resolve_randomness, args=(None,),
          extra={"randomness": [0, "secret", object(), schedule.PrivateRandomness,
                                np.random.default_rng(0)]}),
    Entry(schedule.warn_reproducible, args=(0, "the noise"),
          corrupt={"seed": INDEX, "what": ("arg_name",)}),
    # ------------------------------------------------------------------ fl_helpers.aggregation
    Entry(aggregation.warn_float_noise),
    Entry(aggregation.fedavg, args=([WEIGHTS, WEIGHTS], [10, 20]),
          corrupt={"client_weights": WEIGHT_LIST, "num_examples": ARRAY},
          extra={"num_examples": [[10], [10, 0], [10, -1], [10, True], "ab", 3, None],
                 "client_weights": [[WEIGHTS, WEIGHTS[:1]], [WEIGHTS, [w.T for w in WEIGHTS]],
                                    [WEIGHTS, [np.full_like(w, np.nan) for w in WEIGHTS]]]}),
    # (Any list of numeric arrays has a size in bytes: only malformed lists are bad here.)
    Entry(aggregation.fedavg_bytes_per_round, args=(WEIGHTS, 3),
          corrupt={"clients_per_round": COUNT},
          extra={"weights": [None, "abc", 3, [], WEIGHTS[0], {0: WEIGHTS[0]}, [None],
                             [w.astype(object) for w in WEIGHTS], [w > 0 for w in WEIGHTS]]}),
    Entry(aggregation.DPFedAvg,
          kwargs={"clipping_norm": 1.0, "noise_multiplier": 1.0, "expected_clients": 3.0,
                  "placement": aggregation.NoisePlacement.CENTRAL, "noise": "exact"},
          corrupt={"clipping_norm": (*POSITIVE, "huge_scale"),
                   "noise_multiplier": (*NON_NEGATIVE, "huge_scale"),
                   "expected_clients": POSITIVE, "placement": ("placement",), "noise": NAME,
                   "clip_on": NAME},
          extra={"noise_multiplier": [1e6], "clip_on": [None, ["client"]]}),
    Entry(aggregation.check_noise, args=("exact",), corrupt={"noise": NAME}),
    # Adaptive clipping (issue 28): the private quantile estimate and the geometric update.
    Entry(aggregation.geometric_clipping_update, args=(1.0,),
          kwargs={"unclipped_fraction": 0.6, "target_quantile": 0.5, "learning_rate": 0.2},
          corrupt={"clipping_norm": POSITIVE, "unclipped_fraction": REAL,
                   "target_quantile": OPEN_UNIT, "learning_rate": POSITIVE},
          extra={"unclipped_fraction": [1e300, -1e300]}),
    Entry(aggregation.noised_unclipped_fraction, args=(np.array([0.5, 1.5, 2.0]),),
          kwargs={"clipping_norm": 1.0, "count_stddev": 1.0, "expected_clients": 3.0,
                  "randomness": schedule.PrivateRandomness.reproducible(0, warn=False)},
          corrupt={"update_norms": ARRAY, "clipping_norm": POSITIVE,
                   "count_stddev": NON_NEGATIVE, "expected_clients": POSITIVE},
          extra={"update_norms": [np.array([-1.0]), np.zeros((2, 2))],
                 "randomness": [None, "abc", np.random.default_rng(0)]}),
    Entry(accounting.adaptive_clipping_update_noise_multiplier,
          kwargs={"noise_multiplier": 1.0, "count_stddev": 5.0},
          corrupt={"noise_multiplier": NON_NEGATIVE, "count_stddev": POSITIVE},
          extra={"noise_multiplier": [10.0, 1e300]}),
    Entry(aggregation.NormBounded, args=(aggregation.FedAvg(),), kwargs={"clipping_norm": 1.0},
          corrupt={"rule": ("rule",), "clipping_norm": POSITIVE}),
    Entry(aggregation.ServerSGD, args=(0.5,), kwargs={"momentum": 0.9},
          corrupt={"server_learning_rate": POSITIVE,
                   "momentum": (*NON_NEGATIVE, "one", "above_one")}),
    Entry(aggregation.ExponentialAverage, args=(aggregation.ServerSGD(),),
          kwargs={"decay": 0.9},
          corrupt={"optimizer": ("server_optimizer",),
                   "decay": (*NON_NEGATIVE, "one", "above_one")}),
    Entry(aggregation.ServerAdam, args=(0.01,),
          kwargs={"beta_1": 0.9, "beta_2": 0.99, "tau": 1e-3},
          corrupt={"server_learning_rate": POSITIVE,
                   "beta_1": (*NON_NEGATIVE, "one", "above_one"),
                   "beta_2": (*NON_NEGATIVE, "one", "above_one"), "tau": POSITIVE}),
    # ----------------------------------------------------------------------- fl_helpers.client
    Entry(client.check_model, args=(MODEL,), corrupt={"model": ("model",)}),
    Entry(client.num_outputs, args=(MODEL,), corrupt={"model": ("model",)}),
    Entry(client.check_dataset, args=(MODEL, CX, CY), kwargs={"name_x": "x", "name_y": "y"},
          corrupt={"model": ("model",), "x": ("images",), "y": ("model_labels",),
                   "name_x": ("arg_name",), "name_y": ("arg_name",)}),
    Entry(client.check_seed, args=([0, 1, 2],), corrupt={"seed": ("client_seed",)}),
    Entry(client.check_weights, args=(MODEL, WEIGHTS, "weights"),
          corrupt={"model": ("model",), "weights": WEIGHT_LIST, "name": ("arg_name",)}),
    Entry(client.run_sgd, args=(MODEL, CX, CY, [np.arange(5), np.arange(5, 10)]),
          kwargs={"learning_rate": 0.1},
          corrupt={"model": ("model",), "x": ("images",), "y": ("model_labels",),
                   "batches": ("batches",), "learning_rate": POSITIVE}),
    Entry(client.client_update, args=(MODEL, WEIGHTS, CX, CY), kwargs={**LOCAL, "seed": [0, 1]},
          corrupt={"model": ("model",), "global_weights": WEIGHT_LIST, "x": ("images",),
                   "y": ("model_labels",), **LOCAL_CORRUPT, "seed": ("client_seed",)},
          extra={"local_epochs": MAX_EPOCHS}),
    Entry(client.sgd_loss_curve, args=(MODEL, WEIGHTS, CX, CY),
          kwargs={**LOCAL, "seed": 0, "evaluations_per_epoch": 2},
          corrupt={"model": ("model",), "initial_weights": WEIGHT_LIST, "x": ("images",),
                   "y": ("model_labels",), **LOCAL_CORRUPT, "seed": ("client_seed",),
                   "evaluations_per_epoch": COUNT},
          extra={"local_epochs": MAX_EPOCHS, "evaluations_per_epoch": [2**62]}),
    Entry(client.evaluate, args=(MODEL, WEIGHTS, CX, CY), kwargs={"batch_size": 4},
          corrupt={"model": ("model",), "weights": ("weights",),
                   "x": ("images",), "y": ("model_labels",), "batch_size": COUNT}),
    Entry(client.check_datasets, args=(MODEL, DATASETS), kwargs={"name": "client_datasets"},
          corrupt={"model": ("model",), "datasets": ("datasets",), "name": ("arg_name",)}),
    Entry(client.check_pair, args=(MODEL, TEST_DATA, "test_data"),
          corrupt={"model": ("model",), "data": ("pair",), "name": ("arg_name",)},
          extra={"data": [None]}),
    Entry(client.Evaluator, args=(MODEL, CX, CY),
          corrupt={"model": ("model",), "x": ("images",), "y": ("model_labels",)}),
    Entry(client.LoopTrainer, args=(MODEL, DATASETS), kwargs={**LOCAL, "seed": 0},
          corrupt={"model": ("model",), "client_datasets": ("datasets",), **LOCAL_CORRUPT,
                   "seed": INDEX},
          extra={"local_epochs": MAX_EPOCHS}),
    # --------------------------------------------------------------------- fl_helpers.training
    Entry(training.run_fedavg, args=(MODEL_FN, DATASETS),
          kwargs={"num_rounds": 1, "clients_per_round": 2, **LOCAL, "test_data": TEST_DATA,
                  "seed": 0, "progress": False, "engine": "loop", "initial_weights": WEIGHTS,
                  "aggregation_rule": aggregation.FedAvg(),
                  "server_optimizer": aggregation.ServerSGD(), "callback": lambda figures: None,
                  "diagnostics": False, "client_hook": None, "deadline_seconds": 10.0,
                  "checkpoint": None, "checkpoint_every": 1},
          corrupt={"model_fn": ("model_fn",), "client_datasets": ("datasets",),
                   "num_rounds": COUNT, "clients_per_round": COUNT, **LOCAL_CORRUPT,
                   "test_data": ("pair",), "seed": INDEX, "progress": FLAG, "engine": NAME,
                   "initial_weights": ("weights",),
                   "aggregation_rule": ("rule",), "server_optimizer": ("server_optimizer",),
                   "callback": CALLABLE, "diagnostics": FLAG, **FAULTS_CORRUPT},
          extra={"clients_per_round": [4], "num_rounds": [10**7 + 1],
                 "local_epochs": MAX_EPOCHS, "checkpoint": BAD_CHECKPOINTS,
                 "callback": [lambda: None], "client_hook": [lambda: None],
                 "client_algorithm": [3, "fedprox", object(), aggregation.FedAvg()]}),
]
REGISTRY += [
    Entry(training.run_dp_fedavg, args=(MODEL_FN, DATASETS),
          kwargs={"num_rounds": 1, "sampling_probability": 1.0, **LOCAL, "clipping_norm": 1.0,
                  "noise_multiplier": 1.0, "server_learning_rate": 1.0, "test_data": TEST_DATA,
                  "seed": 0, "progress": False, "target_delta": DELTA, "target_epsilon": 50.0,
                  "callback": lambda figures: None, "engine": "loop", "initial_weights": WEIGHTS,
                  "noise_placement": "central", "server_optimizer": aggregation.ServerSGD(),
                  "diagnostics": False, "randomness": None,
                  "client_hook": None, "deadline_seconds": 10.0, "checkpoint": None,
                  "checkpoint_every": 1, "accountant": "pld", "expected_clients": 3.0,
                  "noise": "float"},
          corrupt={"model_fn": ("model_fn",), "client_datasets": ("datasets",),
                   "expected_clients": _without(POSITIVE, "none"),
                   "num_rounds": COUNT, "sampling_probability": PROBABILITY, **LOCAL_CORRUPT,
                   "clipping_norm": (*POSITIVE, "huge_scale"),
                   "noise_multiplier": (*NON_NEGATIVE, "huge_scale"),
                   "server_learning_rate": POSITIVE, "test_data": ("pair",), "seed": INDEX,
                   "progress": FLAG, "target_delta": _without((*OPEN_UNIT, "subnormal"), "none"),
                   "target_epsilon": _without(POSITIVE, "none"), "callback": CALLABLE,
                   "engine": NAME, "initial_weights": ("weights",),
                   "noise_placement": ("placement",), "server_optimizer": ("server_optimizer",),
                   "diagnostics": FLAG,
                   "randomness": ("randomness",), **FAULTS_CORRUPT,
                   "accountant": OPTIONAL_NAME, "noise": NAME, "clip_on": NAME},
          extra={"num_rounds": [10**7 + 1], "local_epochs": MAX_EPOCHS,
                 "checkpoint": BAD_CHECKPOINTS, "callback": [lambda: None],
                 "client_hook": [lambda: None], "clip_on": [None, ["client"]],
                 "client_algorithm": [3, "fedprox", object(), aggregation.FedAvg()]}),
    Entry(training.dp_fedavg_round, args=(MODEL, WEIGHTS, DATASETS, [0, 2], 0),
          kwargs={**LOCAL, "clipping_norm": 1.0, "noise_multiplier": 1.0,
                  "expected_clients": 3.0,
                  # Seeded: a secret source hands each round's noise out once (every call here
                  # is round 0), and the seeded one is exempt from that rule.
                  "randomness": schedule.PrivateRandomness.reproducible(0, warn=False),
                  "server_learning_rate": 1.0, "seed": 0, "noise": "exact"},
          corrupt={"model": ("model",), "global_weights": WEIGHT_LIST,
                   "client_datasets": ("datasets",), "sampled_clients": ("client_ids",),
                   "round_index": INDEX, **LOCAL_CORRUPT,
                   "clipping_norm": (*POSITIVE, "huge_scale"),
                   "noise_multiplier": (*NON_NEGATIVE, "huge_scale"),
                   "expected_clients": POSITIVE, "randomness": ("randomness", "none"),
                   "server_learning_rate": POSITIVE, "seed": INDEX, "noise": NAME},
          extra={"local_epochs": MAX_EPOCHS}),
    Entry(accounting.local_dp_epsilon_per_round,
          kwargs={"noise_multiplier": 1.0, "busiest_counts": np.array([1, 1, 2]),
                  "target_delta": DELTA, "accountant": "pld"},
          corrupt={"noise_multiplier": (*POSITIVE, "huge_scale"), "busiest_counts": ("counts",),
                   "target_delta": (*OPEN_UNIT, "subnormal"), "accountant": NAME}),
    # A private rule's description of its round, and the accountant that composes it (issue 25)
    Entry(accounting.epsilon_per_round_of_event,
          args=(dp_accounting.PoissonSampledDpEvent(0.1, dp_accounting.GaussianDpEvent(1.0)),),
          kwargs={"schedule": [np.array([0, 2]), np.array([1])], "num_clients": 3,
                  "target_delta": DELTA, "accountant": "rdp"},
          corrupt={"schedule": ("schedule",), "num_clients": COUNT,
                   "target_delta": (*OPEN_UNIT, "subnormal"), "accountant": NAME},
          extra={"num_clients": [2], "schedule": [[]],
                 "event": [None, 1.0, "gaussian", dp_accounting.GaussianDpEvent,
                           dp_accounting.LaplaceDpEvent(1.0),
                           dp_accounting.GaussianDpEvent(0.0),
                           dp_accounting.GaussianDpEvent(-1.0),
                           dp_accounting.GaussianDpEvent(math.nan),
                           dp_accounting.GaussianDpEvent(1e300),
                           dp_accounting.PoissonSampledDpEvent(
                               0.0, dp_accounting.GaussianDpEvent(1.0)),
                           dp_accounting.PoissonSampledDpEvent(
                               2.0, dp_accounting.GaussianDpEvent(1.0)),
                           dp_accounting.PoissonSampledDpEvent(
                               0.1, dp_accounting.LaplaceDpEvent(1.0))]}),
    Entry(aggregation.DPFedAvg(clipping_norm=1.0, noise_multiplier=1.0,
                               expected_clients=3.0).dp_event,
          kwargs={"sampling_probability": 0.1, "dimension": 4, "num_clients": 3},
          corrupt={"sampling_probability": PROBABILITY, "dimension": OPTIONAL_COUNT,
                   "num_clients": OPTIONAL_COUNT},
          extra={"dimension": [discrete_noise.MAX_SIZE + 1]}),
    Entry(aggregation.FedAvg().dp_event,
          kwargs={"sampling_probability": 0.1, "dimension": 4, "num_clients": 3},
          corrupt={"sampling_probability": PROBABILITY, "dimension": OPTIONAL_COUNT,
                   "num_clients": OPTIONAL_COUNT},
          extra={"dimension": [discrete_noise.MAX_SIZE + 1]}),
    # ------------------------------------------------------------------- fl_helpers.experiment
    Entry(experiment.make_federation, args=(3,),
          kwargs={"split": "dirichlet", "alpha": 0.5, "seed": 0, "mnist": MNIST},
          corrupt={"num_clients": COUNT, "split": NAME, "alpha": (*POSITIVE, "huge_scale"),
                   "seed": INDEX, "mnist": ("mnist",)},
          extra={"num_clients": [61]}),
    Entry(experiment.run_experiment, args=(DATASETS, TEST_DATA),
          kwargs={"num_rounds": 1, "sampling_probability": 1.0, "target_epsilon": None,
                  "noise_multiplier": 1.0, "target_delta": DELTA, "clipping_norm": 0.5,
                  "model": "softmax_regression", **LOCAL, "server_learning_rate": 1.0,
                  "seed": 0, "noise_placement": "central", "progress": False,
                  "callback": None, "randomness": None, "diagnostics": False,
                  "accountant": "pld", "expected_clients": 3.0, "noise": "float"},
          corrupt={"client_datasets": ("datasets",), "test_data": ("pair",),
                   "num_rounds": COUNT, "sampling_probability": PROBABILITY,
                   "target_epsilon": _without(POSITIVE, "none"),
                   "noise_multiplier": (*_without(NON_NEGATIVE, "none"), "huge_scale"),
                   "target_delta": (*OPEN_UNIT, "subnormal"),
                   "clipping_norm": (*POSITIVE, "huge_scale"), "model": NAME, **LOCAL_CORRUPT,
                   "server_learning_rate": POSITIVE, "seed": INDEX,
                   "noise_placement": ("placement",), "progress": FLAG, "callback": CALLABLE,
                   "randomness": ("randomness",), "diagnostics": FLAG,
                   "accountant": OPTIONAL_NAME, "expected_clients": POSITIVE, "noise": NAME},
          extra={"num_rounds": [10**7 + 1], "local_epochs": MAX_EPOCHS,
                 "callback": [lambda: None]}),
    Entry(experiment.noise_multiplier_for_budget,
          kwargs={"target_epsilon": 2.0, "target_delta": DELTA, "sampling_probability": 1.0,
                  "num_rounds": 3, "accountant": "pld"},
          corrupt={"target_epsilon": (*POSITIVE, "huge_scale"),
                   "target_delta": (*OPEN_UNIT, "subnormal"),
                   "sampling_probability": PROBABILITY, "num_rounds": COUNT, "accountant": NAME}),
    Entry(accounting.local_noise_multiplier,
          kwargs={"target_epsilon": 2.0, "target_delta": DELTA, "busiest_reports": 3,
                  "accountant": "pld"},
          corrupt={"target_epsilon": (*POSITIVE, "huge_scale"),
                   "target_delta": (*OPEN_UNIT, "subnormal"), "busiest_reports": INDEX,
                   "accountant": NAME},
          extra={"busiest_reports": [10**7 + 1]}),
    # -------------------------------------------------------------------- fl_helpers.reporting
    Entry(reporting.json_number, args=(1.5,), corrupt={"value": ("json_value",)}),
    Entry(reporting.to_json, args=(RESULT,), corrupt={"result": ("result",)}),
    Entry(reporting.summary_line, args=(RESULT,), kwargs={"baseline": RESULT, "seconds": False},
          corrupt={"result": ("result",), "seconds": FLAG},
          extra={"baseline": FAMILIES["result"][1:]}),
    Entry(reporting.results_table, args=(RESULT,), kwargs={"max_rows": 5},
          corrupt={"result": ("result",), "max_rows": COUNT}),
    Entry(reporting.privacy_statement, args=(HISTORY,),
          kwargs={"num_clients": 3, "examples_per_client": 10.0},
          corrupt={"history": ("history",), "num_clients": COUNT,
                   "examples_per_client": _without(POSITIVE, "none"), "language": NAME}),
    Entry(reporting.reporting_checklist, args=(HISTORY,),
          kwargs={"num_clients": 3, "hyperparameter_runs": 2, "tuning": "a grid of C"},
          corrupt={"history": ("history",), "num_clients": COUNT, "hyperparameter_runs": COUNT,
                   "language": NAME},
          extra={"tuning": [3, b"grid", ["C"]]}),
]


# ============================================ issue 25: the remaining modules of fl_helpers
# audit, attacks, dp_sgd, cross_silo, engine, deploy, cli, plotting, quiet, reproducibility,
# secagg_crypto, secagg_protocol and distributed_dp (their table is
# tests/test_secure_aggregation.py's ENTRIES) and the widget
# modules' plain functions.

import test_secure_aggregation  # noqa: E402

from fl_helpers import (  # noqa: E402
    attacks,
    audit,
    distributed_dp,
    dp_sgd,
    quiet,
    reproducibility,
    secagg_crypto,
    secagg_protocol,
)

MODULES += (audit, attacks, dp_sgd, quiet, reproducibility, secagg_crypto, secagg_protocol,
            distributed_dp)

#: Public functions fuzzed by another table of the same kind, one table per function:
#: secure aggregation's, in tests/test_secure_aggregation.py (ENTRIES), and cli.main's, in
#: tests/test_cli.py (FLAG_FUZZ, BAD_ARGV: exit status 2, not an exception), and deploy's
#: run_deployment and main, in tests/test_deploy.py (RUN_FUZZ, MAIN_FUZZ: they start Flower).
FUZZED_ELSEWHERE = {function for _, function, _, _ in test_secure_aggregation.ENTRIES}


@pytest.fixture(autouse=True, scope="module")
def _restore_op_determinism():
    # reproducibility.seed_everything's valid call turns TensorFlow's op determinism on for
    # the whole process; turn it off again for the tests that run after this file.
    from tensorflow.python.framework import config as tf_config

    was_enabled = tf_config.is_op_determinism_enabled()
    yield
    if not was_enabled:
        tf_config.disable_op_determinism()

ACTIVATIONS = attacks.model_activations(MODEL)
LOGITS = np.tile(np.linspace(-1.0, 1.0, 10), (10, 1))
SCORES = np.linspace(0.0, 1.0, 8)
FPR, TPR = attacks.roc_curve(SCORES[4:], SCORES[:4])
LAYER = (np.arange(12.0).reshape(4, 3) / 10, np.array([0.5, -0.2, 0.1]))

FAMILIES.update({
    # -- for per-layer lists of float arrays of any shapes
    "layers": [None, "abc", 3, [], [None], ["abc"], [np.array([1.0, np.nan])],
               [np.array([1 + 1j])], [np.array([object()], dtype=object)],
               [[[1.0], [1.0, 2.0]]], {0: np.ones(2)}],
    # -- for the activation names of a Dense stack (one per layer)
    "activations": [None, "linear", 3, (), (1,), ("nope",) * len(ACTIVATIONS),
                    (*ACTIVATIONS, "relu")],
    # -- for score, rate or logit arrays that may be any 1-D list of finite reals
    "scores": [*(value for family in ARRAY for value in FAMILIES[family]), np.array([])],
})
ACTIVATION_NAMES = ("activations",)
# Bad images for attacks, which also take flattened images (CX.reshape(10, -1)) and one image
# alone (CX[0]) as a batch: the "images" family without those two.
ATTACK_IMAGES = [x for i, x in enumerate(FAMILIES["images"]) if i not in (4, 5)]
LAYERS = ("layers",)
SCORE_ARRAY = ("scores",)

REGISTRY += [
    # ------------------------------------------------------------------ fl_helpers.reproducibility
    Entry(reproducibility.seed_everything, args=(0,), corrupt={"seed": INDEX}),
    # ---------------------------------------------------------------------------- fl_helpers.quiet
    Entry(quiet.split_startup_noise, args=("a\nb",),
          extra={"text": [None, 3, b"bytes", ["a"], object()]}),
    Entry(quiet.hidden_startup_messages),
    Entry(quiet.import_tensorflow),
    # ---------------------------------------------------------------------------- fl_helpers.audit
    Entry(audit.clopper_pearson, args=(3, 10), kwargs={"confidence": 0.95},
          # (Integral floats are counts too: roc_under_bound passes np.round(rate * n).)
          corrupt={"successes": ("string", "none", "complex", "nan", "inf", "negative",
                                 "bool", "object"),
                   "trials": ("string", "none", "complex", "nan", "inf", "zero", "negative",
                              "bool", "object"),
                   "confidence": OPEN_UNIT},
          extra={"successes": [11, 1.5, [1, 20], ["a"]], "trials": [2, 2.5, [10, 0]]}),
    Entry(audit.empirical_epsilon_lower_bound, args=(np.zeros(10), np.ones(10)),
          kwargs={"threshold": 0.5, "delta": 0.0, "confidence": 0.95},
          corrupt={"outputs_0": ARRAY, "outputs_1": ARRAY, "threshold": REAL,
                   "delta": (*NON_NEGATIVE, "one", "above_one"), "confidence": OPEN_UNIT},
          extra={"outputs_0": [np.array([])]}),
    Entry(audit.epsilon_lower_bound, args=(SCORES + 1, SCORES), kwargs={"delta": 0.0},
          corrupt={"in_scores": SCORE_ARRAY, "out_scores": SCORE_ARRAY,
                   "delta": (*NON_NEGATIVE, "one", "above_one"), "confidence": OPEN_UNIT}),
    Entry(audit.canary_update, args=([(2, 3), (4,)],), kwargs={"norm": 2.0, "rng": _rng()},
          corrupt={"shapes": ("shapes",), "norm": POSITIVE, "rng": RNG}),
    *(Entry(function, args=(aggregation.FedAvg(), [[np.ones(3)]] * 2, [np.full(3, 5.0)]),
            kwargs={"num_trials": 4, "num_clients": 3, **kwargs,
                    "randomness": schedule.PrivateRandomness.reproducible(0, warn=False)},
            corrupt={"rule": ("rule",), "canary": LAYERS, "num_trials": COUNT,
                     "num_clients": COUNT, "randomness": ("randomness", "none"), **corrupt},
            # (No other client at all, other_updates=[], is a valid round.)
            extra={"num_trials": [3, 10**7 + 1], "canary": [[np.zeros(3)], [np.ones(4)]],
                   "other_updates": [None, "abc", 3, [[np.ones(4)]], [np.ones(3)], [[]],
                                     *([bad] for bad in FAMILIES["layers"])]})
      for function, kwargs, corrupt in (
          (audit.canary_scores, {}, {}),
          (audit.canary_audit, {"delta": 0.0, "confidence": 0.9},
           {"delta": (*NON_NEGATIVE, "one", "above_one"), "confidence": OPEN_UNIT}))),
    Entry(audit.unexplained_coordinates, args=(np.float32([1.0, 2.0]), lambda noise: noise),
          kwargs={"noise": "float32"},
          corrupt={"released": ARRAY, "noise": NAME},
          extra={"release": [None, 3, "f", lambda noise: "abc", lambda noise: noise[:1]]}),
    Entry(audit.float_noise_proofs, args=([np.float32([1.0, 2.0])],),
          kwargs={"previous": [np.float32([0.5, 1.5])], "noiseless_sum": [np.float32([1, 1])],
                  "expected_clients": 2.0, "server_learning_rate": 1.0},
          corrupt={"released": LAYERS, "previous": LAYERS, "noiseless_sum": LAYERS,
                   "expected_clients": POSITIVE, "server_learning_rate": POSITIVE},
          extra={"previous": [[np.float32([0.5])]]}),
    Entry(audit.exact_noise_proofs, args=([np.float32([1.0, 2.0])],),
          kwargs={"previous": [np.float32([0.5, 1.5])], "integer_sum": np.array([3, 4]),
                  "clipping_norm": 1.0, "expected_clients": 2.0, "steps": 16,
                  "server_learning_rate": 1.0},
          corrupt={"released": LAYERS, "previous": LAYERS, "clipping_norm": POSITIVE,
                   "expected_clients": POSITIVE, "steps": COUNT,
                   "server_learning_rate": POSITIVE},
          extra={"integer_sum": [None, "abc", np.array([1.5, 2.0]), np.array([1]),
                                 np.array([True, False])]}),
    # -------------------------------------------------------------------------- fl_helpers.dp_sgd
    Entry(dp_sgd.per_example_gradients, args=(MODEL, CX, CY),
          corrupt={"model": ("model",), "x": ("images",), "y": ("model_labels",)}),
    Entry(dp_sgd.clip_per_example, args=([np.ones((3, 2)), np.ones((3,))],),
          kwargs={"clipping_norm": 1.0},
          corrupt={"gradients": LAYERS, "clipping_norm": POSITIVE},
          extra={"gradients": [[np.ones((3, 2)), np.ones((2,))], [np.array(1.0)]]}),
    Entry(dp_sgd.train, args=(MODEL, CX, CY),
          kwargs={"noise_multiplier": 1.0, "clipping_norm": 1.0, "sampling_probability": 0.5,
                  "num_steps": 1, "learning_rate": 0.1, "target_delta": DELTA,
                  "randomness": None, "expected_batch_size": 5.0, "noise": "exact"},
          corrupt={"model": ("model",), "x": ("images",), "y": ("model_labels",),
                   "noise_multiplier": NON_NEGATIVE, "clipping_norm": POSITIVE,
                   "sampling_probability": PROBABILITY, "num_steps": COUNT,
                   "learning_rate": POSITIVE, "target_delta": OPEN_UNIT,
                   "randomness": ("randomness",), "expected_batch_size": _without(POSITIVE, "none"),
                   "noise": NAME},
          extra={"num_steps": [10**7 + 1]}),
    Entry(dp_sgd.DPSGDResult(
        final_weights=[], epsilon=1.0, target_delta=DELTA, noise_multiplier=1.0,
        clipping_norm=1.0, sampling_probability=0.01, num_steps=10, learning_rate=0.1,
        num_examples=1000, expected_batch_size=10.0, reproducible_noise=False).privacy_statement,
          corrupt={"language": NAME}),
    # ------------------------------------------------------------------------- fl_helpers.attacks
    Entry(attacks.model_activations, args=(MODEL,), corrupt={"model": ("model",)}),
    Entry(attacks.forward, args=(WEIGHTS, CX.reshape(10, -1), ACTIVATIONS),
          corrupt={"activations": ACTIVATION_NAMES},
          extra={"weights": [None, "abc", 3, [], WEIGHTS[:1], [*WEIGHTS, *WEIGHTS]],
                 "x": [None, "abc", 3, CX, np.full((2, 784), np.nan)]}),
    Entry(attacks.gradient, args=(WEIGHTS, ACTIVATIONS, CX, CY),
          corrupt={"weights": ("weights",), "activations": ACTIVATION_NAMES,
                   "y": ("model_labels",)},
          extra={"x": [*ATTACK_IMAGES, CX[0]]}),
    Entry(attacks.per_example_logits, args=(WEIGHTS, ACTIVATIONS, CX),
          corrupt={"weights": ("weights",), "activations": ACTIVATION_NAMES},
          extra={"x": ATTACK_IMAGES}),
    *(Entry(function, args=(CX, CX), extra={"reconstructed": [*ATTACK_IMAGES, CX[0]],
                                           "original": [*ATTACK_IMAGES, CX[0]]})
      for function in (attacks.ssim, attacks.psnr)),
    Entry(attacks.match_to_originals, args=(CX[:3], CX[:2]),
          extra={"candidates": [*ATTACK_IMAGES, CX[:1]], "originals": ATTACK_IMAGES}),
    *(Entry(function, args=LAYER, corrupt={"kernel_update": ARRAY, "bias_update": ARRAY},
            extra={"kernel_update": [np.ones(3), np.ones((4, 2))],
                   "bias_update": [np.zeros(3), np.ones((3, 1))]})
      for function in (attacks.invert_dense_least_squares,)),
    Entry(attacks.invert_dense_layer, args=LAYER, kwargs={"relative_threshold": 1e-6},
          corrupt={"kernel_update": ARRAY, "bias_update": ARRAY,
                   "relative_threshold": NON_NEGATIVE},
          extra={"kernel_update": [np.ones(3), np.ones((4, 2))],
                 "bias_update": [np.zeros(3), np.ones((3, 1))]}),
    Entry(attacks.clip_and_noise, args=(WEIGHTS,),
          kwargs={"clipping_norm": 1.0, "noise_multiplier": 1.0, "rng": _rng()},
          corrupt={"update": LAYERS, "clipping_norm": POSITIVE, "noise_multiplier": NON_NEGATIVE,
                   "rng": RNG}),
    Entry(attacks.idlg_labels, args=(np.array([0.1, -0.5, 0.2]), 1),
          corrupt={"last_bias_gradient": ARRAY, "batch_size": COUNT},
          extra={"batch_size": [4], "last_bias_gradient": [np.ones((2, 2)), np.array([])]}),
    Entry(attacks.dlg_attack, args=(WEIGHTS, ACTIVATIONS, WEIGHTS),
          kwargs={"batch_size": 1, "labels": None, "num_steps": 1, "step_size": 0.1,
                  "tv_weight": 0.01, "seed": 0},
          corrupt={"weights": ("weights",), "activations": ACTIVATION_NAMES,
                   "observed_update": ("weights",), "batch_size": COUNT,
                   "labels": _without(LABELS, "array_none"), "num_steps": COUNT,
                   "step_size": POSITIVE, "tv_weight": NON_NEGATIVE, "seed": INDEX},
          extra={"labels": [np.array([10]), np.array([-1]), np.array([0, 1])]}),
    Entry(attacks.per_example_losses, args=(LOGITS, CY),
          corrupt={"logits": ARRAY, "labels": LABELS},
          extra={"logits": [LOGITS[0], LOGITS[:5]], "labels": [CY + 10, -CY - 1]}),
    Entry(attacks.logit_confidence, args=(LOGITS, CY),
          corrupt={"logits": ARRAY, "labels": LABELS},
          extra={"logits": [LOGITS[0], LOGITS[:5], LOGITS[:, :1]],
                 "labels": [CY + 10, -CY - 1]}),
    Entry(attacks.loss_threshold_scores, args=(SCORES,), corrupt={"losses": SCORE_ARRAY}),
    Entry(attacks.lira_offline_scores,
          args=(SCORES[:3], np.tile(SCORES[:3], (4, 1)), np.eye(4, 3, dtype=bool)),
          kwargs={"min_std": 1e-3},
          corrupt={"target_confidence": SCORE_ARRAY, "shadow_confidence": ARRAY,
                   "shadow_members": ("array_none", "array_string", "array_object",
                                      "array_ragged"),
                   "min_std": POSITIVE},
          extra={"shadow_members": [np.zeros((4, 3)), np.ones((4, 3), dtype=bool)]}),
    Entry(attacks.roc_curve, args=(SCORES[4:], SCORES[:4]),
          corrupt={"member_scores": SCORE_ARRAY, "nonmember_scores": SCORE_ARRAY}),
    Entry(attacks.auc, args=(FPR, TPR), corrupt={"fpr": SCORE_ARRAY, "tpr": SCORE_ARRAY},
          extra={"fpr": [FPR[:2], FPR * 2, FPR[::-1]], "tpr": [TPR[:2], -TPR]}),
    Entry(attacks.tpr_at_fpr, args=(FPR, TPR, 0.1),
          # (A subnormal target_fpr is a valid probability: the curve's (0, 0) point meets it.)
          corrupt={"fpr": SCORE_ARRAY, "tpr": SCORE_ARRAY,
                   "target_fpr": _without(PROBABILITY, "subnormal")},
          extra={"fpr": [FPR[:2], FPR + 1], "tpr": [TPR[:2]]}),
    Entry(attacks.dp_tpr_bound, args=(FPR,), kwargs={"epsilon": 1.0, "delta": DELTA},
          corrupt={"fpr": SCORE_ARRAY, "epsilon": NON_NEGATIVE,
                   "delta": (*NON_NEGATIVE, "one", "above_one")},
          extra={"fpr": [np.array([-0.5]), np.array([1.5])]}),
    Entry(attacks.tradeoff_tpr_bound, args=(FPR,),
          kwargs={"noise_multiplier": 2.0, "sampling_probability": 1.0, "num_rounds": 1,
                  "epsilons": None, "value_discretization_interval": 1e-2},
          corrupt={"fpr": SCORE_ARRAY, "noise_multiplier": POSITIVE,
                   "sampling_probability": PROBABILITY, "num_rounds": COUNT,
                   "value_discretization_interval": POSITIVE},
          extra={"fpr": [np.array([-0.5]), np.array([1.5])],
                 "epsilons": ["abc", np.array([np.nan]), np.array([-1.0]), [1 + 1j]]}),
    Entry(attacks.roc_under_bound, args=(FPR, TPR),
          kwargs={"num_members": 4, "num_nonmembers": 4, "bound": lambda f: f,
                  "confidence": 0.95},
          corrupt={"fpr": SCORE_ARRAY, "tpr": SCORE_ARRAY, "num_members": COUNT,
                   "num_nonmembers": COUNT, "confidence": OPEN_UNIT},
          extra={"fpr": [FPR[:2], FPR + 1], "tpr": [TPR[:2], TPR + 1],
                 "bound": [None, 3, "f", lambda f: "abc", lambda f: f[:1]]}),
]

SHAPES = [w.shape for w in WEIGHTS]
RAGGED = [np.array([1.0, 2.0]), np.array([])]
CHECKPOINT = f"{tempfile.mkdtemp(prefix='fuzz-')}/run.npz"
checkpoints.save_checkpoint(CHECKPOINT, {"a": np.zeros(2)})

REGISTRY += [
    # ------------------------------------------------------------------ fl_helpers.aggregation
    Entry(aggregation.update_norm, args=(WEIGHTS,),
          extra={"delta": [None, "abc", 3, WEIGHTS[0], [None], [np.array(["a"])],
                           [np.full_like(w, np.nan) for w in WEIGHTS],
                           [w.astype(np.complex64) for w in WEIGHTS],
                           [w.astype(object) for w in WEIGHTS], [w > 0 for w in WEIGHTS],
                           [[[1.0], [1.0, 2.0]]]]}),
    # ----------------------------------------------------------------------- fl_helpers.faults
    Entry(faults.screen_round, args=(None, np.array([0, 2]), 0, [WEIGHTS, WEIGHTS],
                                     np.array([10, 10]), SHAPES, 10.0),
          corrupt={"hook": CALLABLE, "round_index": INDEX,
                   "deadline": _without(POSITIVE, "none")},
          extra={"sampled": [None, "abc", 3, [-1, 0], [0, 0], [True, False], [1.5, 2.0],
                             [[0, 2]], [0]],
                 "deltas": [None, "abc", 3, np.zeros(2), [WEIGHTS]],
                 "num_examples": [None, "abc", 3, [-1, 10], [1.5, 2.0], [True, False], [10],
                                  [[10, 10]]],
                 "shapes": FAMILIES["shapes"][:-1]}),  # any size may be compared with
    Entry(faults.FaultInjector, args=({(0, 1): "nan"},),
          kwargs={"straggler_seconds": 60.0, "then": None},
          corrupt={"straggler_seconds": POSITIVE, "then": CALLABLE},
          extra={"faults": [None, 3, "abc", [(0, 1)], {(0,): "nan"}, {(0, 1): "explode"},
                            {(-1, 0): "nan"}, {(0.5, 0): "nan"}, {(0, True): "nan"},
                            {(0, 1): None}]}),
    # ------------------------------------------------------------------ fl_helpers.checkpoints
    Entry(checkpoints.check_path, args=("path", "run.npz"),
          corrupt={"name": ("arg_name",), "path": PATH}, extra={"path": BAD_CHECKPOINTS}),
    Entry(checkpoints.save_checkpoint, args=(CHECKPOINT, {"a": np.zeros(2), "b": "text"}),
          corrupt={"path": PATH},
          extra={"path": BAD_CHECKPOINTS,
                 "arrays": [None, 3, "abc", [np.zeros(2)], {1: np.zeros(1)}, {"": np.zeros(1)},
                            {"a": object()}, {"a": [[1.0], [1.0, 2.0]]}, {"a": None}]}),
    Entry(checkpoints.load_checkpoint, args=(CHECKPOINT,), corrupt={"path": PATH},
          extra={"path": [*BAD_CHECKPOINTS, f"{CHECKPOINT}.missing"]}),
    Entry(checkpoints.pack_ragged, args=("x", RAGGED),
          corrupt={"name": ("arg_name",), "parts": ("array_none", "array_string")},
          extra={"name": [""],
                 "parts": [3, np.zeros(3), [None], [np.zeros((2, 2))], [np.array(["a"])],
                           [np.array([np.nan])], [[[1.0], [1.0, 2.0]]], [np.array([True])]]}),
    Entry(checkpoints.unpack_ragged, args=(checkpoints.pack_ragged("x", RAGGED), "x"),
          corrupt={"name": ("arg_name",)},
          extra={"name": [""],
                 "arrays": [None, 3, "abc", {}, {"x/values": np.zeros(3)},
                            {"x/values": np.zeros(3), "x/lengths": np.array([1])},
                            {"x/values": np.array([np.nan]), "x/lengths": np.array([1])},
                            {"x/values": np.zeros(1), "x/lengths": np.array([-1, 2])},
                            {"x/values": np.zeros(1), "x/lengths": np.array([0.5, 0.5])},
                            {"x/values": "abc", "x/lengths": np.array([1])}]}),
    Entry(checkpoints.rejections_to_arrays, args=([faults.Rejection(1, 2, "raised")],),
          extra={"rejections": [None, 3, "abc", [None], [(1, 2, "raised")],
                                np.array([1, 2])]}),
    Entry(checkpoints.rejections_from_arrays,
          args=(checkpoints.rejections_to_arrays([faults.Rejection(1, 2, "raised")]),),
          extra={"arrays": [None, 3, {}, {"rejections/round": np.array([1])},
                            {**checkpoints.rejections_to_arrays([]),
                             "rejections/round": np.array([0])},
                            {**checkpoints.rejections_to_arrays([]),
                             "rejections/client": np.array([1.5])},
                            {**checkpoints.rejections_to_arrays([]),
                             "rejections/reason": np.array([1])},
                            checkpoints.rejections_to_arrays([faults.Rejection(1, 2, "a")])
                            | {"rejections/client": np.array([2, 3])}]}),
]

# ------------------------------------------------------------------ fl_helpers.cross_silo
# Numpy-only logistic regression of notebook 08; a few rows of toy data and the shipped
# hospitals (loaded once, in milliseconds). Every model function takes (params, x[, y]).

from fl_helpers import cross_silo, paths  # noqa: E402

MODULES += (cross_silo, paths)

HEART = cross_silo.load_federation(preprocessing="public")
RAW_HEART = data.load_heart_disease(0)
CS_PARAMS = np.array([0.1, -0.2, 0.3, 0.05])
CS_X = np.linspace(-1.0, 1.0, 18).reshape(6, 3)
CS_Y = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
CS_CONFIG = cross_silo.TrainingConfig(num_rounds=1, local_steps=1)
CS_DP_CONFIG = cross_silo.TrainingConfig(num_rounds=1, local_steps=2, noise_multiplier=1.0,
                                         expected_batch_size=3.0)

FAMILIES.update({
    "hospitals": [None, 3, "abc", [], [None], [object()], HEART[0], [HEART[0], "abc"]],
    "config": [None, 3, "abc", {}, object(), cross_silo.TrainingConfig,
               CS_CONFIG.to_dict()],
})
HOSPITALS = ("hospitals",)
CONFIG = ("config",)
#: params (1-D, one weight per column of x plus a bias), x (rows of features), y (0/1 labels).
MODEL_CORRUPT = {"params": ARRAY, "x": ARRAY, "y": ARRAY}
MODEL_EXTRA = {"params": [CS_PARAMS[:3], CS_PARAMS[:1], CS_PARAMS[:, None], np.array([])],
               "x": [CS_X[:, :2], CS_X[0], CS_X[:0], CS_X[:, :, None]],
               "y": [CS_Y[:3], CS_Y + 2.0, -CS_Y, CS_Y[:, None], CS_Y > 0.5]}
MODEL_ARGS = (CS_PARAMS, CS_X, CS_Y)


def _model_entry(function: Callable[..., Any], with_y: bool = True) -> Entry:
    names = ("params", "x", "y") if with_y else ("params", "x")
    return Entry(function, args=MODEL_ARGS[:len(names)],
                 corrupt={name: MODEL_CORRUPT[name] for name in names},
                 extra={name: MODEL_EXTRA[name] for name in names})


REGISTRY += [
    Entry(cross_silo.public_train_size, args=(0,),
          kwargs={"missing": "impute", "train_fraction": 0.66},
          corrupt={"hospital": INDEX, "missing": NAME, "train_fraction": OPEN_UNIT},
          extra={"hospital": [4, "nowhere"]}),
    Entry(cross_silo.preprocess, args=(RAW_HEART[:20], RAW_HEART[20:30]),
          kwargs={"preprocessing": "public", "missing": "impute"},
          # (NaN is a gap in a raw row: allowed; inf is not)
          corrupt={"raw_train": _without(ARRAY, "array_nonfinite"),
                   "raw_test": _without(ARRAY, "array_nonfinite"),
                   "preprocessing": NAME, "missing": NAME},
          extra={"raw_train": [RAW_HEART[:20, :5], RAW_HEART[0], RAW_HEART[:0],
                               np.where(RAW_HEART[:20] > 100, np.inf, RAW_HEART[:20])],
                 "raw_test": [RAW_HEART[:10, :5], RAW_HEART[0],
                              np.where(RAW_HEART[:10] > 100, -np.inf, RAW_HEART[:10])]}),
    Entry(cross_silo.split_train_test, args=(CS_Y,),
          kwargs={"train_fraction": 0.66, "rng": _rng()},
          corrupt={"labels": ARRAY, "train_fraction": OPEN_UNIT, "rng": RNG},
          extra={"labels": [np.array([]), CS_Y[:, None]]}),
    Entry(cross_silo.load_hospital, args=(0,),
          kwargs={"missing": "impute", "split_seed": 43, "train_fraction": 0.66,
                  "preprocessing": "local", "data_dir": None},
          corrupt={"hospital": INDEX, "missing": NAME, "split_seed": INDEX,
                   "train_fraction": OPEN_UNIT, "preprocessing": NAME, "data_dir": PATH},
          extra={"hospital": [4, "nowhere"]}),
    Entry(cross_silo.load_federation,
          kwargs={"missing": "drop", "split_seed": 43, "train_fraction": 0.66,
                  "preprocessing": "public", "data_dir": None},
          corrupt={"missing": NAME, "split_seed": INDEX, "train_fraction": OPEN_UNIT,
                   "preprocessing": NAME, "data_dir": PATH}),
    Entry(cross_silo.pooled_standardisation, args=(HEART,), corrupt={"hospitals": HOSPITALS}),
    Entry(cross_silo.init_params, args=(13,), corrupt={"num_features": COUNT}),
    _model_entry(cross_silo.logits, with_y=False),
    _model_entry(cross_silo.predict_proba, with_y=False),
    _model_entry(cross_silo.loss),
    _model_entry(cross_silo.per_example_gradients),
    _model_entry(cross_silo.gradient),
    _model_entry(cross_silo.accuracy),
    _model_entry(cross_silo.evaluate),
    Entry(cross_silo.roc_auc, args=(CS_Y, np.linspace(0.0, 1.0, 6)),
          corrupt={"y": ARRAY, "scores": ARRAY},
          extra={"y": [CS_Y[:3], np.zeros(6), CS_Y[:, None], CS_Y + 2.0],
                 "scores": [np.zeros(3), np.zeros((6, 1)), np.array([])]}),
    Entry(cross_silo.sgd_update, args=MODEL_ARGS,
          kwargs={"local_steps": 2, "batch_size": 3, "client_learning_rate": 0.1,
                  "rng": _rng()},
          corrupt={**MODEL_CORRUPT, "local_steps": COUNT, "batch_size": COUNT,
                   "client_learning_rate": POSITIVE, "rng": RNG},
          extra=MODEL_EXTRA),
    Entry(cross_silo.clip_rows, args=(CS_X, 1.0),
          corrupt={"gradients": ARRAY, "clipping_norm": POSITIVE},
          extra={"gradients": [CS_X[0], CS_X[:, :, None]]}),  # (no rows is valid)
    Entry(cross_silo.dp_sgd_update, args=MODEL_ARGS,
          kwargs={"local_steps": 2, "sampling_probability": 0.5, "expected_batch_size": 3.0,
                  "clipping_norm": 1.0, "noise_multiplier": 1.0, "client_learning_rate": 0.1,
                  "randomness": None, "noise": "exact"},
          # (a subnormal sampling_probability is a valid probability: every batch is empty)
          corrupt={**MODEL_CORRUPT, "local_steps": COUNT,
                   "sampling_probability": _without(PROBABILITY, "subnormal"),
                   "expected_batch_size": POSITIVE, "clipping_norm": POSITIVE,
                   "noise_multiplier": POSITIVE, "client_learning_rate": POSITIVE,
                   "randomness": ("randomness",), "noise": NAME},
          extra=MODEL_EXTRA),
    Entry(cross_silo.epsilon, args=(CS_DP_CONFIG, 100), kwargs={"target_delta": DELTA},
          corrupt={"config": CONFIG, "public_train_size": COUNT, "target_delta": OPEN_UNIT}),
    Entry(cross_silo.client_rng, args=(0, 1, 2),
          corrupt={"seed": INDEX, "round_index": INDEX, "hospital_id": INDEX}),
    Entry(cross_silo.client_update, args=MODEL_ARGS,
          kwargs={"config": CS_DP_CONFIG, "round_index": 0, "hospital_id": 0,
                  "public_train_size": 6, "randomness": None},
          corrupt={**MODEL_CORRUPT, "config": CONFIG, "round_index": INDEX,
                   "hospital_id": INDEX, "public_train_size": _without(COUNT, "none"),
                   "randomness": ("randomness",)},
          extra={**MODEL_EXTRA, "public_train_size": [None]}),
    Entry(cross_silo.weighted_average, args=([CS_PARAMS, 2 * CS_PARAMS], [1.0, 3.0]),
          extra={"updates": [None, "abc", 3, [], [None, CS_PARAMS], [CS_PARAMS, CS_PARAMS[:2]],
                             [CS_PARAMS, np.full(4, np.nan)], [CS_PARAMS, np.array(["a"] * 4)],
                             [CS_PARAMS, CS_PARAMS > 0], [[[1.0], [1.0, 2.0]], CS_PARAMS]],
                 "weights": [None, "ab", 3, [1.0], [0.0, 1.0], [-1.0, 2.0], [np.nan, 1.0],
                             [np.inf, 1.0], [True, False], ["a", "b"], [[1.0], [2.0]],
                             [5e-324, 5e-324]]}),
    Entry(cross_silo.public_weights, args=(HEART, CS_CONFIG),
          corrupt={"hospitals": HOSPITALS, "config": CONFIG}),
    Entry(cross_silo.check_private_preparation, args=(HEART,),
          corrupt={"hospitals": HOSPITALS}),
    Entry(cross_silo.run_fedavg, args=(HEART, CS_CONFIG), kwargs={"randomness": None},
          corrupt={"hospitals": HOSPITALS, "config": CONFIG, "randomness": ("randomness",)}),
    Entry(cross_silo.train_alone, args=(CS_X, CS_Y, CS_CONFIG),
          kwargs={"hospital_id": 0, "public_train_size": None},
          corrupt={"x": ARRAY, "y": ARRAY, "config": CONFIG, "hospital_id": INDEX,
                   "public_train_size": _without(COUNT, "none")},
          # (any number of columns is valid: the model is made to fit x)
          extra={"x": MODEL_EXTRA["x"][1:], "y": MODEL_EXTRA["y"]}),
    Entry(cross_silo.calibrate_noise, args=(CS_DP_CONFIG, 100),
          kwargs={"target_epsilon": 5.0, "target_delta": DELTA},
          corrupt={"config": CONFIG, "public_train_size": COUNT, "target_epsilon": POSITIVE,
                   "target_delta": OPEN_UNIT}),
    Entry(cross_silo.compare_training, args=(HEART, CS_CONFIG),
          kwargs={"target_epsilon": None, "target_delta": 1e-4},
          corrupt={"hospitals": HOSPITALS, "config": CONFIG,
                   "target_epsilon": _without(POSITIVE, "none"), "target_delta": OPEN_UNIT}),
    # -------------------------------------------------------------------- fl_helpers.paths
    Entry(paths.data_dir, args=("mnist",),
          extra={"name": [None, 3, b"mnist", ["mnist"], "", ".", "..", "a/b"]}),
    Entry(paths.results_dir),
    Entry(paths.app_dir),
]

# ------------------------------------------------------------------- fl_helpers.plotting
# Every plot checks its arguments before it opens a figure; the valid calls draw on one shared
# Agg figure, so the fuzz opens no windows and stays fast.

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import types  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402

from fl_helpers import plotting  # noqa: E402

MODULES += (plotting,)

PLOT_FIGURE, PLOT_AX = plt.subplots()
_, PLOT_AXES = plt.subplots(1, 2)
CURVE = types.SimpleNamespace(steps=[0, 1, 2], epochs=[0.0, 0.5, 1.0], loss=[2.0, 1.0, np.nan],
                              diverged=True)
RUN = types.SimpleNamespace(rounds=[1, 2], test_accuracy=[0.5, 0.6], epsilon=[0.5, np.inf])
BAD_RUNS = [None, 3, "abc", {}, [RUN], {"a": None}, {"a": {"rounds": [1]}},
            {"a": types.SimpleNamespace(rounds=[1, 2], test_accuracy=[0.5, np.nan],
                                        epsilon=[1.0, 2.0])},
            {"a": types.SimpleNamespace(rounds=["a", "b"], test_accuracy=[0.5, 0.6],
                                        epsilon=[1.0, 2.0])},
            {"a": types.SimpleNamespace(rounds=[1, 2], test_accuracy=[0.5],
                                        epsilon=[1.0, 2.0])}]
FAMILIES.update({
    "ax": [3, "ax", object(), [PLOT_AX], PLOT_FIGURE],
    "styles": [3, "red", ["red"], {"a": "red"}, object()],
})
AX = ("ax",)

REGISTRY += [
    Entry(plotting.use_course_style),
    Entry(plotting.plot_label_distribution, args=(LABEL_ARRAY, PARTS),
          kwargs={"max_clients": 20, "normalize": True, "title": "t", "ax": PLOT_AX},
          corrupt={"labels": LABELS, "partitions": IDS, "max_clients": COUNT, "normalize": FLAG,
                   "ax": AX},
          extra={"title": [3, b"t", ["t"], object()]}),
    Entry(plotting.plot_federated_loop, args=([np.zeros((2, 28, 28))] * 2,),
          kwargs={"ax": PLOT_AX}, corrupt={"ax": AX},
          extra={"client_images": [3, "abc", [], [np.zeros((2, 28, 28))] * 7, [None],
                                   [np.zeros((28, 28))], [np.full((1, 28, 28), np.nan)],
                                   [np.zeros((1, 28, 28), dtype=object)], object()]}),
    Entry(plotting.plot_noisy_answer_distribution, args=(10.0, "gaussian"),
          kwargs={"sensitivity": 1.0, "epsilon": 1.0, "delta": DELTA,
                  "samples": np.linspace(8.0, 12.0, 20), "half_range": 5.0,
                  "neighbour_answer": 11.0, "ax": PLOT_AX},
          corrupt={"true_answer": REAL, "mechanism": NAME, "sensitivity": POSITIVE,
                   "epsilon": POSITIVE, "delta": OPEN_UNIT,
                   "samples": _without(ARRAY, "array_none"),
                   "half_range": _without(POSITIVE, "none"),
                   "neighbour_answer": _without(REAL, "none"), "ax": AX}),
    Entry(plotting.plot_loss_curves, args=({"a": CURVE},),
          kwargs={"x_axis": "epochs", "log_x": True, "ax": PLOT_AX},
          corrupt={"x_axis": NAME, "log_x": FLAG, "ax": AX},
          extra={"curves": [None, 3, "abc", {}, [CURVE], {"a": None},
                            {"a": types.SimpleNamespace(steps=[0, 1], epochs=[0.0],
                                                        loss=[1.0, 2.0])},
                            {"a": types.SimpleNamespace(steps=[0, 1], epochs=[0.0, 1.0],
                                                        loss=[1.0])},
                            {"a": types.SimpleNamespace(steps=[0, 1], epochs=[0.0, 1.0],
                                                        loss=["a", "b"])}]}),
    Entry(plotting.plot_accuracy_curves, args=({"a": RUN, "b": {"rounds": [1],
                                                                "test_accuracy": [0.7]}},),
          kwargs={"target": 0.9, "styles": {"a": {"color": "red"}}, "ax": PLOT_AX},
          corrupt={"target": _without(REAL, "none"), "styles": ("styles",), "ax": AX},
          extra={"histories": BAD_RUNS, "target": [-0.5, 1.5]}),
    Entry(plotting.plot_accuracy_and_epsilon, args=({"a": RUN},),
          kwargs={"target_epsilon": 2.0, "styles": None, "axes": PLOT_AXES},
          corrupt={"target_epsilon": _without(POSITIVE, "none"), "styles": ("styles",)},
          extra={"runs": BAD_RUNS, "axes": [3, "ab", [PLOT_AX], [PLOT_AX, 3], object()]}),
    Entry(plotting.plot_privacy_utility, args=([0.5, 1.0, 2.0], [0.8, 0.85, 0.86]),
          kwargs={"errors": [0.01] * 3, "baseline": 0.9, "label": "dp", "ax": PLOT_AX},
          corrupt={"epsilons": ARRAY, "accuracies": ARRAY, "errors": _without(ARRAY, "array_none"),
                   "baseline": _without(REAL, "none"), "ax": AX},
          extra={"epsilons": [[1.0], [0.0, 1.0, 2.0]], "accuracies": [[0.5], [1.5, 0.5, 0.5]],
                 "errors": [[0.01], [-0.01] * 3], "baseline": [-0.5, 1.5],
                 "label": [None, 3, b"dp", ["dp"]]}),
]


# ------------------------------------------------------------------------ fl_helpers.cli
# build_parser takes nothing. main answers a bad flag with exit status 2 and one line naming
# the flag (not a ValueError), so its table is in tests/test_cli.py (FLAG_FUZZ, BAD_ARGV:
# every flag's bad values, a missing value, an unknown flag, an argv that is not a list of
# strings); its valid call runs a whole experiment, too slow for this table.

import test_cli  # noqa: E402

from fl_helpers import cli  # noqa: E402

MODULES += (cli,)
FUZZED_ELSEWHERE |= {cli.main}
assert test_cli.FLAG_CASES and test_cli.BAD_ARGV

REGISTRY += [
    Entry(cli.build_parser),
]


# --------------------------------------------------------------------- fl_helpers.deploy
# Only checks that start nothing: a port bound and released, /proc read, an environment built,
# keys and certificates written to a temporary folder. run_deployment and main start Flower on
# a valid call, so their table is in tests/test_deploy.py (RUN_FUZZ, MAIN_FUZZ), run with the
# launcher stopped where its checks end; they are listed in FUZZED_ELSEWHERE.

import test_deploy  # noqa: E402

from fl_helpers import deploy  # noqa: E402

MODULES += (deploy,)
FUZZED_ELSEWHERE |= {deploy.run_deployment, deploy.main}
assert test_deploy.RUN_FUZZ and test_deploy.MAIN_FUZZ

DEPLOY_FOLDER = tempfile.mkdtemp(prefix="fl-course-fuzz-")
FAMILIES.update({"folder": [*FAMILIES["path"], ""]})
FOLDER = ("folder",)

REGISTRY += [
    Entry(deploy.free_port),
    Entry(deploy.check_port_free, args=(deploy.free_port(), "SuperLink"),
          corrupt={"port": COUNT},
          extra={"port": [65536, 2**64, test_deploy.BUSY_PORT],
                 "what": [None, 3, "", b"SuperLink", ["SuperLink"]]}),
    Entry(deploy.surviving_processes, args=(DEPLOY_FOLDER,), corrupt={"flwr_home": FOLDER}),
    Entry(deploy.child_environment, args=(DEPLOY_FOLDER, DEPLOY_FOLDER),
          corrupt={"flwr_home": FOLDER, "bin_dir": FOLDER}),
    Entry(deploy.make_tls_files, args=(DEPLOY_FOLDER,), corrupt={"folder": FOLDER}),
    Entry(deploy.make_node_keys, args=(DEPLOY_FOLDER, "node-0"),
          corrupt={"folder": FOLDER},
          extra={"folder": ["/no/such/folder"],
                 "name": [None, 3, b"node", "", "a/b", "../node", ".hidden", ["node"]]}),
]


# ====================================================== issue 25: notebook 09's modules
# psi, paillier, vertical, vertical_protocol, split_learning, transfer and vertical_widgets,
# and data's credit-card loader. Each module's own test file keeps a table of the bad values
# that only make sense for it (FUZZ: (function, valid keyword arguments, {argument: [bad
# values]})); every row of those tables becomes an Entry here, with the table's valid call and
# its values as ``extra``, and the shared families on top, so that every argument also meets
# NaN, bools, strings, huge numbers, ragged arrays... under TIMEOUT and the value-in-message
# check. The valid calls are small: 1024-bit keys made once by the test modules at import, PSI
# on a few ids, a few rows of toy data, one training step or epoch.

import test_paillier  # noqa: E402
import test_psi  # noqa: E402
import test_split_learning  # noqa: E402
import test_transfer  # noqa: E402
import test_vertical_protocol  # noqa: E402

from fl_helpers import (  # noqa: E402
    paillier,
    psi,
    split_learning,
    transfer,
    vertical,
    vertical_protocol,
    vertical_widgets,
)

MODULES += (psi, paillier, vertical, vertical_protocol, split_learning, transfer,
            vertical_widgets)


def _table_entry(row: tuple[Callable[..., Any], dict[str, Any], dict[str, list[Any]]],
                 **corrupt: tuple[str, ...]) -> Entry:
    """An Entry from one row of a module's FUZZ table, with the shared families ``corrupt``."""
    function, valid, bad = row
    return Entry(function, kwargs=dict(valid), corrupt=corrupt, extra=dict(bad))


def _rows(table: list[Any]) -> dict[str, tuple[Any, ...]]:
    """A module's FUZZ table by qualified name (``"Bank.step"``); a name made twice (a method
    of both PSI groups) keeps its rows under ``"name#k"``."""
    rows: dict[str, tuple[Any, ...]] = {}
    for function, valid, bad in table:
        name = function.__qualname__
        key, k = name, 1
        while key in rows:
            key, k = f"{name}#{k}", k + 1
        rows[key] = (function, valid, bad)
    return rows


FAMILIES.update({
    # -- for objects of a given class (keys, parties, messages, runs, data, summaries)
    "instance": [None, 3, "abc", object(), [object()]],
    # -- for ints where every size is valid (a plaintext multiplier in (-n, n))
    "any_int": ["1", None, True, 1.5, 1 + 0j, [1], np.array([1, 2]), object()],
})
INSTANCE = ("instance",)
#: Ints > 0 that are not bounded by 2**64 (plaintexts and ciphertexts mod a 1024-bit n).
BIG_INDEX = _without(INDEX, "huge_int")
BIG_COUNT = _without(COUNT, "huge_int")
OPTIONAL_INDEX = _without(INDEX, "none")

# ------------------------------------------------------------------------- fl_helpers.data
CREDIT_FOLDER = data.credit_default_dir()
REGISTRY += [
    Entry(data.credit_default_dir),
    Entry(data.load_credit_default, kwargs={"data_dir": CREDIT_FOLDER},
          corrupt={"data_dir": PATH}),
]

# -------------------------------------------------------------------------- fl_helpers.psi
# Ids are a list, tuple, set or 1-D array of int or str ids, so the array families apply.
PSI = _rows(test_psi.FUZZ)
REGISTRY += [
    _table_entry(PSI["intersect"], ids_a=ARRAY, ids_b=ARRAY, group=NAME, reveal_to_b=FLAG),
    _table_entry(PSI["PartyA"], ids=ARRAY, group=NAME, reveal_to_b=FLAG),
    _table_entry(PSI["PartyB"], ids=ARRAY, group=NAME),
    _table_entry(PSI["encode_id"], value=(*_without(INDEX, "string"), "container", "object")),
    _table_entry(PSI["unblinded_hashes_broken"], ids=ARRAY, group=NAME),
    _table_entry(PSI["dictionary_attack"], received=INSTANCE, candidate_ids=ARRAY,
                 attacker=OPTIONAL_NAME),
    *(_table_entry(row, encodings=ARRAY) for name, row in PSI.items()
      if name.split("#")[0].endswith(".hash_to_group")),
    *(_table_entry(row, elements=ARRAY, secret=INSTANCE) for name, row in PSI.items()
      if name.split("#")[0].endswith(".blind")),
    *(_table_entry(row, encodings=ARRAY, secret=INSTANCE) for name, row in PSI.items()
      if name.split("#")[0].endswith(".hash_and_blind")),
]

# --------------------------------------------------------------------- fl_helpers.paillier
# The 1024-bit key of tests/test_paillier.py (made once at its import).
PAILLIER = _rows(test_paillier.FUZZ)
_PUBLIC = ("instance",)
_CIPHERTEXT = (*BIG_INDEX, "zero")  # 1 .. n^2 - 1, a unit mod n
_PRECISION = INDEX  # 0 .. MAX_PRECISION_BITS
REGISTRY += [
    _table_entry(PAILLIER["gmpy2_available"]),
    _table_entry(PAILLIER["check_backend"], backend=OPTIONAL_NAME),
    _table_entry(PAILLIER["generate_keypair"], key_bits=COUNT, backend=OPTIONAL_NAME),
    _table_entry(PAILLIER["keypair_from_primes"], p=COUNT, q=COUNT, backend=OPTIONAL_NAME,
                 allow_insecure=FLAG),
    _table_entry(PAILLIER["encrypt"], public_key=_PUBLIC, plaintext=BIG_INDEX),
    _table_entry(PAILLIER["decrypt"], private_key=_PUBLIC, ciphertext=_CIPHERTEXT),
    _table_entry(PAILLIER["add"], public_key=_PUBLIC, ciphertext_a=_CIPHERTEXT,
                 ciphertext_b=_CIPHERTEXT),
    _table_entry(PAILLIER["add_plain"], public_key=_PUBLIC, ciphertext=_CIPHERTEXT,
                 plaintext=BIG_INDEX),
    _table_entry(PAILLIER["multiply_plain"], public_key=_PUBLIC, ciphertext=_CIPHERTEXT,
                 multiplier=("any_int",)),
    _table_entry(PAILLIER["rerandomize"], public_key=_PUBLIC, ciphertext=_CIPHERTEXT),
    _table_entry(PAILLIER["encode"], public_key=_PUBLIC, value=REAL, precision_bits=_PRECISION),
    _table_entry(PAILLIER["decode"], public_key=_PUBLIC, encoded=BIG_INDEX,
                 precision_bits=_PRECISION),
    _table_entry(PAILLIER["encrypt_vector"], public_key=_PUBLIC, values=ARRAY,
                 precision_bits=_PRECISION),
    _table_entry(PAILLIER["decrypt_raw"], private_key=_PUBLIC, encrypted=INSTANCE),
    _table_entry(PAILLIER["decrypt_vector"], private_key=_PUBLIC, encrypted=INSTANCE),
    _table_entry(PAILLIER["decode_vector"], public_key=_PUBLIC, residues=ARRAY,
                 precision_bits=_PRECISION),
    _table_entry(PAILLIER["add_vectors"], a=INSTANCE, b=INSTANCE),
    _table_entry(PAILLIER["add_plain_vector"], encrypted=INSTANCE, values=ARRAY),
    _table_entry(PAILLIER["multiply_plain_vector"], encrypted=INSTANCE, values=ARRAY,
                 precision_bits=_PRECISION),
    _table_entry(PAILLIER["dot_columns"], encrypted=INSTANCE, matrix=ARRAY,
                 precision_bits=_PRECISION),
    _table_entry(PAILLIER["PublicKey"], n=BIG_COUNT, backend=OPTIONAL_NAME),
    _table_entry(PAILLIER["EncryptedVector"], public_key=_PUBLIC, ciphertexts=INSTANCE,
                 precision_bits=_PRECISION),
]

# --------------------------------------------------------------------- fl_helpers.vertical
# Three raw rows of the credit-card file, six rows of toy features.
CREDIT_RAW = data.load_credit_default().features[:3]
VX = np.linspace(-1.0, 1.0, 12).reshape(6, 2)
VY = np.array([0, 1, 0, 1, 1, 0])
REGISTRY += [
    Entry(vertical.credit_parties,
          kwargs={"seed": 0, "bank_size": 2_000, "bureau_size": 2_000, "test_fraction": 0.2,
                  "data_dir": CREDIT_FOLDER},
          corrupt={"seed": INDEX, "bank_size": COUNT, "bureau_size": COUNT,
                   "test_fraction": OPEN_UNIT, "data_dir": PATH},
          extra={"bank_size": [30_001, 1], "bureau_size": [30_001, 1]}),
    *(Entry(encode, args=(CREDIT_RAW,), corrupt={"features": ARRAY},
            extra={"features": [CREDIT_RAW[:, :22], CREDIT_RAW[0],
                                CREDIT_RAW[:, :, None]]})
      for encode in (vertical.encode_bank, vertical.encode_bureau)),
    Entry(vertical.fit_logistic, args=(VX, VY), kwargs={"l2": 1e-3, "loss": "taylor"},
          corrupt={"x": ARRAY, "labels": LABELS, "l2": NON_NEGATIVE, "loss": NAME},
          extra={"x": [VX[:5], VX[0], VX[:, :, None]], "labels": [VY[:5], VY + 1, -VY]}),
    Entry(vertical.scores, args=(np.zeros(3), VX), corrupt={"weights": ARRAY, "x": ARRAY},
          extra={"weights": [np.zeros(2), np.zeros((3, 1))], "x": [VX[0], VX[:, :1]]}),
    Entry(vertical.standardise, args=(VX, VX[:2]), corrupt={"train": ARRAY},
          extra={"train": [VX[0], VX[:, :, None]],
                 "others": [(VX[:, :1],), (VX, None), ("abc",), (VX[0],), (VX * np.nan,)]}),
    Entry(vertical.taylor_loss, args=(np.linspace(-1.0, 1.0, 5),), corrupt={"margins": ARRAY}),
]

# ------------------------------------------------------------ fl_helpers.vertical_protocol
# Six rows, two features per party, the 1024-bit coordinator of tests/test_vertical_protocol.py;
# parties of our own (their methods change their state) on the same data.
VP = _rows(test_vertical_protocol.FUZZ)
_VP_DATA = test_vertical_protocol._data(rows=6, d_a=2, d_b=2)
VP_BANK, VP_BUREAU = test_vertical_protocol._parties(*_VP_DATA)
VP_COORDINATOR = test_vertical_protocol.COORDINATOR
VP_VECTOR = paillier.encrypt_vector(VP_COORDINATOR.public_key, [0.5, 1.0])
_GRADIENT_CORRUPT = {"features_a": ARRAY, "features_b": ARRAY, "labels": LABELS,
                     "weights_a": ARRAY, "weights_b": ARRAY, "l2": NON_NEGATIVE}
_SIZES = {"batch_rows": COUNT, "num_rows": COUNT, "batch_size": COUNT,
          "num_features_a": INDEX, "num_features_b": INDEX, "key_bits": COUNT,
          "compute_loss": FLAG, "batch": INDEX}


def _sizes(row: tuple[Any, ...]) -> Entry:
    return _table_entry(row, **{name: preset for name, preset in _SIZES.items()
                                if name in inspect.signature(row[0]).parameters})


REGISTRY += [
    _table_entry(VP["taylor_gradients"], **_GRADIENT_CORRUPT),
    _table_entry(VP["logistic_gradients"], **_GRADIENT_CORRUPT),
    _table_entry(VP["batch_loss"], **_GRADIENT_CORRUPT, loss=NAME),
    _table_entry(VP["fixed_point_gradient_bound"], max_abs_feature=NON_NEGATIVE,
                 max_abs_residual=NON_NEGATIVE, precision_bits=COUNT),
    _table_entry(VP["setup_messages"], key_bits=COUNT),
    _sizes(VP["batch_messages"]),
    _sizes(VP["epoch_bytes"]),
    _table_entry(VP["train_vertical"], features_a=ARRAY, features_b=ARRAY, labels=LABELS,
                 num_epochs=COUNT, batch_size=COUNT, learning_rate=POSITIVE, rng=RNG,
                 l2=NON_NEGATIVE, loss=NAME, encrypted_batches=INDEX, key_bits=COUNT,
                 precision_bits=COUNT, compute_loss=FLAG, backend=OPTIONAL_NAME),
    Entry(vertical_protocol.encrypted_step, args=(VP_BANK, VP_BUREAU, VP_COORDINATOR, [0, 1]),
          kwargs={"log": None, "batch": 0, "compute_loss": True},
          corrupt={"bank": INSTANCE, "bureau": INSTANCE, "coordinator": INSTANCE,
                   "rows": ARRAY, "batch": INDEX, "compute_loss": FLAG},
          extra={**VP["_step"][2], "log": ["log", 3, object()]}),
    _table_entry(VP["Coordinator"], key_bits=COUNT, backend=OPTIONAL_NAME),
    _table_entry(VP["Bank"], features=ARRAY, labels=LABELS, public_key=INSTANCE,
                 precision_bits=COUNT),
    _table_entry(VP["Bureau"], features=ARRAY, public_key=INSTANCE, precision_bits=COUNT),
    _table_entry(VP["MessageLog"], keep_payloads=FLAG),
    Entry(VP_BANK.encrypted_residual, kwargs={"quarter_scores_b": VP_VECTOR, "rows": [0, 1]},
          corrupt={"quarter_scores_b": INSTANCE, "rows": ARRAY},
          extra=VP["Bank.encrypted_residual"][2]),
    *(Entry(party.masked_gradient, kwargs={"residual": VP_VECTOR, "rows": [0, 1]},
            corrupt={"residual": INSTANCE, "rows": ARRAY},
            extra=VP["_Party.masked_gradient"][2]) for party in (VP_BANK, VP_BUREAU)),
    Entry(VP_BUREAU.encrypted_quarter_scores, kwargs={"rows": [0, 1]}, corrupt={"rows": ARRAY},
          extra=VP["Bureau.encrypted_quarter_scores"][2]),
    _table_entry(VP["Coordinator.decrypt_masked"], encrypted=INSTANCE, sender=NAME),
    _table_entry(VP["Coordinator.decrypt_loss"], encrypted=INSTANCE),
]

# -------------------------------------------------------------- fl_helpers.split_learning
# The 320-customer synthetic problem and the two-epoch run of tests/test_split_learning.py;
# credit_split_data on parties of 2,000 customers each.
SL = _rows(test_split_learning.FUZZ)
SMALL_PARTIES = vertical.credit_parties(seed=0, bank_size=2_000, bureau_size=2_000)
REGISTRY += [
    Entry(split_learning.credit_split_data, args=(SMALL_PARTIES,), corrupt={"parties": INSTANCE},
          extra=SL["credit_split_data"][2]),
    _table_entry(SL["train_split"], data=INSTANCE, epochs=COUNT, batch_size=COUNT,
                 embedding_dim=COUNT, hidden_units=INDEX, learning_rate=POSITIVE, seed=INDEX,
                 noise_multiplier=(*NON_NEGATIVE, "huge_scale"), target_delta=OPEN_UNIT,
                 randomness=("randomness",)),
    _table_entry(SL["label_dp_epsilon"], noise_multiplier=(*NON_NEGATIVE, "huge_scale"),
                 epochs=COUNT, target_delta=OPEN_UNIT),
    _table_entry(SL["noise_multiplier_for_label_dp"], target_epsilon=POSITIVE, epochs=COUNT,
                 target_delta=OPEN_UNIT),
    _table_entry(SL["residual_integers"], probabilities=ARRAY, labels=LABELS),
    _table_entry(SL["norm_scores"], gradients=ARRAY),
    _table_entry(SL["direction_scores"], gradients=ARRAY, reference=ARRAY),
    _table_entry(SL["unsupervised_direction_scores"], gradients=ARRAY),
    _table_entry(SL["attack_aucs"], run=INSTANCE, labels=LABELS,
                 known_positive=OPTIONAL_INDEX),
    Entry(split_learning.SplitRun(
        model=None, test_auc=0.5, test_auc_per_epoch=np.zeros(1), returned_gradients=None,
        batch_index=None, released_residuals=None, noise_multiplier=2.0, epochs=1,
        batch_size=60, target_delta=DELTA, epsilon=3.0, reproducible_noise=False
    ).privacy_statement, corrupt={"language": NAME}),
]

# -------------------------------------------------------------------- fl_helpers.transfer
# The toy bank (30 customers, 10 shared) and bureau of tests/test_transfer.py, our own copies
# (their steps change them), and its credit parties (made once at its import).
TR = _rows(test_transfer.FUZZ)
TR_BANK, TR_BUREAU, *_ = test_transfer._toy()
_PARTIES = {"parties": INSTANCE}
_FTL = {"representation_size": COUNT, "alignment_weight": NON_NEGATIVE,
        "source_weight": NON_NEGATIVE, "l2": NON_NEGATIVE, "learning_rate": POSITIVE}


def _bound(method: Callable[..., Any], owner: Any, **corrupt: tuple[str, ...]) -> Entry:
    """The table's row of ``method``, called on ``owner`` (our copy) instead."""
    _, valid, bad = TR[method.__qualname__]
    return Entry(getattr(owner, method.__name__), kwargs=dict(valid), corrupt=corrupt,
                 extra=dict(bad))


REGISTRY += [
    _table_entry(TR["phi_a"], representations=ARRAY, labels=LABELS),
    _table_entry(TR["predict"], phi=ARRAY, representations=ARRAY),
    _table_entry(TR["Bank"], features=ARRAY, labels=LABELS, overlap_rows=ARRAY, rng=RNG, **_FTL),
    _table_entry(TR["Bureau"], overlap_features=ARRAY, rng=RNG,
                 **{k: _FTL[k] for k in ("representation_size", "l2", "learning_rate")}),
    _bound(transfer.Bank.gradients, TR_BANK, bureau_representations=ARRAY),
    _bound(transfer.Bank.step, TR_BANK, bureau_representations=ARRAY),
    _bound(transfer.Bureau.gradients, TR_BUREAU, representation_gradient=ARRAY),
    _bound(transfer.Bureau.step, TR_BUREAU, representation_gradient=ARRAY),
    _bound(transfer.Bureau.scores, TR_BUREAU, features=ARRAY, phi=ARRAY),
    Entry(transfer.train_ftl, args=(TR_BANK, TR_BUREAU), kwargs={"num_steps": 1},
          corrupt={"bank": INSTANCE, "bureau": INSTANCE, "num_steps": COUNT},
          extra=TR["train_ftl"][2]),
    Entry(transfer.joint_loss, args=(TR_BANK, TR_BUREAU),
          corrupt={"bank": INSTANCE, "bureau": INSTANCE}, extra=TR["joint_loss"][2]),
    _table_entry(TR["overlap_sample"], **_PARTIES, size=COUNT, seed=INDEX),
    _table_entry(TR["non_overlap_ids"], **_PARTIES),
    _table_entry(TR["credit_ftl"], **_PARTIES, overlap_ids=ARRAY, score_ids=ARRAY, seed=INDEX,
                 num_steps=COUNT, **_FTL),
    _table_entry(TR["labels_only_scores"], **_PARTIES, overlap_ids=ARRAY, score_ids=ARRAY,
                 l2=NON_NEGATIVE),
    _table_entry(TR["months_late_scores"], **_PARTIES, score_ids=ARRAY),
    Entry(transfer.overlap_curve, args=(test_transfer.PARTIES, [20]), kwargs={"num_steps": 1},
          corrupt={**_PARTIES, "sizes": ARRAY, "seed": INDEX},
          extra={**TR["overlap_curve"][2],
                 "ftl_options": [{"bogus": 1}, {"overlap_ids": [1, 2]}, {"score_ids": [1]}]}),
]

# ------------------------------------------------------------- fl_helpers.vertical_widgets
# The widget's plain functions on the synthetic split-learning problem, one epoch; the
# explorer (a slider over the same summary) only with its checks, as for the other widgets.
WIDGET_DATA = test_split_learning.SMALL
LABEL_DP_SUMMARY = vertical_widgets.label_dp_summary(WIDGET_DATA, target_epsilon=2.0, epochs=1)
FAMILIES.update({
    "label_dp_summary": [None, 3, "abc", {}, {"attacks": {}}, LABEL_DP_SUMMARY["attacks"],
                         {**LABEL_DP_SUMMARY, "epsilon": "abc"},
                         {**LABEL_DP_SUMMARY, "test_auc": np.nan},
                         {**LABEL_DP_SUMMARY, "attacks": {"norm": np.array([np.nan])}},
                         {**LABEL_DP_SUMMARY, "attacks": {"norm": "abc"}}],
    "figure": [3, "fig", object(), PLOT_AX],
})
_AUC = _without(PROBABILITY, "none", "subnormal")  # in (0, 1]; None means no line
_EPSILON_RANGE = [vertical_widgets.EPSILON_RANGE[0] / 2, vertical_widgets.EPSILON_RANGE[1] * 2]
REGISTRY += [
    Entry(vertical_widgets.label_dp_summary, args=(WIDGET_DATA,),
          kwargs={"target_epsilon": 2.0, "epochs": 1, "target_delta": 1e-5, "seed": 0},
          corrupt={"data": INSTANCE, "target_epsilon": POSITIVE, "epochs": COUNT,
                   "target_delta": OPEN_UNIT, "seed": INDEX},
          extra={"data": [SMALL_PARTIES], "target_epsilon": _EPSILON_RANGE,
                 "epochs": [21]}),
    Entry(vertical_widgets.summary_line, args=(LABEL_DP_SUMMARY,),
          corrupt={"summary": ("label_dp_summary",)}),
    Entry(vertical_widgets.draw_label_dp, args=(LABEL_DP_SUMMARY,),
          kwargs={"bank_alone_auc": 0.7, "plain_auc": 0.8, "fig": None},
          corrupt={"summary": ("label_dp_summary",), "bank_alone_auc": _AUC,
                   "plain_auc": _AUC, "fig": ("figure",)}),
    Entry(vertical_widgets.label_dp_explorer, args=(WIDGET_DATA,),
          kwargs={"target_epsilon": 2.0, "bank_alone_auc": 0.7, "plain_auc": None, "seed": 0},
          corrupt={"data": INSTANCE, "target_epsilon": POSITIVE, "bank_alone_auc": _AUC,
                   "plain_auc": _AUC, "seed": INDEX},
          extra={"target_epsilon": _EPSILON_RANGE}),
]


# ---------------------------------------------------------------------- fl_helpers.dp_ftrl
# DP-FTRL (issue 28): its module and its accounting functions, from its own FUZZ table (the
# table's bad values plus the shared families for the plain arguments).

import test_dp_ftrl  # noqa: E402

from fl_helpers import dp_ftrl  # noqa: E402

MODULES += (dp_ftrl,)
REGISTRY += [_table_entry(row) for row in test_dp_ftrl.FUZZ]

# ---------------------------------------------------------- fl_helpers.production_widgets
# Notebook 04b's adaptive-clipping panel (issue 28), from tests/test_production_widgets.py's
# FUZZ table.

import test_production_widgets  # noqa: E402

from fl_helpers import production_widgets  # noqa: E402

MODULES += (production_widgets,)
REGISTRY += [_table_entry(row) for row in test_production_widgets.FUZZ]

# ------------------------------------------------------- fl_helpers.heterogeneity_widgets
# Notebook 10's per-client panel (issue 29), from tests/test_heterogeneity_widgets.py's FUZZ
# table.

import test_heterogeneity_widgets  # noqa: E402

from fl_helpers import heterogeneity_widgets  # noqa: E402

MODULES += (heterogeneity_widgets,)
REGISTRY += [_table_entry(row) for row in test_heterogeneity_widgets.FUZZ]

# ------------------------------------------- fl_helpers.heterogeneity, fl_helpers.personalisation
# Notebook 10's library (issue 29), and the loop's trainer helpers it added to training, from
# tests/test_heterogeneity.py's FUZZ table.

import test_heterogeneity  # noqa: E402

from fl_helpers import heterogeneity, personalisation  # noqa: E402

MODULES += (heterogeneity, personalisation)
REGISTRY += [_table_entry(row) for row in test_heterogeneity.FUZZ]
# The loop on a given schedule, DP-FTRL's entry (a stateless exact DP-FedAvg rule here, so that
# every call may use it; the seeded randomness may be claimed by every call).
REGISTRY += [
    Entry(training.run_private_schedule, args=(MODEL_FN, DATASETS),
          kwargs={"rounds": [np.array([0, 2])],
                  "aggregation_rule": aggregation.DPFedAvg(clipping_norm=1.0,
                                                           noise_multiplier=1.0,
                                                           expected_clients=2.0),
                  "randomness": schedule.PrivateRandomness.reproducible(0, warn=False),
                  "epsilons": np.array([1.0]), **LOCAL, "server_learning_rate": 1.0,
                  "test_data": TEST_DATA, "seed": 0, "progress": False, "engine": "loop",
                  "initial_weights": WEIGHTS, "callback": lambda figures: None,
                  "diagnostics": False},
          corrupt={"model_fn": ("model_fn",), "client_datasets": ("datasets",),
                   "rounds": ("schedule",), "aggregation_rule": ("rule", "none"),
                   "randomness": ("randomness", "none"), **LOCAL_CORRUPT,
                   "server_learning_rate": POSITIVE, "test_data": ("pair",), "seed": INDEX,
                   "progress": FLAG, "engine": NAME, "initial_weights": ("weights",),
                   "callback": CALLABLE, "diagnostics": FLAG},
          extra={"epsilons": [None, "abc", [1.0, 2.0], np.array([np.nan]), np.array([-1.0]),
                              np.array([[1.0]]), [object()]],
                 "local_epochs": MAX_EPOCHS, "callback": [lambda: None]}),
]


# ------------------------------------------------------------------------------ the cases

@dataclass(frozen=True)
class Case:
    entry: Entry
    argument: str
    family: str
    value: Any

    def call(self) -> Any:
        bound = inspect.signature(self.entry.function).bind(*self.entry.args,
                                                            **self.entry.kwargs)
        bound.arguments[self.argument] = self.value
        return self.entry.function(*bound.args, **bound.kwargs)


def _cases() -> dict[str, list[tuple[Case, str, str | None]]]:
    """Every entry's cases: (case, id, reason it may fail or None), by entry name."""
    cases: dict[str, list[tuple[Case, str, str | None]]] = {}
    for entry in REGISTRY:
        families = {argument: [(family, value) for family in names
                               for value in FAMILIES[family]]
                    for argument, names in entry.corrupt.items()}
        for argument, values in entry.extra.items():
            families.setdefault(argument, []).extend(("extra", value) for value in values)
        mine = cases.setdefault(entry.name, [])
        for argument, pairs in families.items():
            for index, (family, value) in enumerate(pairs):
                reason = entry.xfail.get((argument, family), entry.xfail.get(argument)) or \
                    KNOWN_FAILURES.get((entry.name.split(".")[0], family))
                mine.append((Case(entry, argument, family, value),
                             f"{entry.name}-{argument}-{family}-{index}", reason))
    return cases


#: One test per entry runs all of its cases (18,000 one-case tests cost pytest and xdist more
#: than the calls themselves); a failure lists every case that failed, by its id.
CASES = _cases()


_run_with_timeout = guards.run_with_timeout


def _value_shown(message: str, value: Any) -> bool:
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) \
            and abs(int(value)).bit_length() > 100:  # too long to print (or to str() at all)
        if "digits" in message or "too large" in message:
            return True
        try:
            return str(value)[:30] in message
        except ValueError:
            return False
    texts = {v._fmt(value), repr(value), str(value)}
    if isinstance(value, (float, np.floating)):
        texts |= {f"{float(value):g}", str(float(value)).replace("inf", "infinity")}
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        texts.add(f"{float(value)}")
    return any(text and text in message for text in texts)


def _problem(case: Case) -> str | None:
    """What is wrong with how ``case``'s call rejects its bad argument (None: nothing)."""
    status, result = _run_with_timeout(case.call, TIMEOUT)
    label = f"{case.entry.name}({case.argument}={v._fmt(case.value)})"
    if status == "hung":
        return f"{label} still running after {TIMEOUT} s"
    if status != "raised":
        return f"{label} was accepted silently and returned {v._fmt(result)}"
    if not isinstance(result, (ValueError, TypeError)):
        return f"{label} raised {type(result).__name__}: {result}"
    message = str(result)
    if case.argument not in message:
        return f"{label}: the message does not name the argument: {message}"
    if case.family in SCALAR_FAMILIES and not _value_shown(message, case.value):
        return f"{label}: the message does not show the value: {message}"
    return None


@pytest.mark.parametrize("entry", REGISTRY, ids=lambda entry: entry.name)
def test_bad_input_is_rejected_clearly(entry):
    """Every bad value of every corrupted argument of ``entry``: a ValueError or TypeError that
    names the argument (and shows a scalar value), within TIMEOUT. A case with a known-failure
    reason (``xfail``, ``KNOWN_FAILURES``) is run too, and may fail (none has one today)."""
    problems = []
    for case, case_id, reason in CASES[entry.name]:
        problem = _problem(case)
        if problem is not None and reason is None:
            problems.append(f"[{case_id}] {problem}")
    assert not problems, (f"{len(problems)} of the {len(CASES[entry.name])} bad inputs of "
                          f"{entry.name} are not rejected clearly:\n" + "\n".join(problems))


@pytest.mark.parametrize("entry", REGISTRY, ids=lambda entry: entry.name)
def test_valid_calls_succeed(entry):
    # The base call must work, so that each bad case fails because of its one bad argument.
    status, result = _run_with_timeout(lambda: entry.function(*entry.args, **entry.kwargs), 120)
    assert status == "returned", f"{entry.name}: the valid call {status}: {result!r}"


def test_corrupted_arguments_exist():
    for entry in REGISTRY:
        parameters = inspect.signature(entry.function).parameters
        for argument in (*entry.corrupt, *entry.extra):
            assert argument in parameters, f"{entry.name} has no argument {argument!r}"
        for family in (name for names in entry.corrupt.values() for name in names):
            assert family in FAMILIES, f"{entry.name}: unknown family {family!r}"


def test_registry_covers_every_public_function():
    covered = {entry.function for entry in REGISTRY} | FUZZED_ELSEWHERE
    missing = [f"{module.__name__}.{name}" for module in MODULES
               for name, function in inspect.getmembers(module, inspect.isfunction)
               if function.__module__ == module.__name__ and not name.startswith("_")
               and function not in covered and function not in UNCHECKED]
    assert not missing, f"no fuzz entry for {missing}: add one to REGISTRY (see the docstring)"


def test_unchecked_fast_paths_are_documented():
    # Every function left out of the fuzz says so in its docstring, has a checked public
    # version that is fuzzed, and a reason here.
    covered = {entry.function for entry in REGISTRY}
    for function, reason in UNCHECKED.items():
        assert function not in covered and len(reason) > 40
        assert "without the" in (function.__doc__ or "") and "checks" in function.__doc__
        checked = CHECKED_VERSION.get(function) or getattr(
            inspect.getmodule(function), function.__name__.removesuffix("_unchecked"))
        assert checked in covered, f"{function.__name__}: its checked version is not fuzzed"


def test_every_argument_is_fuzzed():
    # Every parameter of every function is corrupted by at least one family or extra value.
    for entry in REGISTRY:
        parameters = inspect.signature(entry.function).parameters
        unfuzzed = set(parameters) - set(entry.corrupt) - set(entry.extra)
        assert not unfuzzed, f"{entry.name}: arguments {sorted(unfuzzed)} are never corrupted"


def test_every_row_of_the_module_tables_has_an_entry():
    # A row added to a module's FUZZ table (notebook 09's modules) must reach this table too.
    names = {(entry.function.__module__, entry.function.__qualname__) for entry in REGISTRY}
    for module in (test_psi, test_paillier, test_vertical_protocol, test_split_learning,
                   test_transfer, test_dp_ftrl, test_heterogeneity):
        for function, _, _ in module.FUZZ:
            if function.__qualname__ == "_step":  # encrypted_step with the module's parties
                function = vertical_protocol.encrypted_step
            assert (function.__module__, function.__qualname__) in names, \
                f"{module.__name__}.FUZZ has {function.__qualname__}, REGISTRY does not"


def test_print_count(capsys):
    cases = [case for mine in CASES.values() for case in mine]
    xfails = sum(1 for _, _, reason in cases if reason)
    with capsys.disabled():
        print(f"\nbad inputs tried: {len(cases)} ({len(REGISTRY)} functions, "
              f"{len(cases) - xfails} must raise a clear error, {xfails} may fail, each with "
              "its reason)")
    assert len(cases) > 1000

