"""DP-FTRL without sampling: tree aggregation of the clipped updates' prefix sums, exact noise.

Kairouz, McMahan, Song, Thakkar, Thakurta & Xu 2021, "Practical and Private (Deep) Learning
without Sampling or Shuffling" (ICML), Section 3. DP-FedAvg noises every round's sum afresh and
needs Poisson sampling (a secret, random choice of clients) to amplify its privacy; production
fleets cannot promise that, because devices take part when they are idle, charging and on
Wi-Fi. DP-FTRL instead releases the **prefix sums** ``S_t = sum_{s <= t} x_s`` of the rounds'
clipped update sums ``x_s`` through the binary-tree mechanism (Dwork, Naor, Pitassi & Rothblum
2010; Chan, Shi & Song 2011): each node of a binary tree over the rounds sums a dyadic interval
of rounds and is noised once; ``S_t`` is the sum of the ``popcount(t) <= log2(t) + 1`` nodes of
``t``'s binary decomposition. The model after round ``t`` is

    ``w_t = w_0 + eta * noised(S_t) / m``

(the client updates ``delta = w_k - w`` already point downhill, so this is FTRL's ``w_0 - eta
sum g``), so the server's step in round ``t`` is ``(noised(S_t) - noised(S_{t-1})) / m`` with a
public constant ``m``. The tree restarts every ``restart_every`` rounds (one epoch in Kairouz et
al.'s experiments), so its depth stays small.

**Why reusing a node's noise is not noise reuse.** The forbidden reuse is two *releases* of
different data with the same noise, whose difference cancels the noise. Here every node is
released exactly once, with its own independent noise; every prefix sum is a sum of released
nodes, i.e. post-processing of them. The privacy analysis is of the set of nodes (each client
moves at most ``tree_levels(k)`` of them), not of the prefix sums, and
:class:`fl_helpers.schedule.PrivateRandomness` still hands each round's key out once: the node
completed in round ``t`` is drawn from round ``t``'s key. (Only the top node completed in a round
is ever used in a prefix sum, so exactly one node, ``d`` draws, is noised per round: the same
cost as DP-FedAvg.)

**The assumption instead of sampling.** Each client takes part **at most once per tree**
(restart period), in a schedule that need not be random or secret (who takes part when may be
public; it must not depend on the private updates). :func:`check_participation` checks a
schedule and refuses a violation with :class:`ParticipationError`; the accounting
(:func:`fl_helpers.accounting.dp_ftrl_epsilon`, dp-accounting's
``SingleEpochTreeAggregationDpEvent``) then needs no amplification. Unit: a client (all its
updates); relation: its updates replaced by zeros (Kairouz et al., Definition 1.1); trusted: the
server that clips, sums and noises; observer: anyone who sees every released model.

Exact noise: each clipped update is an integer vector on the grid ``C / GRID_STEPS``
(:func:`fl_helpers.discrete_noise.clip_to_integer_grid`), leaves and nodes are exact integer
sums, each node's noise is a discrete Gaussian vector (:func:`fl_helpers.discrete_noise.
discrete_gaussian`); floats appear only after the noise (post-processing).

* :func:`prefix_nodes`, :func:`tree_prefix_sums_reference`: the mechanism from scratch (a dict
  of nodes, one loop), the reference.
* :class:`TreeAggregator`: the same online, one leaf per round, keeping one noise vector per
  level; bit for bit equal to the reference.
* :class:`DPFTRL`: the aggregation rule (server step) on the course's rule interface.
* :func:`check_participation`, :func:`cyclic_schedule`, :func:`availability_schedule`,
  :func:`epsilon_for_schedule`: schedules by availability, their check and their epsilon.
* :func:`run_dp_ftrl`: DP-FTRL on the course's one training loop
  (:func:`fl_helpers.training.run_private_schedule`, either engine), checked, accounted,
  secret by default; returns a :class:`fl_helpers.training.DPFTRLHistory`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from fl_helpers import _validation as v
from fl_helpers import accounting, aggregation, discrete_noise, schedule, training
from fl_helpers import schedule as schedule_module

Weights = list[np.ndarray]

#: The most leaves one tree takes (its levels then fit 63 bits).
MAX_TREE_LEAVES = 2**40


class ParticipationError(ValueError):
    """A schedule lets a client take part more than once in one tree (restart period), which
    DP-FTRL's accounting assumes never happens."""


class TreeStateError(ValueError):
    """A tree was fed rounds out of order, or with randomness other than its own."""


