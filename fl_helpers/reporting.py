"""Formatting an experiment's result: one-line summaries, text tables and JSON.

One place for how results are written, so that the command line, the widgets and the notebooks
say the same thing the same way. Only what a private run may release is written by default: the
per-round test figures and the epsilon spent. Per-client diagnostics (sampled clients, update
norms, the share clipped) are written only if the run collected them, under a key that says they
are not covered by epsilon.
"""

from __future__ import annotations

import enum
import math
from typing import Any

import numpy as np

from fl_helpers import _validation as v
from fl_helpers import aggregation, dp_ftrl, experiment, training


def json_number(value: Any) -> Any:
    """One value of a config or a metric as a strict-JSON value.

    Floats stay floats, but NaN and infinities become ``None`` (strict JSON has neither); numpy
    scalars become Python ones; an enum (e.g. :class:`fl_helpers.experiment.Privacy`) becomes
    its value; ``None``, bools, ints and strings are returned as they are.

    Raises:
        TypeError: ``value`` is something else (a complex number, an array, a list...), which
            has no JSON number form.
    """
    if isinstance(value, enum.Enum) and isinstance(value.value, (str, int, float)):
        value = value.value
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (int, np.integer)):
        return int(value)
    raise TypeError(f"value must be a number, a string, a bool or None (a JSON value), got "
                    f"{type(value).__name__} {v._fmt(value)}.")


def _check_result(name: str, value: Any) -> experiment.ExperimentResult:
    if not isinstance(value, experiment.ExperimentResult):
        raise TypeError(f"{name} must be an ExperimentResult (as from "
                        f"experiment.run_experiment), got {type(value).__name__}.")
    return value


def to_json(result: experiment.ExperimentResult) -> dict[str, Any]:
    """Config, summary and per-round metrics as plain JSON types (NaN/inf become null).

    ``reproducible_noise`` in the config and a ``warning`` in the summary say when the run's
    noise came from its seed (then not private against anyone who knows the seed).
    """
    h = _check_result("result", result).history
    per_round = []
    for i in range(result.rounds_trained):
        per_round.append({
            "round": int(h.rounds[i]),
            "epsilon": json_number(h.epsilon[i]) if h.epsilon.size else None,
            "test_accuracy": json_number(h.test_accuracy[i]) if h.test_accuracy.size else None,
            "test_loss": json_number(h.test_loss[i]) if h.test_loss.size else None,
        })
    summary: dict[str, Any] = {
        "rounds_trained": result.rounds_trained,
        "stopped_early": None if h.stopped_early is None else h.stopped_early.value,
        "final_test_accuracy": json_number(result.final_accuracy),
        "epsilon_spent": json_number(result.epsilon_spent),
        "training_seconds": json_number(h.total_seconds),
        "total_seconds": json_number(result.total_seconds),
    }
    if h.reproducible_noise and result.privacy is not experiment.Privacy.NON_PRIVATE:
        summary["warning"] = REPRODUCIBLE_WARNING
    out: dict[str, Any] = {"config": {k: json_number(val) for k, val in result.config.items()},
                           "summary": summary, "rounds": per_round}
    if h.diagnostics is not None:
        d = h.diagnostics
        out["diagnostics_not_covered_by_epsilon"] = {
            "num_sampled": d.num_sampled.tolist(),
            "fraction_clipped": [json_number(f) for f in d.fraction_clipped(h.clipping_norm)],
            "mean_update_norm": [json_number(f) for f in d.mean_update_norm],
        }
    return out


#: What a run with reproducible noise says about itself.
REPRODUCIBLE_WARNING = ("reproducible noise: the noise and client sampling were derived from the "
                        "seed, so the epsilon does not hold against anyone who knows the seed")


