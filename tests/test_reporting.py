"""The privacy statement of a DP-FedAvg run names its unit, relation, divisor and noise."""

from __future__ import annotations

import re

import numpy as np
import pytest

from fl_helpers import reporting, schedule, training


def _history(**changes) -> training.DPHistory:
    fields = dict(rounds=np.array([1, 2]), test_accuracy=np.array([0.5, 0.6]),
                  test_loss=np.array([1.0, 0.9]), final_weights=[np.zeros(2, np.float32)],
                  seconds_per_round=np.array([0.1, 0.1]), engine=training.Engine.LOOP,
                  aggregation="DP-FedAvg", epsilon=np.array([1.0, 1.5]), noise_multiplier=1.5,
                  clipping_norm=0.5, sampling_probability=0.1, target_delta=1e-5,
                  accountant="pld", expected_clients=100.0)
    fields.update(changes)
    return training.DPHistory(**fields)


@pytest.mark.parametrize("noise", ["float", "exact"])
def test_privacy_statement_names_the_public_divisor_and_the_noise(noise):
    text = reporting.privacy_statement(_history(noise=noise), num_clients=1000)
    assert "add or remove one client from the 1,000 clients" in text
    assert "divided by the public q·N = 100" in text
    if noise == "exact":
        assert "Noise: exact." in text
    else:
        assert "Noise: float32 Gaussian" in text and "noise='exact'" in text


def test_privacy_statement_of_adaptive_clipping_states_its_settings_and_the_norms_reached():
    from fl_helpers import aggregation
    adaptive = aggregation.AdaptiveClipping(initial_clipping_norm=0.1, target_quantile=0.5,
                                            learning_rate=0.2)
    history = _history(adaptive_clipping=adaptive, clipping_norm=0.1, noise_multiplier=1.0,
                       update_noise_multiplier=1.0051, expected_clients=100.0,
                       clipping_norms=np.array([0.4, 1.1]), noise="exact")
    text = reporting.privacy_statement(history, num_clients=1000)
    assert "adaptive clipping" in text
    for part in ("initial C = 0.1", "γ = 0.5", "η = 0.2", "σ_b = 5 ", "z total = 1 ",
                 "z_Δ = 1.01", "C ended at 1.1", "median over the 2 rounds 0.75"):
        assert part in text, part
    assert "q = 0.1, C = 0.1" not in text  # C_0 is not quoted as the run's clipping norm
    # A fixed C is stated as before.
    assert "q = 0.1, C = 0.5," in reporting.privacy_statement(_history(), num_clients=1000)


def test_privacy_statement_of_dp_ftrl_names_unit_relation_assumption_accountant_and_parties():
    from fl_helpers import dp_ftrl
    history = training.DPFTRLHistory(
        rounds=np.array([1, 2, 3]), test_accuracy=np.zeros(0), test_loss=np.zeros(0),
        final_weights=[np.zeros(2, np.float32)], seconds_per_round=np.full(3, 0.1),
        engine=training.Engine.FAST, aggregation="DP-FTRL", epsilon=np.array([3.0, 4.0, 4.0]),
        noise_multiplier=2.0, clipping_norm=0.5, target_delta=1e-6,
        accountant=dp_ftrl.ACCOUNTANT, expected_clients=10.0, noise="exact", restart_every=3,
        clients_per_round=10.0, trees_per_client=1, schedule_rounds=3)
    text = reporting.privacy_statement(history, num_clients=30, examples_per_client=600)
    for part in ("Unit protected: one client", "~600 examples",
                 "replaced by zero vectors", "REPLACE_SPECIAL", "whether and when it took part",
                 "at most once per tree (a tree restarted every 3 rounds",
                 "No sampling", "(ε = 4.000, δ = 1e-06) after 3 rounds",
                 "SingleEpochTreeAggregationDpEvent", dp_ftrl.ACCOUNTANT, "z = 2 per tree node",
                 "public m = 10", "Observer: anyone who sees the 3 released global models",
                 "Trusted: the server that clips, sums and adds the tree's noise",
                 "Not covered: the participation schedule itself"):
        assert part in text, part
    assert "add or remove" not in text and "q = " not in text