# --------------------------------------------------------------------------------------------
# The binary-tree mechanism from scratch
# --------------------------------------------------------------------------------------------


def prefix_nodes(position: int) -> list[tuple[int, int]]:
    """The nodes whose sums make the prefix sum of leaves ``1..position`` (1-based).

    Each node is a dyadic interval ``(start, end]`` of leaves; the nodes are ``position``'s
    binary decomposition, peeled from its lowest set bit: ``(t - lowbit(t), t]``, then the same
    for ``t - lowbit(t)``, until 0. There are ``popcount(position)`` of them.

    Args:
        position: ``t`` >= 1, the leaves so far in the current tree.

    Returns:
        ``[(start, end), ...]``, ends decreasing.
    """
    position = v.check_int("position", position, minimum=1, maximum=MAX_TREE_LEAVES)
    nodes = []
    end = position
    while end > 0:
        size = end & -end
        nodes.append((end - size, end))
        end -= size
    return nodes


def _check_variance(variance: Any) -> int:
    variance = v.check_int("variance", variance, minimum=1,
                           maximum=discrete_noise.MAX_LARGE_VARIANCE)
    root = math.isqrt(variance) + 1
    if variance > discrete_noise.MAX_VARIANCE and root * (root - 1) != variance:
        raise ValueError(f"variance must be at most {discrete_noise.MAX_VARIANCE} or of the form "
                         f"t (t - 1), got {variance}; round it with "
                         "discrete_noise.exact_variance_at_least().")
    return variance


def _check_randomness(randomness: Any) -> schedule.PrivateRandomness:
    if randomness is None:
        return schedule.PrivateRandomness.secret()
    if not isinstance(randomness, schedule.PrivateRandomness):
        raise TypeError(f"randomness must be a PrivateRandomness or None (a fresh secret one), "
                        f"got {type(randomness).__name__}.")
    return randomness


def _check_restart(restart_every: Any) -> int | None:
    if restart_every is None:
        return None
    return v.check_int("restart_every", restart_every, minimum=1, maximum=MAX_TREE_LEAVES)


def _node_noise(variance: int, dimension: int, randomness: schedule.PrivateRandomness,
                round_index: int) -> np.ndarray:
    """The noise of the node completed in round ``round_index``: ``dimension`` exact discrete
    Gaussian draws from that round's key (handed out once by a secret ``randomness``)."""
    return discrete_noise._discrete_gaussian(variance, dimension,
                                             randomness._exact_bits(round_index))


def _check_leaves(leaves: Any) -> np.ndarray:
    if leaves is None or isinstance(leaves, (str, bytes)):
        raise TypeError(f"leaves must be a 2-D integer array (rounds x coordinates), got "
                        f"{type(leaves).__name__}.")
    try:
        array = np.asarray(leaves)
    except (TypeError, ValueError) as error:
        raise TypeError(f"leaves must be a 2-D integer array, got {type(leaves).__name__}."
                        ) from error
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"leaves must hold integers (the exact sums on the grid), got dtype "
                        f"{array.dtype}.")
    if array.ndim != 2 or array.shape[0] < 1:
        raise ValueError(f"leaves must be a 2-D array with at least one round, got shape "
                         f"{array.shape}.")
    return array.astype(np.int64)


def tree_prefix_sums_reference(leaves: np.ndarray, *, variance: int,
                               randomness: schedule.PrivateRandomness | None = None,
                               restart_every: int | None = None,
                               first_round: int = 0) -> np.ndarray:
    """Noised prefix sums of integer leaves by the binary-tree mechanism, written plainly.

    For every tree (``restart_every`` leaves, the last one possibly shorter), leaf ``i``
    (1-based, global round ``first_round + ...``) completes the nodes ``(i - 2^l, i]`` for
    ``2^l`` dividing ``i``; only the largest, ``(i - lowbit(i), i]``, is ever part of a prefix's
    decomposition, so only it gets noise: ``N_Z(0, variance)`` per coordinate, drawn once from
    the round's key and kept in a dict. The prefix sum ``i`` is the exact sum of leaves ``1..i``
    plus the noise of the nodes of :func:`prefix_nodes`\\ ``(i)``, which is the sum of those
    noised nodes (Kairouz et al. 2021, Section 3; the binary mechanism of Chan, Shi & Song
    2011).

    Args:
        leaves: ``(T, d)`` integers: round ``t``'s exact sum of clipped grid updates.
        variance: ``sigma^2`` of each node's noise, an exact variance of
            :func:`fl_helpers.discrete_noise.discrete_gaussian`.
        randomness: Where the noise comes from; ``None``: a fresh secret
            ``PrivateRandomness`` (reproducible only with ``PrivateRandomness.reproducible``).
        restart_every: Leaves per tree; ``None``: one tree.
        first_round: The global index of the first leaf's round (its noise key).

    Returns:
        ``(T, d)`` int64: the noised prefix sum of each round, within its tree.
    """
    array = _check_leaves(leaves)
    variance = _check_variance(variance)
    randomness = _check_randomness(randomness)
    restart = _check_restart(restart_every) or len(array)
    first_round = v.check_int("first_round", first_round, minimum=0)
    out = np.zeros_like(array)
    for tree_start in range(0, len(array), restart):
        tree = array[tree_start:tree_start + restart]
        noise: dict[tuple[int, int], np.ndarray] = {}
        for i in range(1, len(tree) + 1):
            noise[(i - (i & -i), i)] = _node_noise(variance, array.shape[1], randomness,
                                                   first_round + tree_start + i - 1)
            total = tree[:i].sum(axis=0)
            for node in prefix_nodes(i):
                total = total + noise[node]
            out[tree_start + i - 1] = total
    return out


