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


#: The languages the privacy statement can be written in (the course's editions; the one list,
#: checked by ``_validation.check_language`` for every statement of the package).
LANGUAGES = v.LANGUAGES


#: The privacy statement's sentences, per language. Both say the same things with the same
#: figures: the unit (隐私单元), the neighbouring relation (相邻关系), the guarantee, the noise,
#: the observer (观察者), who is trusted (受信任方) and what is not covered.
_STATEMENT = {
    "en": {
        "all_data": "all of its data",
        "examples": "all of its ~{n:.0f} examples",
        "title": "What this ε means",
        "unit": "- Unit protected: one client, with {data} (client-level DP; a person with k "
                "devices is protected only at group level, about k·ε).",
        "relation_local": "- Neighbouring relation: replace one client's data by any other "
                          "(each report hides the client's data).",
        "relation_central": "- Neighbouring relation: add or remove one client from the "
                            "{num_clients:,} clients.",
        "guarantee": "- Guarantee: (ε = {eps:.3f}, δ = {delta:.0e}) after {rounds} rounds, "
                     "{accountant} accountant, z = {z:.3g}, q = {q:g}, {clipping}",
        "busiest": " (ε of the busiest client).",
        "divisor": ", the noisy sum divided by the public q·N = {expected:g} (a constant, never "
                   "a count of who took part).",
        "noise_exact": "- Noise: exact. The clipped updates are integers on a grid, summed "
                       "exactly, plus discrete Gaussian noise drawn exactly; floating point "
                       "comes after.",
        "noise_float": "- Noise: float32 Gaussian. Against an observer who also knows the other "
                       "clients' updates, rounding makes some released values impossible under "
                       "one neighbour (a floating-point attack, audit.float_noise_proofs): use "
                       "noise='exact'.",
        "observer_local": "- Observer: anyone, the server included: it sees every noisy report "
                          "and who sent it.",
        "observer_central": "- Observer: anyone who sees the {rounds} released global models "
                            "(and what is computed from them on public data).",
        "trusted_local": "- Trusted: no server; each client trusts its own device to clip and "
                         "noise.",
        "trusted_central": "- Trusted: the server that samples, clips, sums and adds the noise, "
                           "with secret randomness; it sees each clipped update before noise "
                           "and who took part.",
        "not_covered": "- Not covered: choosing hyperparameters on the same private data (that "
                       "spends privacy too), per-client diagnostics (diagnostics=True), timings.",
        "reproducible": "- THIS RUN used reproducible noise derived from its seed: its ε does "
                        "not hold against anyone who knows the seed (teaching only).",
        "fixed_clipping": "C = {c:g}",
        "adaptive": "adaptive clipping (Andrew et al. 2021): initial C = {c0:g}, target quantile "
                    "γ = {gamma:g}, learning rate η = {eta:g}, σ_b = {sigma_b:.3g} on the count "
                    "of unclipped updates, z total = {z:.3g} (what ε accounts; z_Δ = "
                    "{z_delta:.3g} on the updates){reached}",
        "reached": "; C ended at {last:.3g} (median over the {count} rounds {median:.3g})",
        "ftrl_title": "What this ε means (DP-FTRL: tree aggregation, no sampling)",
        "ftrl_unit": "- Unit protected: one client, with {data} and all its updates "
                     "(client-level DP; a person with k devices is protected only at group "
                     "level, about k·ε).",
        "ftrl_relation": "- Neighbouring relation: one client's updates replaced by zero vectors "
                         "in the rounds it takes part in, among the {num_clients:,} clients "
                         "(Kairouz et al. 2021, Definition 1.1; dp-accounting's "
                         "REPLACE_SPECIAL). The client's model contribution is hidden; whether "
                         "and when it took part is not (the schedule may be public).",
        "one_tree": "one tree",
        "restarted": "a tree restarted every {every} rounds",
        "ftrl_assumption": "- Assumption: each client takes part at most once per tree "
                           "({trees}; checked on the schedule before the run, busiest client in "
                           "{busiest} trees). No sampling, no shuffling: nothing is amplified.",
        "ftrl_guarantee": "- Guarantee: (ε = {eps:.3f}, δ = {delta:.0e}) after {rounds} rounds, "
                          "accountant {accountant}: dp-accounting's RDP accountant on "
                          "SingleEpochTreeAggregationDpEvent per tree (every client in every "
                          "tree, the worst case), z = {z:.3g} per tree node, C = {c:g}, the "
                          "noised prefix sums divided by the public m = {m:g} (a constant, "
                          "never a count of who took part).",
        "ftrl_noise": "- Noise: exact. The clipped updates are integers on a grid, summed "
                      "exactly; each tree node gets discrete Gaussian noise drawn exactly, "
                      "once; floating point comes after.",
        "ftrl_trusted": "- Trusted: the server that clips, sums and adds the tree's noise, with "
                        "secret randomness; it sees each clipped update before noise and who "
                        "took part.",
        "ftrl_not_covered": "- Not covered: the participation schedule itself, choosing "
                            "hyperparameters on the same private data (that spends privacy "
                            "too), per-client diagnostics (diagnostics=True), timings.",
    },
    "zh-CN": {
        "all_data": "它的全部数据",
        "examples": "它的全部约 {n:.0f} 个样本",
        "title": "这个 ε 意味着什么",
        "unit": "- 隐私单元：一个客户端，连同{data}（客户端级差分隐私；一个拥有 k 台设备的人"
                "只在群组层面受到保护，约为 k·ε）。",
        "relation_local": "- 相邻关系：把一个客户端的数据换成任意其他数据（每份报告都隐藏该"
                          "客户端的数据）。",
        "relation_central": "- 相邻关系：在 {num_clients:,} 个客户端中增加或删除一个客户端。",
        "guarantee": "- 保证：{rounds} 个轮次后 (ε = {eps:.3f}, δ = {delta:.0e})，"
                     "{accountant} 隐私会计器，z = {z:.3g}，q = {q:g}，{clipping}",
        "busiest": "（最忙的客户端的 ε）。",
        "divisor": "，加噪的和除以公开的 q·N = {expected:g}（一个常数，从不是实际参与者的"
                   "人数）。",
        "noise_exact": "- 噪声：精确。裁剪后的更新是网格上的整数，被精确求和，再加上精确抽取的"
                       "离散高斯噪声；浮点运算在此之后。",
        "noise_float": "- 噪声：float32 高斯噪声。对一个还知道其他客户端更新的观察者，舍入会使"
                       "某些发布值在一个相邻数据集下不可能出现（浮点攻击，"
                       "audit.float_noise_proofs）：请使用 noise='exact'。",
        "observer_local": "- 观察者：任何人，包括服务器：它看到每份加噪报告以及是谁发送的。",
        "observer_central": "- 观察者：任何看到 {rounds} 个发布的全局模型（以及在公开数据上由"
                            "它们算出的结果）的人。",
        "trusted_local": "- 受信任方：没有服务器；每个客户端信任自己的设备来裁剪和加噪。",
        "trusted_central": "- 受信任方：负责采样、裁剪、求和并加噪的服务器，它使用秘密随机性；"
                           "它在加噪前看到每个裁剪后的更新，也知道谁参与了。",
        "not_covered": "- 不在保证范围内：在同一份隐私数据上选择超参数（这同样消耗隐私）、"
                       "逐客户端诊断信息（diagnostics=True）、运行时间。",
        "reproducible": "- 本次运行使用了由种子导出的可复现噪声：对任何知道种子的人，它的 ε "
                        "都不成立（仅用于教学）。",
        "fixed_clipping": "C = {c:g}",
        "adaptive": "自适应裁剪（Andrew et al. 2021）：初始 C = {c0:g}，目标分位数 "
                    "γ = {gamma:g}，学习率 η = {eta:g}，未裁剪更新计数上的 σ_b = {sigma_b:.3g}，"
                    "总 z = {z:.3g}（ε 核算的就是它；更新上的 z_Δ = {z_delta:.3g}）{reached}",
        "reached": "；C 最终为 {last:.3g}（{count} 个轮次的中位数为 {median:.3g}）",
        "ftrl_title": "这个 ε 意味着什么（DP-FTRL：树聚合，无采样）",
        "ftrl_unit": "- 隐私单元：一个客户端，连同{data}及其全部更新（客户端级差分隐私；一个"
                     "拥有 k 台设备的人只在群组层面受到保护，约为 k·ε）。",
        "ftrl_relation": "- 相邻关系：在 {num_clients:,} 个客户端中，把一个客户端在它参与的轮次"
                         "中的更新换成零向量（Kairouz et al. 2021，Definition 1.1；"
                         "dp-accounting 的 REPLACE_SPECIAL）。该客户端对模型的贡献被隐藏；"
                         "它是否参与、何时参与则不被隐藏（参与调度可能是公开的）。",
        "one_tree": "一棵树",
        "restarted": "每 {every} 个轮次重启一次的树",
        "ftrl_assumption": "- 假设：每个客户端在每棵树中最多参与一次（{trees}；运行前已在调度上"
                           "检查，最忙的客户端出现在 {busiest} 棵树中）。没有采样，没有洗牌："
                           "没有任何放大。",
        "ftrl_guarantee": "- 保证：{rounds} 个轮次后 (ε = {eps:.3f}, δ = {delta:.0e})，隐私会计器 "
                          "{accountant}：dp-accounting 的 RDP 隐私会计器，每棵树按 "
                          "SingleEpochTreeAggregationDpEvent 核算（每个客户端出现在每棵树中，"
                          "即最坏情况），每个树节点 z = {z:.3g}，C = {c:g}，加噪的前缀和除以"
                          "公开的 m = {m:g}（一个常数，从不是实际参与者的人数）。",
        "ftrl_noise": "- 噪声：精确。裁剪后的更新是网格上的整数，被精确求和；每个树节点只加一次"
                      "精确抽取的离散高斯噪声；浮点运算在此之后。",
        "ftrl_trusted": "- 受信任方：负责裁剪、求和并加入树噪声的服务器，它使用秘密随机性；它在"
                        "加噪前看到每个裁剪后的更新，也知道谁参与了。",
        "ftrl_not_covered": "- 不在保证范围内：参与调度本身、在同一份隐私数据上选择超参数（这同样"
                            "消耗隐私）、逐客户端诊断信息（diagnostics=True）、运行时间。",
    },
}