def summary_line(result: experiment.ExperimentResult, *,
                 baseline: experiment.ExperimentResult | None = None,
                 seconds: bool = True) -> str:
    """One line with what matters of a run: accuracy, epsilon, z, q, C, rounds and the time.

    Args:
        result: The run to describe.
        baseline: A non-private run to compare the accuracy with, or ``None``.
        seconds: Whether the line ends with the run's seconds (the *Try it* panels leave them
            out: a latency stored in a notebook only says how busy the machine was).

    Returns:
        E.g. ``"target ε = 2: z = 1.63, q = 0.100, C = 0.5, 30 rounds -> test accuracy 86.7%
        (non-private 87.7%), ε spent 1.999 at δ = 1e-05, 4.1 s"``; runs with reproducible noise
        end with ``"[reproducible noise: not private]"``.
    """
    c = _check_result("result", result).config
    if baseline is not None:
        _check_result("baseline", baseline)
    seconds = v.check_flag("seconds", seconds)
    if result.privacy is experiment.Privacy.NON_PRIVATE:
        setting = f"non-private: q = {c['sampling_probability']:.3f}"
    else:
        budget = (f"target ε = {c['target_epsilon']:.3g}" if c["target_epsilon"] is not None
                  else result.privacy.value)
        setting = (f"{budget}: z = {c['noise_multiplier']:.3g}, q = "
                   f"{c['sampling_probability']:.3f}, C = {c['clipping_norm']:.3g}")
    line = f"{setting}, {result.rounds_trained} rounds -> test accuracy {result.final_accuracy:.1%}"
    if baseline is not None:
        line += f" (non-private {baseline.final_accuracy:.1%})"
    if math.isfinite(result.epsilon_spent):
        line += f", ε spent {result.epsilon_spent:.3f} at δ = {c['target_delta']:.0e}"
    if seconds:
        line += f", {result.total_seconds:.1f} s"
    if c.get("reproducible_noise") and result.privacy is not experiment.Privacy.NON_PRIVATE:
        line += " [reproducible noise: not private]"
    return line


def results_table(result: experiment.ExperimentResult, *, max_rows: int = 12) -> str:
    """The per-round results as a fixed-width text table (at most ``max_rows`` rounds shown).

    Shows round 1, evenly spaced rounds and the last round, with epsilon spent, test accuracy
    and test loss (what a private run may release).

    Raises:
        TypeError, ValueError: ``result`` is not an ExperimentResult, or ``max_rows`` is not an
            integer >= 1.
    """
    h = _check_result("result", result).history
    max_rows = v.check_int("max_rows", max_rows, minimum=1)
    count = result.rounds_trained
    shown = np.unique(np.linspace(0, count - 1, min(max_rows, count)).round().astype(int))
    lines = [f"{'round':>5}  {'epsilon':>8}  {'test acc':>8}  {'test loss':>9}", "-" * 36]
    for i in shown:
        eps = h.epsilon[i] if h.epsilon.size else math.inf
        acc = f"{h.test_accuracy[i]:8.2%}" if h.test_accuracy.size else f"{'-':>8}"
        loss = f"{h.test_loss[i]:9.4f}" if h.test_loss.size else f"{'-':>9}"
        lines.append(f"{int(h.rounds[i]):5d}  "
                     f"{('inf' if not math.isfinite(eps) else f'{eps:.3f}'):>8}  {acc}  {loss}")
    return "\n".join(lines)