# --------------------------------------------------------------------------------------------
# The online tree, one leaf per round
# --------------------------------------------------------------------------------------------


class TreeAggregator:
    """The binary-tree mechanism online: one leaf per round in, its noised prefix sum out.

    Equal, bit for bit, to :func:`tree_prefix_sums_reference` on the same randomness. It keeps
    the exact prefix sum and, per level ``l``, the noise of the latest node of size ``2^l``:
    leaf ``i`` completes the node of level ``lowbit(i)`` (its noise drawn once, from round
    ``i``'s key) and the prefix noise is the sum over ``i``'s set bits of the stored level
    noises (the latest node of level ``l`` ends at ``i`` with its bits below ``l`` cleared,
    exactly the decomposition's node). Memory ``O(d log k)``, ``d`` draws per round.

    Args:
        dimension: ``d``, coordinates per leaf, in 1..2^27.
        variance: ``sigma^2`` of each node's noise (an exact discrete Gaussian variance).
        restart_every: Leaves per tree (``None``: never restart).
        randomness: The run's :class:`fl_helpers.schedule.PrivateRandomness`; ``None``: a fresh
            secret one.
        first_round: Global index of the first round fed (rounds must then come in order).
    """

    def __init__(self, *, dimension: int, variance: int, restart_every: int | None = None,
                 randomness: schedule.PrivateRandomness | None = None,
                 first_round: int = 0) -> None:
        self.dimension = v.check_int("dimension", dimension, minimum=1,
                                     maximum=discrete_noise.MAX_SIZE)
        self.variance = _check_variance(variance)
        self.restart_every = _check_restart(restart_every)
        self.randomness = _check_randomness(randomness)
        self.next_round = v.check_int("first_round", first_round, minimum=0)
        #: Leaves in the current tree.
        self.position = 0
        self._exact = np.zeros(self.dimension, dtype=np.int64)
        self._levels: list[np.ndarray | None] = []

    def __repr__(self) -> str:
        return (f"TreeAggregator(dimension={self.dimension}, variance={self.variance}, "
                f"restart_every={self.restart_every}, position={self.position})")

    @property
    def starts_tree(self) -> bool:
        """Whether the next leaf is the first of a tree (the next prefix sum starts at 0)."""
        return self.position == 0 or self.position == self.restart_every

    def add(self, leaf: np.ndarray, *, round_index: int) -> np.ndarray:
        """Adds round ``round_index``'s leaf and returns the tree's noised prefix sum.

        Args:
            leaf: ``(d,)`` integers, the round's exact sum of clipped grid updates.
            round_index: Must be :attr:`next_round` (one leaf per round, in order).

        Returns:
            ``(d,)`` int64, the noised prefix sum of the current tree.

        Raises:
            TreeStateError: A round out of order.
        """
        round_index = v.check_int("round_index", round_index, minimum=0)
        if round_index != self.next_round:
            raise TreeStateError(f"round_index must be {self.next_round} (one leaf per round, in "
                                 f"order), got {round_index}.")
        array = np.asarray(leaf)
        if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"leaf must hold integers, got dtype {array.dtype}.")
        if array.shape != (self.dimension,):
            raise ValueError(f"leaf must have shape ({self.dimension},), got {array.shape}.")
        if self.starts_tree:
            self.position = 0
            self._exact = np.zeros(self.dimension, dtype=np.int64)
            self._levels = []
        self.position += 1
        level = (self.position & -self.position).bit_length() - 1
        while len(self._levels) <= level:
            self._levels.append(None)
        self._levels[level] = _node_noise(self.variance, self.dimension, self.randomness,
                                          round_index)
        for lower in range(level):  # superseded: no later prefix uses them
            self._levels[lower] = None
        self._exact = self._exact + array.astype(np.int64)
        self.next_round += 1
        noised = self._exact.copy()
        for bit, noise in enumerate(self._levels):
            if self.position >> bit & 1:
                assert noise is not None  # set when bit's node completed, kept since
                noised += noise
        return noised