def test_privacy_statement_of_a_real_dp_ftrl_run():
    import warnings

    from fl_helpers import dp_ftrl, models
    rng = np.random.default_rng(1)
    clients = [(rng.random((6, 28, 28)).astype(np.float32), rng.integers(0, 10, 6))
               for _ in range(4)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        history = dp_ftrl.run_dp_ftrl(
            models.make_softmax_regression, clients,
            schedule=dp_ftrl.cyclic_schedule(4, clients_per_round=2, num_rounds=2),
            clipping_norm=1.0, clients_per_round=2, restart_every=2, target_delta=1e-5,
            local_epochs=1, batch_size=3, client_learning_rate=0.1, noise_multiplier=1.0,
            progress=False, randomness=schedule.PrivateRandomness.reproducible(0))
    text = reporting.privacy_statement(history, num_clients=4)
    assert f"(ε = {history.epsilon[-1]:.3f}" in text and "THIS RUN used reproducible" in text


# ------------------------------------------------------------------ the reporting checklist

def test_reporting_checklist_states_every_item_from_the_run():
    from importlib import metadata
    text = reporting.reporting_checklist(_history(noise="exact", accountant="discrete"),
                                         num_clients=1000, tuning="C = 0.5 from a public proxy")
    for part in ("Unit of privacy: one client with all its data",
                 "Neighbouring relation: add or remove one client, among N = 1,000 clients",
                 "[x] Guarantee: ε = 1.500, δ = 1e-05 after 2 rounds; δ·N = 0.01 (δ ≪ 1/N)",
                 f"DISCRETE accountant of dp-accounting {metadata.version('dp-accounting')}",
                 "Poisson sampling, each client independently with q = 0.1",
                 "[x] Mechanism: z = 1.5, C = 0.5, divisor q·N = 100; exact discrete Gaussian",
                 "every one of the 2 global models",
                 "[x] Hyperparameter search: none on the private data (C = 0.5 from a public "
                 "proxy)", "[x] Randomness: secret", "Not covered: per-client diagnostics"):
        assert part in text, part
    assert "[!]" not in text


def test_reporting_checklist_flags_what_weakens_the_claim():
    text = reporting.reporting_checklist(
        _history(noise="float", target_delta=1e-3, reproducible_noise=True), num_clients=1000,
        hyperparameter_runs=5)
    for part in ("[!] Guarantee:", "δ·N = 1 (δ not far below 1/N: too large)",
                 "[!] Mechanism:", "float32 Gaussian noise",
                 "[!] Hyperparameter search: 5 runs on the private data, NOT covered by ε: "
                 "together they spend up to 5·ε = 7.5 at δ = 5e-03",
                 "[!] Randomness: noise and sampling derived from the seed",
                 "Not covered: per-client diagnostics, timings, the search above"):
        assert part in text, part


def test_reporting_checklist_of_adaptive_clipping_and_dp_ftrl():
    from fl_helpers import aggregation, dp_ftrl
    adaptive = _history(adaptive_clipping=aggregation.AdaptiveClipping(), clipping_norm=0.1,
                        update_noise_multiplier=1.52, clipping_norms=np.array([0.1, 0.11]),
                        noise="exact")
    text = reporting.reporting_checklist(adaptive, num_clients=1000)
    assert "adaptive clipping (Andrew et al. 2021)" in text
    assert "[x] Clipping norm: adapted inside the run from noised counts: covered by ε" in text
    ftrl = training.DPFTRLHistory(
        rounds=np.array([1, 2, 3]), test_accuracy=np.zeros(0), test_loss=np.zeros(0),
        final_weights=[np.zeros(2, np.float32)], seconds_per_round=np.full(3, 0.1),
        engine=training.Engine.FAST, aggregation="DP-FTRL", epsilon=np.array([3.0, 4.0, 4.0]),
        noise_multiplier=2.0, clipping_norm=0.5, target_delta=1e-6,
        accountant=dp_ftrl.ACCOUNTANT, expected_clients=10.0, noise="exact", restart_every=3,
        clients_per_round=10.0, trees_per_client=1, schedule_rounds=3)
    text = reporting.reporting_checklist(ftrl, num_clients=30)
    for part in ("replaced by zero vectors", "REPLACE_SPECIAL",
                 "no sampling: each client at most once per tree of 3 rounds",
                 "busiest client in 1 trees", "SingleEpochTreeAggregationDpEvent",
                 "z = 2 per node, C = 0.5, divisor m = 10", "the participation schedule itself"):
        assert part in text, part
    assert "Poisson" not in text


_CHECKLIST_BAD = {"history": [None, "h", training.History(
                      rounds=np.array([1]), test_accuracy=np.array([0.5]),
                      test_loss=np.array([1.0]), final_weights=[np.zeros(2, np.float32)],
                      seconds_per_round=np.array([0.1]), engine=training.Engine.LOOP,
                      aggregation="FedAvg")],
                  "num_clients": [0, -1, 1.5, "10", None, True],
                  "hyperparameter_runs": [0, -2, 2.5, "3", None, 10**7],
                  "tuning": [3, b"grid", ["C"]]}


@pytest.mark.parametrize("argument, bad", [(a, b) for a, values in _CHECKLIST_BAD.items()
                                           for b in values])
def test_reporting_checklist_bad_inputs_are_named(argument, bad):
    valid = {"history": _history(), "num_clients": 1000, "hyperparameter_runs": 1,
             "tuning": None}
    with pytest.raises((TypeError, ValueError), match=argument):
        reporting.reporting_checklist(**{**valid, argument: bad})


@pytest.mark.parametrize("write", [reporting.reporting_checklist, reporting.privacy_statement])
def test_reporting_checklist_and_statement_refuse_a_run_without_epsilon(write):
    # One check behind both (reporting._check_accounted_run), with one message each.
    with pytest.raises(ValueError, match=r"^history has no epsilon: run it with target_delta\.$"):
        write(_history(target_delta=None), num_clients=10)
    with pytest.raises(TypeError, match=r"^history must be a DPHistory \(as from "
                                        r"training\.run_dp_fedavg or dp_ftrl\.run_dp_ftrl\), "
                                        r"got dict\.$"):
        write({}, num_clients=10)


# ------------------------------------------------ the statement in Chinese (issue 30)

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*(?:e[-+]?\d+)?")


def _ftrl_history(**changes) -> training.DPFTRLHistory:
    from fl_helpers import dp_ftrl
    fields = dict(
        rounds=np.array([1, 2, 3]), test_accuracy=np.zeros(0), test_loss=np.zeros(0),
        final_weights=[np.zeros(2, np.float32)], seconds_per_round=np.full(3, 0.1),
        engine=training.Engine.FAST, aggregation="DP-FTRL", epsilon=np.array([3.0, 4.0, 4.0]),
        noise_multiplier=2.0, clipping_norm=0.5, target_delta=1e-6,
        accountant=dp_ftrl.ACCOUNTANT, expected_clients=10.0, noise="exact", restart_every=3,
        clients_per_round=10.0, trees_per_client=1, schedule_rounds=3)
    fields.update(changes)
    return training.DPFTRLHistory(**fields)


def _statement_histories() -> dict[str, training.DPHistory]:
    from fl_helpers import aggregation
    adaptive = aggregation.AdaptiveClipping(initial_clipping_norm=0.1, target_quantile=0.5,
                                            learning_rate=0.2)
    return {
        "central float": _history(noise="float"),
        "central exact reproducible": _history(noise="exact", reproducible_noise=True),
        "local": _history(noise="exact", noise_placement=aggregation.NoisePlacement.LOCAL),
        "adaptive": _history(adaptive_clipping=adaptive, clipping_norm=0.1,
                             noise_multiplier=1.0, update_noise_multiplier=1.0051,
                             clipping_norms=np.array([0.4, 1.1]), noise="exact"),
        "dp-ftrl": _ftrl_history(),
        "dp-ftrl one tree reproducible": _ftrl_history(restart_every=None,
                                                       reproducible_noise=True),
    }


@pytest.mark.parametrize("case", list(_statement_histories()))
@pytest.mark.parametrize("examples", [None, 600])
def test_privacy_statement_in_chinese_says_the_same_with_the_same_figures(case, examples):
    """Line by line, the Chinese statement carries the English one's numbers (ε, δ, rounds,
    z, q, C, N, the divisor, the years of the papers), and it names the unit (隐私单元), the
    neighbouring relation (相邻关系), the trusted party (受信任方) and the observer (观察者)."""
    history = _statement_histories()[case]
    english = reporting.privacy_statement(history, num_clients=1000,
                                          examples_per_client=examples)
    assert reporting.privacy_statement(history, num_clients=1000, examples_per_client=examples,
                                       language="en") == english
    chinese = reporting.privacy_statement(history, num_clients=1000,
                                          examples_per_client=examples, language="zh-CN")
    en_lines, zh_lines = english.splitlines(), chinese.splitlines()
    assert len(en_lines) == len(zh_lines)
    for ours, theirs in zip(zh_lines, en_lines, strict=True):
        assert sorted(_NUMBER.findall(ours)) == sorted(_NUMBER.findall(theirs)), (ours, theirs)
    for en, zh in [("Unit protected:", "- 隐私单元："), ("Neighbouring relation:", "- 相邻关系："),
                   ("Trusted:", "- 受信任方："), ("Observer:", "- 观察者："),
                   ("Guarantee:", "- 保证："), ("Noise:", "- 噪声："),
                   ("Not covered:", "- 不在保证范围内：")]:
        assert [line.startswith(f"- {en}") for line in en_lines] == [
            line.startswith(zh) for line in zh_lines], en
    assert ("1,000" in chinese) == ("1,000" in english)  # N, where the relation names it
    assert history.accountant.upper() in chinese or history.accountant in chinese
    assert ("本次运行使用了由种子导出的可复现噪声" in chinese) == history.reproducible_noise
    assert not re.search(r"[A-Za-z]{4,} [a-z]{4,} [a-z]{4,}", chinese.replace(
        "SingleEpochTreeAggregationDpEvent", "")), "an English phrase left in the Chinese"


@pytest.mark.parametrize("bad, error", [("zh", ValueError), ("EN", ValueError),
                                        ("", ValueError), (None, TypeError), (1, TypeError)])
def test_privacy_statement_language_is_checked(bad, error):
    with pytest.raises(error, match=r"^language must be 'en' or 'zh-CN', got "):
        reporting.privacy_statement(_history(), num_clients=10, language=bad)


@pytest.mark.parametrize("case", list(_statement_histories()))
@pytest.mark.parametrize("runs, tuning", [(1, None), (5, "a grid of five fixed C values")])
def test_reporting_checklist_in_chinese_has_the_same_items_marks_and_figures(case, runs, tuning):
    history = _statement_histories()[case]
    english = reporting.reporting_checklist(history, num_clients=1000, hyperparameter_runs=runs,
                                            tuning=tuning)
    assert reporting.reporting_checklist(history, num_clients=1000, hyperparameter_runs=runs,
                                         tuning=tuning, language="en") == english
    chinese = reporting.reporting_checklist(history, num_clients=1000, hyperparameter_runs=runs,
                                            tuning=tuning, language="zh-CN")
    en_lines, zh_lines = english.splitlines(), chinese.splitlines()
    assert len(en_lines) == len(zh_lines)
    for ours, theirs in zip(zh_lines, en_lines, strict=True):
        if theirs.startswith("["):
            assert ours[:3] == theirs[:3], (ours, theirs)  # the same [x] / [!] mark
        assert sorted(_NUMBER.findall(ours)) == sorted(_NUMBER.findall(theirs)), (ours, theirs)
    for en, zh in [("Unit of privacy", "隐私单元"), ("Neighbouring relation", "相邻关系"),
                   ("Trust", "受信任方"), ("Guarantee", "保证")]:
        assert [line[4:].startswith(f"{en}:") for line in en_lines] == [
            line[4:].startswith(f"{zh}:") for line in zh_lines], en
    if tuning:
        assert f"({tuning})" in chinese  # the caller's words, quoted as given


def test_reporting_checklist_language_is_checked():
    with pytest.raises(ValueError, match=r"^language must be 'en' or 'zh-CN', got 'fr'"):
        reporting.reporting_checklist(_history(), num_clients=10, language="fr")