def privacy_statement(history: training.DPHistory, *, num_clients: int,
                      examples_per_client: float | None = None) -> str:
    """What a DP-FedAvg run's epsilon protects, written out from the run's own figures.

    Names the unit protected, the neighbouring relation, the guarantee with its accountant, who
    sees what and who is trusted, and what the epsilon does not cover (so that nobody quotes the
    number without its meaning). An adaptive-clipping run states its settings (``C_0``,
    ``gamma``, ``eta_C``, ``sigma_b``, the total ``z`` and ``z_Delta``) and the final and median
    ``C``; a DP-FTRL run (:class:`fl_helpers.training.DPFTRLHistory`) states its own relation
    (one client's updates replaced by zeros), its assumption (at most once per tree, no
    sampling) and its accountant.

    Args:
        history: The run's :class:`fl_helpers.training.DPHistory` (with ``target_delta``).
        num_clients: ``N``, the clients of the federation.
        examples_per_client: A typical client's number of examples, for the wording, or
            ``None``.

    Returns:
        A few lines of text.

    Raises:
        TypeError: ``history`` is not a DPHistory.
        ValueError: The run accounted no epsilon (no ``target_delta``), or a count is out of
            range.
    """
    if not isinstance(history, training.DPHistory):
        raise TypeError(f"history must be a DPHistory (as from training.run_dp_fedavg), got "
                        f"{type(history).__name__}.")
    if history.target_delta is None or history.epsilon.size == 0:
        raise ValueError("history has no epsilon: run run_dp_fedavg with target_delta.")
    num_clients = v.check_int("num_clients", num_clients, minimum=1)
    if examples_per_client is not None:
        examples_per_client = v.check_positive("examples_per_client", examples_per_client)
    eps, delta = float(history.epsilon[-1]), history.target_delta
    rounds = int(history.rounds[-1])
    data = ("all of its data" if examples_per_client is None
            else f"all of its ~{examples_per_client:.0f} examples")
    if isinstance(history, training.DPFTRLHistory):
        return _dp_ftrl_statement(history, num_clients=num_clients, data=data)
    local = history.noise_placement is aggregation.NoisePlacement.LOCAL
    lines = [
        "What this ε means",
        f"- Unit protected: one client, with {data} (client-level DP; a person with k "
        "devices is protected only at group level, about k·ε).",
        "- Neighbouring relation: " + (
            "replace one client's data by any other (each report hides the client's data)."
            if local else f"add or remove one client from the {num_clients:,} clients."),
        f"- Guarantee: (ε = {eps:.3f}, δ = {delta:.0e}) after {rounds} rounds, "
        f"{history.accountant.upper()} accountant, z = {history.noise_multiplier:.3g}, "
        f"q = {history.sampling_probability:g}, {_clipping_words(history)}"
        + (" (ε of the busiest client)." if local else
           f", the noisy sum divided by the public q·N = {history.expected_clients:g} (a "
           "constant, never a count of who took part)."),
        ("- Noise: exact. The clipped updates are integers on a grid, summed exactly, plus "
         "discrete Gaussian noise drawn exactly; floating point comes after."
         if history.noise == "exact" else
         "- Noise: float32 Gaussian. Against an observer who also knows the other clients' "
         "updates, rounding makes some released values impossible under one neighbour "
         "(a floating-point attack, audit.float_noise_proofs): use noise='exact'."),
        ("- Observer: anyone, the server included: it sees every noisy report and who sent it."
         if local else
         f"- Observer: anyone who sees the {rounds} released global models (and what is "
         "computed from them on public data)."),
        ("- Trusted: no server; each client trusts its own device to clip and noise."
         if local else
         "- Trusted: the server that samples, clips, sums and adds the noise, with secret "
         "randomness; it sees each clipped update before noise and who took part."),
        "- Not covered: choosing hyperparameters on the same private data (that spends privacy "
        "too), per-client diagnostics (diagnostics=True), timings.",
    ]
    if history.reproducible_noise:
        lines.append("- THIS RUN used reproducible noise derived from its seed: its ε does not "
                     "hold against anyone who knows the seed (teaching only).")
    return "\n".join(lines)


def _clipping_words(history: training.DPHistory) -> str:
    """``C = ...`` for a fixed norm; the adaptive settings and the norms reached otherwise."""
    adaptive = history.adaptive_clipping
    if adaptive is None:
        return f"C = {history.clipping_norm:g}"
    sigma_b = adaptive.count_stddev_for(history.expected_clients)
    norms = np.asarray(history.clipping_norms, dtype=np.float64)
    reached = (f"; C ended at {norms[-1]:.3g} (median over the {norms.size} rounds "
               f"{float(np.median(norms)):.3g})" if norms.size else "")
    return (f"adaptive clipping (Andrew et al. 2021): initial C = "
            f"{adaptive.initial_clipping_norm:g}, target quantile γ = "
            f"{adaptive.target_quantile:g}, learning rate η = {adaptive.learning_rate:g}, "
            f"σ_b = {sigma_b:.3g} on the count of unclipped updates, z total = "
            f"{history.noise_multiplier:.3g} (what ε accounts; z_Δ = "
            f"{history.update_noise_multiplier:.3g} on the updates){reached}")