def tree_prefix_sums(leaves: np.ndarray, *, variance: int,
                     randomness: schedule.PrivateRandomness | None = None,
                     restart_every: int | None = None, first_round: int = 0) -> np.ndarray:
    """:func:`tree_prefix_sums_reference` by :class:`TreeAggregator` (the same arguments and
    result, bit for bit)."""
    array = _check_leaves(leaves)
    tree = TreeAggregator(dimension=array.shape[1], variance=variance,
                          restart_every=restart_every, randomness=randomness,
                          first_round=first_round)
    return np.stack([tree.add(row, round_index=tree.next_round) for row in array])


def noise_nodes_per_update(position: int) -> int:
    """How many nodes' noises remain in round ``position``'s step ``noised(S_t) -
    noised(S_{t-1})`` (1-based within its tree): the symmetric difference of the two
    decompositions, so the step's noise variance is this times ``sigma^2`` (the prefix sum's
    is ``popcount(t)`` times)."""
    position = v.check_int("position", position, minimum=1, maximum=MAX_TREE_LEAVES)
    now = set(prefix_nodes(position))
    before = set(prefix_nodes(position - 1)) if position > 1 else set()
    return len(now ^ before)


# --------------------------------------------------------------------------------------------
# The aggregation rule
# --------------------------------------------------------------------------------------------