def _check_accounted_run(history: Any, num_clients: Any) -> tuple[int, float, float]:
    """The checks :func:`privacy_statement` and :func:`reporting_checklist` share: ``history``
    is a run with an epsilon (DP-FedAvg, adaptive clipping or DP-FTRL) and ``num_clients`` a
    count; returns ``N`` and the run's final epsilon and its delta."""
    if not isinstance(history, training.DPHistory):
        raise TypeError(f"history must be a DPHistory (as from training.run_dp_fedavg or "
                        f"dp_ftrl.run_dp_ftrl), got {type(history).__name__}.")
    if history.target_delta is None or history.epsilon.size == 0:
        raise ValueError("history has no epsilon: run it with target_delta.")
    num_clients = v.check_int("num_clients", num_clients, minimum=1)
    return num_clients, float(history.epsilon[-1]), float(history.target_delta)


def privacy_statement(history: training.DPHistory, *, num_clients: int,
                      examples_per_client: float | None = None, language: str = "en") -> str:
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
        language: ``"en"`` (the default) or ``"zh-CN"`` (Simplified Chinese, for the Chinese
            edition): the same statement with the same figures, in the glossary's terms (隐私单元,
            相邻关系, 受信任方, 观察者).

    Returns:
        A few lines of text.

    Raises:
        TypeError: ``history`` is not a DPHistory, or ``language`` not a string.
        ValueError: The run accounted no epsilon (no ``target_delta``), a count is out of
            range, or ``language`` is not ``"en"`` or ``"zh-CN"``.
    """
    num_clients, eps, delta = _check_accounted_run(history, num_clients)
    if examples_per_client is not None:
        examples_per_client = v.check_positive("examples_per_client", examples_per_client)
    words = _STATEMENT[v.check_language(language)]
    rounds = int(history.rounds[-1])
    data = (words["all_data"] if examples_per_client is None
            else words["examples"].format(n=examples_per_client))
    if isinstance(history, training.DPFTRLHistory):
        return _dp_ftrl_statement(history, num_clients=num_clients, data=data, words=words)
    local = history.noise_placement is aggregation.NoisePlacement.LOCAL
    where = "local" if local else "central"
    lines = [
        words["title"],
        words["unit"].format(data=data),
        words[f"relation_{where}"].format(num_clients=num_clients),
        words["guarantee"].format(eps=eps, delta=delta, rounds=rounds,
                                  accountant=history.accountant.upper(),
                                  z=history.noise_multiplier, q=history.sampling_probability,
                                  clipping=_clipping_words(history, words))
        + (words["busiest"] if local else
           words["divisor"].format(expected=history.expected_clients)),
        words["noise_exact" if history.noise == "exact" else "noise_float"],
        words[f"observer_{where}"].format(rounds=rounds),
        words[f"trusted_{where}"],
        words["not_covered"],
    ]
    if history.reproducible_noise:
        lines.append(words["reproducible"])
    return "\n".join(lines)


def _clipping_words(history: training.DPHistory, words: dict[str, str] | None = None) -> str:
    """``C = ...`` for a fixed norm; the adaptive settings and the norms reached otherwise."""
    words = _STATEMENT["en"] if words is None else words
    adaptive = history.adaptive_clipping
    if adaptive is None:
        return words["fixed_clipping"].format(c=history.clipping_norm)
    sigma_b = adaptive.count_stddev_for(history.expected_clients)
    norms = np.asarray(history.clipping_norms, dtype=np.float64)
    reached = (words["reached"].format(last=norms[-1], count=norms.size,
                                       median=float(np.median(norms))) if norms.size else "")
    return words["adaptive"].format(c0=adaptive.initial_clipping_norm,
                                    gamma=adaptive.target_quantile, eta=adaptive.learning_rate,
                                    sigma_b=sigma_b, z=history.noise_multiplier,
                                    z_delta=history.update_noise_multiplier, reached=reached)


def _dp_ftrl_statement(history: training.DPFTRLHistory, *, num_clients: int, data: str,
                       words: dict[str, str]) -> str:
    eps, delta = float(history.epsilon[-1]), history.target_delta
    rounds = int(history.rounds[-1])
    trees = (words["one_tree"] if history.restart_every is None
             else words["restarted"].format(every=history.restart_every))
    lines = [
        words["ftrl_title"],
        words["ftrl_unit"].format(data=data),
        words["ftrl_relation"].format(num_clients=num_clients),
        words["ftrl_assumption"].format(trees=trees, busiest=history.trees_per_client),
        words["ftrl_guarantee"].format(eps=eps, delta=delta, rounds=rounds,
                                       accountant=dp_ftrl.ACCOUNTANT, z=history.noise_multiplier,
                                       c=history.clipping_norm, m=history.clients_per_round),
        words["ftrl_noise"],
        words["observer_central"].format(rounds=rounds),
        words["ftrl_trusted"],
        words["ftrl_not_covered"],
    ]
    if history.reproducible_noise:
        lines.append(words["reproducible"])
    return "\n".join(lines)


#: The reporting checklist's sentences, per language (the item names in Chinese follow the
#: glossary: 隐私单元, 相邻关系, 受信任方).
_CHECKLIST = {
    "en": {
        "title": "Reporting checklist (after Ponomareva et al. 2023, \"How to DP-fy ML\")",
        "unit_name": "Unit of privacy", "unit": "one client with all its data (client-level DP)",
        "relation_name": "Neighbouring relation",
        "relation": "{relation}, among N = {n:,} clients",
        "ftrl_relation": "one client's updates replaced by zero vectors in the rounds it takes "
                         "part in (REPLACE_SPECIAL)",
        "relation_local": "replace one client's data by any other (each report is noised on its "
                          "own)",
        "relation_central": "add or remove one client",
        "guarantee_name": "Guarantee",
        "guarantee": "ε = {eps:.3f}, δ = {delta:.0e} after {rounds} rounds; δ·N = {delta_n:.2g}",
        "delta_ok": " (δ ≪ 1/N)", "delta_large": " (δ not far below 1/N: too large)",
        "accountant_name": "Accountant",
        "ftrl_accountant": "dp-accounting {version}, RDP on SingleEpochTreeAggregationDpEvent "
                           "per tree",
        "accountant": "{name} accountant of dp-accounting {version}",
        "participation_name": "Participation assumption",
        "ftrl_participation": "no sampling: each client at most once per tree of {rounds} "
                              "rounds, checked on the schedule (busiest client in {trees} "
                              "trees); ε is the worst case, every client in every tree",
        "participation_central": "Poisson sampling, each client independently with q = {q:g} "
                                 "per round from secret randomness (the amplification in ε "
                                 "needs exactly this; a fleet that cannot sample so cannot "
                                 "claim it)",
        "participation_local": "Poisson sampling q = {q:g}; ε is the busiest client's, no "
                               "amplification",
        "mechanism_name": "Mechanism",
        "ftrl_mechanism": "tree-aggregation noise z = {z:.4g} per node, C = {c:g}, divisor "
                          "m = {m:g}",
        "mechanism": "z = {z:.4g}, {clipping}, divisor q·N = {expected:g}",
        "noise_exact": "; exact discrete Gaussian noise on an integer sum",
        "noise_float": "; float32 Gaussian noise (open to a floating-point attack)",
        "release_name": "Release",
        "release": "every one of the {rounds} global models (the accountant composes them all)",
        "trust_name": "Trust",
        "trust_local": "no server; each client noises its own report",
        "trust_central": "the server that clips, sums and noises, with secret randomness (it "
                         "sees each update before noise)",
        "search_name": "Hyperparameter search",
        "search_none": "none on the private data{chosen}: nothing beyond this run touched it",
        "search_runs": "{runs} runs on the private data{chosen}, NOT covered by ε: together "
                       "they spend up to {runs}·ε = {eps_total:.3g} at δ = {delta_total:.0e} "
                       "(basic composition; a private selection such as Papernot & Steinke "
                       "2022's costs less)",
        "clipping_name": "Clipping norm",
        "clipping": "adapted inside the run from noised counts: covered by ε (the total z)",
        "randomness_name": "Randomness",
        "randomness_seeded": "noise and sampling derived from the seed: NOT private against "
                             "anyone who knows it (teaching only)",
        "randomness_secret": "secret (never written, never reused)",
        "not_covered_name": "Not covered", "not_covered": "per-client diagnostics, timings",
        "not_covered_schedule": ", the participation schedule itself",
        "not_covered_search": ", the search above",
    },
    "zh-CN": {
        "title": "报告清单（依据 Ponomareva et al. 2023，\"How to DP-fy ML\"）",
        "unit_name": "隐私单元", "unit": "一个客户端及其全部数据（客户端级差分隐私）",
        "relation_name": "相邻关系",
        "relation": "在 N = {n:,} 个客户端中，{relation}",
        "ftrl_relation": "把一个客户端在它参与的轮次中的更新换成零向量（REPLACE_SPECIAL）",
        "relation_local": "把一个客户端的数据换成任意其他数据（每份报告各自加噪）",
        "relation_central": "增加或删除一个客户端",
        "guarantee_name": "保证",
        "guarantee": "{rounds} 个轮次后 ε = {eps:.3f}，δ = {delta:.0e}；δ·N = {delta_n:.2g}",
        "delta_ok": "（δ ≪ 1/N）", "delta_large": "（δ 没有远小于 1/N：太大）",
        "accountant_name": "隐私会计器",
        "ftrl_accountant": "dp-accounting {version}，每棵树按 SingleEpochTreeAggregationDpEvent "
                           "做 RDP 核算",
        "accountant": "dp-accounting {version} 的 {name} 隐私会计器",
        "participation_name": "参与假设",
        "ftrl_participation": "没有采样：每个客户端在每棵 {rounds} 个轮次的树中最多参与一次，"
                              "已在调度上检查（最忙的客户端出现在 {trees} 棵树中）；ε 按最坏"
                              "情况计算，即每个客户端出现在每棵树中",
        "participation_central": "泊松采样，每轮每个客户端以 q = {q:g} 独立地被抽中，使用秘密"
                                 "随机性（ε 中的放大正需要这一点；无法这样采样的系统不能声称"
                                 "有这种放大）",
        "participation_local": "泊松采样 q = {q:g}；ε 是最忙的客户端的，没有放大",
        "mechanism_name": "机制",
        "ftrl_mechanism": "树聚合噪声，每个节点 z = {z:.4g}，C = {c:g}，除数 m = {m:g}",
        "mechanism": "z = {z:.4g}，{clipping}，除数 q·N = {expected:g}",
        "noise_exact": "；整数和上的精确离散高斯噪声",
        "noise_float": "；float32 高斯噪声（可被浮点攻击）",
        "release_name": "发布",
        "release": "全部 {rounds} 个全局模型（隐私会计器把它们全部组合起来）",
        "trust_name": "受信任方",
        "trust_local": "没有服务器；每个客户端给自己的报告加噪",
        "trust_central": "负责裁剪、求和并加噪的服务器，它使用秘密随机性（它在加噪前看到每个"
                         "更新）",
        "search_name": "超参数搜索",
        "search_none": "没有在隐私数据上搜索{chosen}：除本次运行外没有别的运行接触过这些数据",
        "search_runs": "在隐私数据上运行了 {runs} 次{chosen}，不在 ε 的覆盖范围内：它们合起来"
                       "最多消耗 {runs}·ε = {eps_total:.3g}，δ = {delta_total:.0e}（基本组合；"
                       "Papernot & Steinke 2022 那样的隐私选择代价更小）",
        "clipping_name": "裁剪阈值",
        "clipping": "在运行中根据加噪的计数自适应调整：已计入 ε（总 z）",
        "randomness_name": "随机性",
        "randomness_seeded": "噪声和采样由种子导出：对任何知道种子的人都不是私密的（仅用于教学）",
        "randomness_secret": "秘密的（从不写出，从不重用）",
        "not_covered_name": "不在保证范围内", "not_covered": "逐客户端诊断信息、运行时间",
        "not_covered_schedule": "、参与调度本身",
        "not_covered_search": "、上面的搜索",
    },
}


def _dp_accounting_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("dp-accounting")
    except metadata.PackageNotFoundError:  # pragma: no cover - a requirement of the course
        return "unknown"


def reporting_checklist(history: training.DPHistory, *, num_clients: int,
                        hyperparameter_runs: int = 1, tuning: str | None = None,
                        language: str = "en") -> str:
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
        language: ``"en"`` (the default) or ``"zh-CN"``: the same items with the same figures
            in Simplified Chinese (``tuning`` is quoted as given).

    Returns:
        The checklist, one item per line.

    Raises:
        TypeError: ``history`` is not a DPHistory, or ``tuning`` or ``language`` not a string.
        ValueError: The run accounted no epsilon, a count is out of range, or ``language`` is
            not ``"en"`` or ``"zh-CN"``.
    """
    num_clients, eps, delta = _check_accounted_run(history, num_clients)
    runs = v.check_int("hyperparameter_runs", hyperparameter_runs, minimum=1, maximum=10**6)
    if tuning is not None and not isinstance(tuning, str):
        raise TypeError(f"tuning must be a string or None, got {type(tuning).__name__} "
                        f"{v._fmt(tuning)}.")
    language = v.check_language(language)
    rounds = int(history.rounds[-1])
    ftrl = isinstance(history, training.DPFTRLHistory)
    local = history.noise_placement is aggregation.NoisePlacement.LOCAL
    ok = delta < 0.1 / num_clients

    def item(good: bool, name: str, text: str) -> str:
        return f"{'[x]' if good else '[!]'} {name}: {text}"

    w = _CHECKLIST[language]
    if isinstance(history, training.DPFTRLHistory):
        relation = w["ftrl_relation"]
        participation = w["ftrl_participation"].format(
            rounds=history.restart_every or history.schedule_rounds,
            trees=history.trees_per_client)
        accountant = w["ftrl_accountant"].format(version=_dp_accounting_version())
        mechanism = w["ftrl_mechanism"].format(z=history.noise_multiplier,
                                               c=history.clipping_norm,
                                               m=history.clients_per_round)
    else:
        relation = w["relation_local" if local else "relation_central"]
        participation = w["participation_local" if local else "participation_central"].format(
            q=history.sampling_probability)
        accountant = w["accountant"].format(name=history.accountant.upper(),
                                            version=_dp_accounting_version())
        mechanism = w["mechanism"].format(z=history.noise_multiplier,
                                          clipping=_clipping_words(history, _STATEMENT[language]),
                                          expected=history.expected_clients)
    lines = [
        w["title"],
        item(True, w["unit_name"], w["unit"]),
        item(True, w["relation_name"], w["relation"].format(relation=relation, n=num_clients)),
        item(ok, w["guarantee_name"], w["guarantee"].format(eps=eps, delta=delta, rounds=rounds,
                                                           delta_n=delta * num_clients)
             + (w["delta_ok"] if ok else w["delta_large"])),
        item(True, w["accountant_name"], accountant),
        item(True, w["participation_name"], participation),
        item(history.noise == "exact", w["mechanism_name"],
             mechanism + (w["noise_exact"] if history.noise == "exact" else w["noise_float"])),
        item(True, w["release_name"], w["release"].format(rounds=rounds)),
        item(True, w["trust_name"], w["trust_local" if local else "trust_central"]),
    ]
    chosen = f" ({tuning})" if tuning else ""
    if runs == 1:
        lines.append(item(True, w["search_name"], w["search_none"].format(chosen=chosen)))
    else:
        lines.append(item(False, w["search_name"], w["search_runs"].format(
            runs=runs, chosen=chosen, eps_total=runs * eps, delta_total=runs * delta)))
    if history.adaptive_clipping is not None:
        lines.append(item(True, w["clipping_name"], w["clipping"]))
    lines.append(item(not history.reproducible_noise, w["randomness_name"],
                      w["randomness_seeded"] if history.reproducible_noise else
                      w["randomness_secret"]))
    lines.append(item(True, w["not_covered_name"], w["not_covered"] + (
        w["not_covered_schedule"] if ftrl else "") + (
        w["not_covered_search"] if runs > 1 else "")))
    return "\n".join(lines)