def _dp_ftrl_statement(history: training.DPFTRLHistory, *, num_clients: int, data: str) -> str:
    eps, delta = float(history.epsilon[-1]), history.target_delta
    rounds = int(history.rounds[-1])
    trees = ("one tree" if history.restart_every is None
             else f"a tree restarted every {history.restart_every} rounds")
    lines = [
        "What this ε means (DP-FTRL: tree aggregation, no sampling)",
        f"- Unit protected: one client, with {data} and all its updates (client-level DP; a "
        "person with k devices is protected only at group level, about k·ε).",
        "- Neighbouring relation: one client's updates replaced by zero vectors in the rounds "
        f"it takes part in, among the {num_clients:,} clients (Kairouz et al. 2021, Definition "
        "1.1; dp-accounting's REPLACE_SPECIAL). The client's model contribution is hidden; "
        "whether and when it took part is not (the schedule may be public).",
        f"- Assumption: each client takes part at most once per tree ({trees}; checked on the "
        f"schedule before the run, busiest client in {history.trees_per_client} trees). No "
        "sampling, no shuffling: nothing is amplified.",
        f"- Guarantee: (ε = {eps:.3f}, δ = {delta:.0e}) after {rounds} rounds, "
        f"accountant {dp_ftrl.ACCOUNTANT}: dp-accounting's RDP accountant on "
        "SingleEpochTreeAggregationDpEvent per tree (every client in every tree, the worst "
        f"case), z = {history.noise_multiplier:.3g} per tree node, C = "
        f"{history.clipping_norm:g}, the noised prefix sums divided by the public m = "
        f"{history.clients_per_round:g} (a constant, never a count of who took part).",
        "- Noise: exact. The clipped updates are integers on a grid, summed exactly; each tree "
        "node gets discrete Gaussian noise drawn exactly, once; floating point comes after.",
        f"- Observer: anyone who sees the {rounds} released global models (and what is "
        "computed from them on public data).",
        "- Trusted: the server that clips, sums and adds the tree's noise, with secret "
        "randomness; it sees each clipped update before noise and who took part.",
        "- Not covered: the participation schedule itself, choosing hyperparameters on the same "
        "private data (that spends privacy too), per-client diagnostics (diagnostics=True), "
        "timings.",
    ]
    if history.reproducible_noise:
        lines.append("- THIS RUN used reproducible noise derived from its seed: its ε does not "
                     "hold against anyone who knows the seed (teaching only).")
    return "\n".join(lines)


def _dp_accounting_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("dp-accounting")
    except metadata.PackageNotFoundError:  # pragma: no cover - a requirement of the course
        return "unknown"