class DPFTRL(aggregation.LinearRule):
    """DP-FTRL's server step (Kairouz et al. 2021, Algorithm 1 without momentum), exact noise.

    Round ``t``: each participating client's update is clipped to L2 norm ``C`` on the integer
    grid ``C / GRID_STEPS`` (norm <= GRID_STEPS exactly), the integers are summed (the leaf),
    the tree releases the noised prefix sum ``noised(S_t)`` of its restart period (node noise
    ``N_Z(0, sigma^2)``, ``sigma >= z GRID_STEPS``), and the update is ``(noised(S_t) -
    noised(S_{t-1})) C / (GRID_STEPS m)`` (``S_0 = 0`` at every restart). With the server
    optimizer ``ServerSGD(eta)``, ``w_t = w_start + eta noised(S_t) C / (GRID_STEPS m)`` within a
    tree. A stateful rule: one instance serves one run, rounds in order from 0.

    Assumption (instead of Poisson sampling): **each client takes part at most once per
    restart period**; check the schedule with :func:`check_participation` and account it with
    :func:`epsilon_for_schedule`. ``m`` is a public constant (the clients per round, or a bound
    on them), never the realised count. The rule describes no per-round event to the accountant
    (:meth:`~fl_helpers.aggregation.AggregationRule.dp_event` is ``None``): its rounds share
    the tree's noise, so its release is accounted over the whole schedule at once
    (:func:`fl_helpers.accounting.dp_ftrl_epsilon`'s tree events), by :func:`run_dp_ftrl`.

    Args:
        clipping_norm: ``C`` > 0.
        noise_multiplier: ``z`` > 0, node noise std / ``C``.
        clients_per_round: ``m`` > 0, the public divisor.
        restart_every: Rounds per tree (``None``: one tree for the whole run).
    """

    name = "DP-FTRL"
    clipping_norm: float
    fusable = False
    takes_factors = False
    draws_run_noise = True

    def __init__(self, *, clipping_norm: float, noise_multiplier: float,
                 clients_per_round: float, restart_every: int | None = None) -> None:
        self.clipping_norm = v.check_positive("clipping_norm", clipping_norm)
        self.noise_multiplier = v.check_positive("noise_multiplier", noise_multiplier)
        self.clients_per_round = v.check_positive("clients_per_round", clients_per_round)
        self.restart_every = _check_restart(restart_every)
        wanted = (self.noise_multiplier * discrete_noise.GRID_STEPS) ** 2
        if wanted > discrete_noise.MAX_LARGE_VARIANCE:
            largest = math.sqrt(discrete_noise.MAX_LARGE_VARIANCE) / discrete_noise.GRID_STEPS
            raise ValueError(f"noise_multiplier must be <= {largest:.0f}, got "
                             f"{v._fmt(self.noise_multiplier)}.")
        #: The discrete Gaussian variance of every node, on the grid.
        self.integer_variance = discrete_noise.exact_variance_at_least(wanted)
        self._tree: TreeAggregator | None = None
        self._previous: np.ndarray | None = None

    def __repr__(self) -> str:
        return (f"DPFTRL(clipping_norm={self.clipping_norm!r}, noise_multiplier="
                f"{self.noise_multiplier!r}, clients_per_round={self.clients_per_round!r}, "
                f"restart_every={self.restart_every!r})")

    def client_scales(self, num_examples: np.ndarray) -> np.ndarray:
        return np.ones(len(num_examples), dtype=np.float64)

    def aggregate(self, deltas: Sequence[Weights], num_examples: np.ndarray,
                  context: aggregation.RoundContext) -> Weights:
        if not len(deltas):
            raise ValueError("DPFTRL.aggregate needs the round's updates (an empty round goes to "
                             "aggregate_empty).")
        rows, shapes = aggregation._flatten_updates(deltas)
        integers = discrete_noise.clip_to_integer_grid(rows, clipping_norm=self.clipping_norm,
                                                       steps=discrete_noise.GRID_STEPS)
        return self._step(integers.sum(axis=0), shapes, context)

    def finalize(self, total: Weights, num_examples: np.ndarray,
                 context: aggregation.RoundContext) -> Weights:
        """Only for a round without updates (its sum is zero): the tree still takes a leaf."""
        if any(np.any(np.asarray(t) != 0) for t in total):
            raise ValueError("DPFTRL adds its noise to the exact integer sum of the clients' "
                             "updates: call aggregate(deltas), not finalize with a float sum.")
        size = sum(int(np.size(t)) for t in total)
        return self._step(np.zeros(size, dtype=np.int64), [np.shape(t) for t in total], context)

    def aggregate_empty(self, shapes: Sequence[tuple[int, ...]],
                        context: aggregation.RoundContext) -> Weights:
        """An empty round is a zero leaf: the tree and its noise go on as in any round."""
        return self.finalize([np.zeros(shape, dtype=np.float32) for shape in shapes],
                             np.zeros(0, dtype=np.int64), context)

    def _step(self, leaf: np.ndarray, shapes: list[tuple[int, ...]],
              context: aggregation.RoundContext) -> Weights:
        if context.randomness is None:
            raise ValueError("DPFTRL needs the run's randomness to draw its noise, got "
                             "context.randomness=None.")
        if self._tree is None:
            self._tree = TreeAggregator(dimension=leaf.size, variance=self.integer_variance,
                                        restart_every=self.restart_every,
                                        randomness=context.randomness,
                                        first_round=context.round_index)
        if context.randomness is not self._tree.randomness:
            raise TreeStateError("a DPFTRL rule serves one run: this round's randomness is not "
                                 "the one its tree started with. Make a new DPFTRL per run.")
        if leaf.size != self._tree.dimension:
            raise ValueError(f"the updates must keep their size ({self._tree.dimension} values), "
                             f"got {leaf.size}.")
        starts = self._tree.starts_tree
        prefix = self._tree.add(leaf, round_index=context.round_index)
        previous = np.zeros_like(prefix) if starts or self._previous is None else self._previous
        self._previous = prefix
        # Post-processing of the released integers from here on.
        scale = self.clipping_norm / discrete_noise.GRID_STEPS / self.clients_per_round
        flat = (prefix - previous).astype(np.float64) * scale
        pieces = np.split(flat, np.cumsum([math.prod(s) for s in shapes])[:-1])
        return [piece.reshape(shape).astype(np.float32)
                for piece, shape in zip(pieces, shapes, strict=True)]


# --------------------------------------------------------------------------------------------
# Participation by availability, and its accounting
# --------------------------------------------------------------------------------------------


def _check_schedule(rounds: Any, num_clients: int) -> list[np.ndarray]:
    if isinstance(rounds, (str, bytes, np.ndarray)) or not isinstance(rounds, Sequence):
        raise TypeError(f"schedule must be a list with one array of client ids per round, got "
                        f"{type(rounds).__name__}.")
    if not 1 <= len(rounds) <= accounting.MAX_NUM_ROUNDS:
        raise ValueError(f"schedule must have 1..{accounting.MAX_NUM_ROUNDS} rounds, got "
                         f"{len(rounds)}.")
    return [v.check_ids(f"schedule[{t}]", ids, num=num_clients, unique=True)
            for t, ids in enumerate(rounds)]