def reporting_checklist(history: training.DPHistory, *, num_clients: int,
                        hyperparameter_runs: int = 1, tuning: str | None = None) -> str:
    """A DP-FL result's reporting checklist, filled in from the run's own figures.

    Follows the reporting guidance of Ponomareva et al. 2023, "How to DP-fy ML: A Practical
    Guide to Machine Learning with Differential Privacy" (JAIR 77): a reader must be able to
    tell, without the code, what is protected (the unit and the neighbouring relation), how
    much (epsilon and delta, with delta far below 1/N), by what analysis (the accountant and
    its version, the sampling or participation assumption it relies on, the noise multiplier
    and the clipping), at what cost beyond the run (the hyperparameter search) and what is
    left out. Each line starts with ``[x]`` (stated and fine) or ``[!]`` (stated, but it
    weakens or voids the claim: delta not below 1/(10 N), float noise, reproducible noise, a
    search that epsilon does not cover).

    Args:
        history: The run's :class:`fl_helpers.training.DPHistory` (DP-FedAvg, adaptive
            clipping or DP-FTRL), with ``target_delta``.
        num_clients: ``N``, the clients of the federation (the unit's population).
        hyperparameter_runs: Runs trained on the same private data to choose this run's
            settings, this run included (>= 1; 1: the settings were fixed before, e.g. on a
            public proxy).
        tuning: How the settings were chosen, in words (e.g. ``"C = 0.5 from a public
            proxy's update norms"``), or ``None``.

    Returns:
        The checklist, one item per line.

    Raises:
        TypeError: ``history`` is not a DPHistory, or ``tuning`` not a string.
        ValueError: The run accounted no epsilon, or a count is out of range.
    """
    if not isinstance(history, training.DPHistory):
        raise TypeError(f"history must be a DPHistory (as from training.run_dp_fedavg or "
                        f"dp_ftrl.run_dp_ftrl), got {type(history).__name__}.")
    if history.target_delta is None or history.epsilon.size == 0:
        raise ValueError("history has no epsilon: run it with target_delta.")
    num_clients = v.check_int("num_clients", num_clients, minimum=1)
    runs = v.check_int("hyperparameter_runs", hyperparameter_runs, minimum=1, maximum=10**6)
    if tuning is not None and not isinstance(tuning, str):
        raise TypeError(f"tuning must be a string or None, got {type(tuning).__name__} "
                        f"{v._fmt(tuning)}.")
    eps, delta = float(history.epsilon[-1]), float(history.target_delta)
    rounds = int(history.rounds[-1])
    ftrl = isinstance(history, training.DPFTRLHistory)
    local = history.noise_placement is aggregation.NoisePlacement.LOCAL
    ok = delta < 0.1 / num_clients

    def item(good: bool, name: str, text: str) -> str:
        return f"{'[x]' if good else '[!]'} {name}: {text}"

    if isinstance(history, training.DPFTRLHistory):
        relation = ("one client's updates replaced by zero vectors in the rounds it takes part "
                    "in (REPLACE_SPECIAL)")
        participation = (f"no sampling: each client at most once per tree of "
                         f"{history.restart_every or history.schedule_rounds} rounds, checked "
                         f"on the schedule (busiest client in {history.trees_per_client} "
                         "trees); ε is the worst case, every client in every tree")
        accountant = (f"dp-accounting {_dp_accounting_version()}, RDP on "
                      "SingleEpochTreeAggregationDpEvent per tree")
        mechanism = (f"tree-aggregation noise z = {history.noise_multiplier:.4g} per node, "
                     f"C = {history.clipping_norm:g}, divisor m = "
                     f"{history.clients_per_round:g}")
    else:
        relation = ("replace one client's data by any other (each report is noised on its own)"
                    if local else "add or remove one client")
        participation = (
            f"Poisson sampling, each client independently with q = "
            f"{history.sampling_probability:g} per round from secret randomness (the "
            "amplification in ε needs exactly this; a fleet that cannot sample so cannot "
            "claim it)" if not local else
            f"Poisson sampling q = {history.sampling_probability:g}; ε is the busiest "
            "client's, no amplification")
        accountant = (f"{history.accountant.upper()} accountant of dp-accounting "
                      f"{_dp_accounting_version()}")
        mechanism = (f"z = {history.noise_multiplier:.4g}, {_clipping_words(history)}, "
                     f"divisor q·N = {history.expected_clients:g}")
    lines = [
        "Reporting checklist (after Ponomareva et al. 2023, \"How to DP-fy ML\")",
        item(True, "Unit of privacy", "one client with all its data (client-level DP)"),
        item(True, "Neighbouring relation", f"{relation}, among N = {num_clients:,} clients"),
        item(ok, "Guarantee", f"ε = {eps:.3f}, δ = {delta:.0e} after {rounds} rounds; "
             f"δ·N = {delta * num_clients:.2g}" + (" (δ ≪ 1/N)" if ok else
                                                    " (δ not far below 1/N: too large)")),
        item(True, "Accountant", accountant),
        item(True, "Participation assumption", participation),
        item(history.noise == "exact", "Mechanism",
             mechanism + ("; exact discrete Gaussian noise on an integer sum"
                          if history.noise == "exact" else
                          "; float32 Gaussian noise (open to a floating-point attack)")),
        item(True, "Release", f"every one of the {rounds} global models (the accountant "
             "composes them all)"),
        item(True, "Trust", "no server; each client noises its own report" if local else
             "the server that clips, sums and noises, with secret randomness (it sees each "
             "update before noise)"),
    ]
    chosen = f" ({tuning})" if tuning else ""
    if runs == 1:
        lines.append(item(True, "Hyperparameter search", f"none on the private data{chosen}: "
                          "nothing beyond this run touched it"))
    else:
        lines.append(item(False, "Hyperparameter search", (
            f"{runs} runs on the private data{chosen}, NOT covered by ε: together they spend "
            f"up to {runs}·ε = {runs * eps:.3g} at δ = {runs * delta:.0e} (basic composition;"
            " a private selection such as Papernot & Steinke 2022's costs less)")))
    if history.adaptive_clipping is not None:
        lines.append(item(True, "Clipping norm", "adapted inside the run from noised counts: "
                          "covered by ε (the total z)"))
    lines.append(item(not history.reproducible_noise, "Randomness",
                      "noise and sampling derived from the seed: NOT private against anyone "
                      "who knows it (teaching only)" if history.reproducible_noise else
                      "secret (never written, never reused)"))
    lines.append(item(True, "Not covered", "per-client diagnostics, timings" + (
        ", the participation schedule itself" if ftrl else "") + (
        ", the search above" if runs > 1 else "")))
    return "\n".join(lines)