def check_participation(schedule: Sequence[np.ndarray], *, num_clients: int,
                        restart_every: int | None = None) -> int:
    """Checks that every client takes part at most once per tree; returns the most trees any
    client takes part in (``trees_per_client`` of the accounting).

    DP-FTRL's guarantee rests on this bound instead of on sampling (Kairouz et al. 2021,
    Section 3: each record is processed once per pass, and the tree restarts every pass).

    Args:
        schedule: Per round, the 1-D array of distinct client ids taking part (may be empty).
        num_clients: ``N`` >= 1.
        restart_every: Rounds per tree (``None``: one tree).

    Returns:
        The busiest client's number of trees (0 if nobody takes part).

    Raises:
        ParticipationError: A client in two rounds of one tree (the message names the client,
            the rounds (0-based) and the tree).
    """
    num_clients = v.check_int("num_clients", num_clients, minimum=1)
    rounds = _check_schedule(schedule, num_clients)
    restart = _check_restart(restart_every) or len(rounds)
    last_seen = np.full(num_clients, -1, dtype=np.int64)
    trees = np.zeros(num_clients, dtype=np.int64)
    for t, ids in enumerate(rounds):
        tree_start = (t // restart) * restart
        repeated = ids[last_seen[ids] >= tree_start]
        if repeated.size:
            client = int(repeated[0])
            raise ParticipationError(
                f"client {client} takes part in rounds {int(last_seen[client])} and {t} "
                f"(0-based), both in tree {t // restart} (rounds {tree_start}.."
                f"{tree_start + restart - 1}): "
                "DP-FTRL's accounting assumes at most once per tree. Restart the tree more "
                "often (restart_every) or keep the client out until the next tree.")
        fresh = ids[last_seen[ids] < tree_start]
        trees[fresh] += 1
        last_seen[ids] = t
    return int(trees.max())


def cyclic_schedule(num_clients: int, *, clients_per_round: int,
                    num_rounds: int) -> list[np.ndarray]:
    """Clients in a fixed order, ``clients_per_round`` at a time, wrapping around: no sampling,
    no shuffling. With ``restart_every = num_clients // clients_per_round`` (one pass) every
    client takes part at most once per tree.

    Returns:
        ``num_rounds`` arrays of ``clients_per_round`` ids.
    """
    num_clients = v.check_int("num_clients", num_clients, minimum=1)
    clients_per_round = v.check_int("clients_per_round", clients_per_round, minimum=1,
                                    maximum=num_clients)
    num_rounds = v.check_int("num_rounds", num_rounds, minimum=1,
                             maximum=accounting.MAX_NUM_ROUNDS)
    return [(np.arange(clients_per_round, dtype=np.int64) + t * clients_per_round) % num_clients
            for t in range(num_rounds)]


def availability_schedule(num_clients: int, *, clients_per_round: int, num_rounds: int,
                          restart_every: int, availability: float,
                          seed: int = 0) -> list[np.ndarray]:
    """Clients that check in when available, at most once per tree: a simulated device fleet.

    Each round every client is available with probability ``availability`` (a public, seeded
    simulation of devices being idle and charging: **not** a privacy mechanism, nothing is
    amplified by it); up to ``clients_per_round`` of the available clients that have not taken
    part in the current tree do, in the order they check in.

    Args:
        num_clients: ``N`` >= 1.
        clients_per_round: ``m``, the most clients per round.
        num_rounds: ``T`` >= 1.
        restart_every: Rounds per tree.
        availability: Probability in (0, 1] that a client is available in a round.
        seed: Integer >= 0 of the simulation.

    Returns:
        Per round, the ids taking part (possibly fewer than ``m``).
    """
    num_clients = v.check_int("num_clients", num_clients, minimum=1)
    clients_per_round = v.check_int("clients_per_round", clients_per_round, minimum=1,
                                    maximum=num_clients)
    num_rounds = v.check_int("num_rounds", num_rounds, minimum=1,
                             maximum=accounting.MAX_NUM_ROUNDS)
    restart = v.check_int("restart_every", restart_every, minimum=1)
    availability = v.check_probability("availability", availability)
    if availability == 0:
        raise ValueError("availability must be > 0, got 0.")
    seed = v.check_int("seed", seed, minimum=0)
    rounds = []
    used = np.zeros(num_clients, dtype=bool)
    for t in range(num_rounds):
        if t % restart == 0:
            used[:] = False
        rng = schedule.public_rng(seed, "client availability", (t,))
        order = rng.permutation(num_clients)
        available = order[(rng.random(num_clients) < availability)[order] & ~used[order]]
        chosen = np.sort(available[:clients_per_round]).astype(np.int64)
        used[chosen] = True
        rounds.append(chosen)
    return rounds


def epsilon_for_schedule(schedule: Sequence[np.ndarray], *, num_clients: int,
                         noise_multiplier: float, restart_every: int | None,
                         target_delta: float) -> float:
    """Epsilon of DP-FTRL on this schedule: checked by :func:`check_participation`, then
    :func:`fl_helpers.accounting.dp_ftrl_epsilon` over its trees, with the busiest client's
    number of trees.

    Raises:
        ParticipationError: A client twice in one tree.
    """
    busiest = check_participation(schedule, num_clients=num_clients,
                                  restart_every=restart_every)
    sizes = accounting.restart_tree_sizes(len(schedule), restart_every)
    return accounting.dp_ftrl_epsilon(noise_multiplier=noise_multiplier, tree_sizes=sizes,
                                      target_delta=target_delta,
                                      trees_per_client=max(1, busiest))


# --------------------------------------------------------------------------------------------
# DP-FTRL on the one training loop
# --------------------------------------------------------------------------------------------

#: The accountant named in a DP-FTRL history (dp-accounting's RDP accountant, tree events).
ACCOUNTANT = "rdp-tree"


def run_dp_ftrl(model_fn: Callable[[], keras.Model],
                client_datasets: Sequence[tuple[np.ndarray, np.ndarray]], *,
                schedule: Sequence[np.ndarray], clipping_norm: float, clients_per_round: float,
                restart_every: int | None, target_delta: float, local_epochs: int,
                batch_size: int | None, client_learning_rate: float,
                noise_multiplier: float | None = None, target_epsilon: float | None = None,
                server_learning_rate: float = 1.0,
                test_data: tuple[np.ndarray, np.ndarray] | None = None, seed: int = 0,
                progress: bool = True, engine: str | training.Engine = "auto",
                initial_weights: list[np.ndarray] | None = None,
                callback: training.Callback | None = None,
                randomness: schedule_module.PrivateRandomness | None = None,
                diagnostics: bool = False) -> training.DPFTRLHistory:
    """DP-FTRL (Kairouz et al. 2021, Algorithm 1 without momentum) on the one training loop.

    Checks the participation schedule (every client at most once per tree; a violation is
    refused with :class:`ParticipationError` naming the client, the rounds and the tree),
    accounts epsilon after every round with
    :func:`fl_helpers.accounting.dp_ftrl_epsilon_per_round` (dp-accounting's
    ``SingleEpochTreeAggregationDpEvent`` per tree, RDP accountant, relation
    ``REPLACE_SPECIAL``), then trains with :class:`DPFTRL` (clip to ``C`` on the integer grid,
    exact sums, binary-tree noise from the run's secret :class:`fl_helpers.schedule.
    PrivateRandomness`) through :func:`fl_helpers.training.run_private_schedule`, on the fast
    engine (all the round's clients in one compiled call, the rule clipping and noising their
    updates exactly) or the per-client loop.

    What the epsilon means. Unit: one client, with all its updates. Relation: that client's
    updates replaced by zero vectors in the rounds it takes part in (Kairouz et al.'s
    Definition 1.1; *when* it takes part may be public, and stays visible). Assumption: each
    client at most once per tree, in at most every tree (the epsilon per round is that worst
    case: :func:`fl_helpers.accounting.dp_ftrl_epsilon_per_round`); no sampling, nothing
    amplified. Trusted: the server that clips, sums and adds the noise, with secret randomness.
    Observer: anyone who sees every released global model. Not covered: the schedule itself,
    :class:`fl_helpers.training.Diagnostics`, the hyperparameter search, runs with
    ``randomness=PrivateRandomness.reproducible(seed)``.

    Args:
        model_fn, client_datasets, local_epochs, batch_size, client_learning_rate, test_data,
            seed, progress, engine, initial_weights, callback, diagnostics: As
            :func:`fl_helpers.training.run_dp_fedavg`.
        schedule: Per round, the distinct client ids taking part (e.g. :func:`cyclic_schedule`
            or :func:`availability_schedule`); the run has ``len(schedule)`` rounds. It must
            not depend on the private updates.
        clipping_norm: ``C`` > 0.
        clients_per_round: ``m`` > 0, the public divisor of the noised prefix sums (the
            clients per round the schedule aims at, never a count of who took part).
        restart_every: Rounds per tree (``None``: one tree for the whole run).
        target_delta: delta in (0, 1) of the epsilon reported after each round.
        noise_multiplier: ``z`` > 0, node noise std / ``C``; or ``None`` with
            ``target_epsilon``.
        target_epsilon: Instead of ``z``: the smallest ``z`` whose epsilon after the whole
            schedule (every client in every tree, the worst case) is at most this
            (:func:`fl_helpers.accounting.dp_ftrl_noise_multiplier_for_epsilon`).
        server_learning_rate: ``eta`` > 0: ``w_t = w_start + eta noised(S_t) / m`` within a tree.
        randomness: The noise's :class:`fl_helpers.schedule.PrivateRandomness` (claimed by
            this run). ``None`` (default): a fresh secret one.
            ``PrivateRandomness.reproducible(seed)``: teaching and tests only, then NOT private
            against anyone who knows the seed (its warning says so).

    Returns:
        A :class:`fl_helpers.training.DPFTRLHistory` (``accountant`` :data:`ACCOUNTANT`,
        ``noise`` ``"exact"``, ``sampling_probability`` 1: nobody is sampled).

    Raises:
        ParticipationError: A client twice in one tree.
        TypeError, ValueError: An argument is malformed (the message names it), or both or
            neither of ``noise_multiplier`` and ``target_epsilon`` are given.
    """
    randomness = schedule_module.resolve_randomness(randomness)
    seed = v.check_int("seed", seed, minimum=0)
    target_delta = v.check_open_unit("target_delta", target_delta)
    clipping_norm = v.check_positive("clipping_norm", clipping_norm)
    clients_per_round = v.check_positive("clients_per_round", clients_per_round)
    restart = _check_restart(restart_every)
    num_clients = v.check_client_datasets("client_datasets", client_datasets)
    for k, pair in enumerate(client_datasets):  # the rest: checked with the model, later
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"client_datasets[{k}] must be an (x, y) pair of arrays, got "
                            f"{type(pair).__name__} {v._fmt(pair)}.")
    trees = check_participation(schedule, num_clients=num_clients, restart_every=restart)
    num_rounds = len(schedule)
    if (noise_multiplier is None) == (target_epsilon is None):
        raise ValueError(f"noise_multiplier or target_epsilon must be given (exactly one), got "
                         f"noise_multiplier={noise_multiplier!r} and "
                         f"target_epsilon={target_epsilon!r}.")
    if target_epsilon is not None:
        target_epsilon = v.check_positive("target_epsilon", target_epsilon)
        noise_multiplier = accounting.dp_ftrl_noise_multiplier_for_epsilon(
            target_epsilon=target_epsilon, target_delta=target_delta,
            tree_sizes=accounting.restart_tree_sizes(num_rounds, restart))
    assert noise_multiplier is not None
    # DPFTRL checks C, z (and its grid) and m once more; here before any noise is drawn.
    rule = DPFTRL(clipping_norm=clipping_norm, noise_multiplier=noise_multiplier,
                  clients_per_round=clients_per_round, restart_every=restart)
    epsilons = accounting.dp_ftrl_epsilon_per_round(
        noise_multiplier=rule.noise_multiplier, num_rounds=num_rounds,
        restart_every=restart or num_rounds, target_delta=target_delta)
    fields = training.run_private_schedule(
        model_fn, client_datasets, rounds=schedule, aggregation_rule=rule,
        randomness=randomness, epsilons=epsilons, local_epochs=local_epochs,
        batch_size=batch_size, client_learning_rate=client_learning_rate,
        server_learning_rate=server_learning_rate, test_data=test_data, seed=seed,
        progress=progress, engine=engine, initial_weights=initial_weights, callback=callback,
        diagnostics=diagnostics)
    return training.DPFTRLHistory(
        **fields, noise_multiplier=rule.noise_multiplier, clipping_norm=clipping_norm,
        sampling_probability=1.0, target_delta=target_delta, accountant=ACCOUNTANT,
        reproducible_noise=randomness.is_reproducible, expected_clients=clients_per_round,
        noise="exact", clipping_norms=np.full(len(fields["rounds"]), clipping_norm),
        update_noise_multiplier=rule.noise_multiplier, restart_every=restart,
        clients_per_round=clients_per_round, trees_per_client=trees,
        schedule_rounds=num_rounds)
