"""Fixtures shared by several test modules, and the test tiers.

Tiers (markers, listed in pyproject.toml):

* ``slow``: a test that took 0.5 s or more (or 3 s over its parameters; in the second pass of
  2026-12-07, 0.8 s or more summed over its parameters) in a ``--durations=0`` run of the fast
  tier on the course's 2-core machine, listed in :data:`SLOW_TESTS` below, or marked
  ``@pytest.mark.slow`` in its file;
* ``fuzz``: the bad-input fuzz, ``tests/test_bad_inputs.py`` (18,518 cases in 334 tests), and each
  module's own bad-input table (test names matching :data:`_BAD_INPUT_TABLE`);
* ``notebooks``: executes notebooks (nbval's cells and the exercise checks that the root
  ``conftest.py`` adds after them, the teacher's ``--check`` of ``test_student_edition``);
* ``browser``: drives JupyterLab in headless Chromium (marked in ``tests/browser``).

The fast tier, the unit tests in under a minute::

    .venv/bin/python -m pytest -m "not slow and not fuzz and not notebooks and not browser" tests

``tests/test_tiers.py`` checks that every name below still exists.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from fl_helpers import data

_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def small_federation():
    """16 MNIST clients, IID and Dirichlet(0.3), and 1,000 test images.

    720 training images: 45 per IID client, so with B = 10 every epoch ends with a partial batch
    of 5; the Dirichlet clients differ in size by more than a factor of two.
    """
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    x, y = x_train[:720], y_train[:720]
    rng = np.random.default_rng(0)
    iid = data.client_datasets(x, y, data.partition_iid(720, 16, rng=rng))
    dirichlet = data.client_datasets(x, y, data.partition_dirichlet(y, 16, alpha=0.3, rng=rng))
    return {"iid": iid, "dirichlet": dirichlet}, (x_test[:1000], y_test[:1000])


#: Test functions (``file::name``, every parameter) that the fast tier leaves out.
SLOW_TESTS = frozenset({
    "tests/test_dp_fedavg.py::test_exact_seeded_noise_attack_works_only_on_reproducible_noise",
    "tests/test_dp_fedavg.py::test_a_runs_epsilon_is_dp_accountings_on_the_rules_event",
    "tests/test_data.py::test_partition_disjoint_and_complete",
    "tests/test_transfer.py::test_same_seed_same_scores_other_seed_other_scores",
    "tests/test_heterogeneity.py::test_scaffold_equals_from_scratch",
    "tests/test_layering.py::test_imports_point_to_the_same_or_a_lower_layer",
    "tests/test_accounting.py::test_absl_warnings_silenced_and_verbosity_restored",
    "tests/test_accounting.py::test_calibration_finest_rtol_returns",
    "tests/test_accounting.py::test_ddg_rho_by_client_count_is_linear_in_the_counts",
    "tests/test_accounting.py::test_calibration_straddling_the_pld_range",
    "tests/test_accounting.py::test_default_accountant_is_pld",
    "tests/test_accounting.py::test_epsilon_per_round_equals_accountant",
    "tests/test_accounting.py::test_noise_multiplier_for_epsilon_round_trip",
    "tests/test_accounting.py::test_noise_multiplier_for_epsilon_unreachable_targets",
    "tests/test_accounting.py::test_pld_calibration_notebook_04_setting",
    "tests/test_accounting.py::test_pld_epsilon_per_round",
    "tests/test_accounting.py::test_pld_equals_dp_accounting_pld_accountant",
    "tests/test_accounting.py::test_pld_full_batch_matches_exact_gaussian_composition",
    "tests/test_accounting.py::test_pld_laplace_per_release",
    "tests/test_accounting.py::test_pld_never_exceeds_rdp",
    "tests/test_accounting.py::test_pld_out_of_range_reports_rdp",
    "tests/test_accounting.py::test_poisson_subsampled_bound_is_above_the_tight_gaussian_accounting",
    "tests/test_accounting.py::test_sampled_event_composes_every_round_as_dp_accounting_does",
    "tests/test_adaptive_clipping.py::test_a_checkpointed_adaptive_run_resumes_bit_for_bit",
    "tests/test_adaptive_clipping.py::test_a_fixed_rule_checkpoint_is_refused_by_an_adaptive_run",
    "tests/test_adaptive_clipping.py::test_adaptive_runs_on_both_engines_alike",
    "tests/test_adaptive_clipping.py::test_client_side_clipping_on_the_loop_hides_the_raw_norms",
    "tests/test_adaptive_clipping.py::test_fixed_clipping_records_its_norm_every_round",
    "tests/test_adaptive_clipping.py::test_run_dp_fedavg_tracks_the_median_update_norm",
    "tests/test_adaptive_clipping.py::test_the_count_is_as_private_as_the_split_assumes_and_flowers_is_not",
    "tests/test_adaptive_clipping.py::test_the_noised_share_is_unbiased_with_the_stated_std",
    "tests/test_adaptive_clipping.py::test_with_noise_the_norm_tracks_the_median_on_average",
    "tests/test_attack_widgets.py::test_inversion_explorer_redraws",
    "tests/test_attacks.py::test_analytic_inversion_of_one_image_is_exact",
    "tests/test_attacks.py::test_batch_candidates_are_mixtures_of_the_batch",
    "tests/test_attacks.py::test_bound_check_fails_for_a_broken_mechanism",
    "tests/test_attacks.py::test_canary_attack_roc_lies_under_the_tradeoff_curve",
    "tests/test_attacks.py::test_dlg_reconstructs_one_image",
    "tests/test_attacks.py::test_stored_membership_rocs_lie_under_their_bounds",
    "tests/test_attacks.py::test_tradeoff_bound_is_under_the_accountants_line",
    "tests/test_audit.py::test_broken_rules_are_caught",
    "tests/test_audit.py::test_honest_rule_is_consistent_and_the_audit_has_power",
    "tests/test_audit.py::test_honest_rule_on_the_secret_noise_path",
    "tests/test_audit.py::test_same_seed_same_audit",
    "tests/test_audit.py::test_whole_exact_runs_on_both_engines_prove_nothing",
    "tests/test_checkpoints.py::test_checkpoint_of_another_run_is_refused",
    "tests/test_checkpoints.py::test_interrupted_run_resumes_bit_identically",
    "tests/test_checkpoints.py::test_resume_restores_a_wrapped_optimizer_and_its_average",
    "tests/test_checkpoints.py::test_resumed_dp_run_with_the_same_randomness_is_identical",
    "tests/test_cli.py::test_bad_value_from_a_real_process",
    "tests/test_cli.py::test_bad_values_exit_nonzero_with_one_line_naming_the_flag",
    "tests/test_cli.py::test_tiny_run_writes_metrics_json_and_plot_png",
    "tests/test_client.py::test_client_update_is_deterministic_and_ignores_the_models_previous_state",
    "tests/test_client.py::test_client_update_matches_hand_written_numpy_sgd",
    "tests/test_client.py::test_one_trace_serves_every_client_size_batch_size_and_learning_rate",
    "tests/test_client.py::test_sgd_loss_curve_stops_and_reports_divergence",
    "tests/test_cross_silo.py::test_an_empty_poisson_batch_is_noised_like_any_other",
    "tests/test_cross_silo.py::test_dp_noise_has_the_calibrated_std",
    "tests/test_cross_silo.py::test_exact_noise_dp_sgd_step_is_the_integer_sum_plus_integer_noise",
    "tests/test_cross_silo.py::test_private_comparison_respects_the_target",
    "tests/test_cross_silo_widget.py::test_the_dp_federation_panel_redraws_in_one_message",
    "tests/test_cross_silo_widget.py::test_widget_summary_and_drawing",
    "tests/test_data.py::test_client_datasets_and_label_counts",
    "tests/test_data.py::test_known_labels_and_counts",
    "tests/test_data.py::test_load_returns_fresh_arrays",
    "tests/test_data.py::test_pixel_statistics",
    "tests/test_data.py::test_shapes_dtypes_and_ranges",
    "tests/test_deploy.py::test_client_app_imports_stay_light",
    "tests/test_distributed_dp.py::test_stochastic_rounding_is_unbiased_and_within_the_norm_bound",
    "tests/test_distributed_dp.py::test_run_distributed_dp_reports_the_epsilon_of_the_rules_event",
    "tests/test_dp_experiment_widgets.py::test_dp_experiment_explorer_controls_and_redraw",
    "tests/test_dp_experiment_widgets.py::test_dp_experiment_explorer_reuses_a_given_baseline_and_rejects_bad_start",
    "tests/test_dp_fedavg.py::test_dp_without_noise_or_clipping_is_fedavg",
    "tests/test_dp_fedavg.py::test_engine_equals_loop_with_clipping_and_noise",
    "tests/test_dp_fedavg.py::test_epsilon_is_the_accountants_and_the_budget_stops_training",
    "tests/test_dp_fedavg.py::test_every_clipped_update_is_inside_the_ball",
    "tests/test_dp_fedavg.py::test_exact_noise_runs_on_both_engines_and_is_accounted_as_discrete",
    "tests/test_dp_fedavg.py::test_noise_is_added_to_the_sum_then_divided_by_q_n",
    "tests/test_dp_fedavg.py::test_one_example_clients_take_the_factor_path_with_the_same_result",
    "tests/test_dp_fedavg.py::test_poisson_rounds_vary_and_an_empty_round_is_only_noise",
    "tests/test_dp_fedavg.py::test_private_outputs_only_by_default",
    "tests/test_dp_fedavg.py::test_q1_z0_is_bit_identical_and_secret_noise_differs",
    "tests/test_dp_fedavg.py::test_reference_round_equals_the_loop",
    "tests/test_dp_fedavg.py::test_reproducible_noise_warns_that_it_is_not_private",
    "tests/test_dp_fedavg.py::test_run_fedavg_refuses_a_rule_that_describes_a_private_release",
    "tests/test_dp_fedavg.py::test_the_seeded_noise_attack_works_only_on_reproducible_noise",
    "tests/test_dp_ftrl.py::test_run_dp_ftrl_calibrates_z_to_a_target_epsilon_and_takes_empty_rounds",
    "tests/test_dp_ftrl.py::test_run_dp_ftrl_is_secret_by_default_and_reproducible_only_when_asked",
    "tests/test_dp_ftrl.py::test_run_dp_ftrl_loop_and_fast_engine_agree_and_epsilon_is_the_accountings",
    "tests/test_dp_sgd.py::test_clipping_never_increases_a_norm_and_bounds_every_example",
    "tests/test_dp_sgd.py::test_default_runs_use_secret_noise_and_differ",
    "tests/test_dp_sgd.py::test_epsilon_equals_the_accountants",
    "tests/test_dp_sgd.py::test_exact_noise_step_is_the_integer_sum_plus_integer_noise",
    "tests/test_dp_sgd.py::test_no_noise_means_no_guarantee",
    "tests/test_dp_sgd.py::test_noise_on_the_sum_has_std_z_times_c",
    "tests/test_dp_sgd.py::test_parity_with_a_from_scratch_loop",
    "tests/test_dp_sgd.py::test_per_example_gradients_equal_single_example_gradients",
    "tests/test_dp_sgd.py::test_randomness_argument",
    "tests/test_dp_sgd.py::test_regenerating_the_noise_recovers_the_clean_sum_only_for_a_known_seed",
    "tests/test_dp_sgd.py::test_reproducible_runs_are_bit_identical_and_say_they_are_not_private",
    "tests/test_dp_sgd.py::test_the_interval_attack_breaks_float_noise_and_not_exact_noise",
    "tests/test_dp_sgd.py::test_the_update_divides_by_the_expected_batch_size",
    "tests/test_dp_sgd.py::test_works_for_a_general_small_classifier",
    "tests/test_engine.py::test_auto_picks_the_fast_engine_for_dense_stacks",
    "tests/test_engine.py::test_engine_equals_loop",
    "tests/test_engine.py::test_engine_equals_loop_full_batch",
    "tests/test_engine.py::test_engine_equals_loop_on_the_2nn",
    "tests/test_engine.py::test_engine_is_deterministic",
    "tests/test_engine.py::test_engine_returns_every_update_like_the_loop",
    "tests/test_engine.py::test_fused_clipped_sum_equals_the_rules_reference_sum",
    "tests/test_engine.py::test_group_size_changes_nothing_but_speed",
    "tests/test_engine.py::test_median_rule_runs_on_both_engines",
    "tests/test_engine.py::test_one_step_clipped_sum_equals_the_loop",
    "tests/test_engine.py::test_one_step_clipping_holds_when_a_clients_gradients_cancel",
    "tests/test_engine.py::test_one_step_dp_fedavg_equals_the_loop",
    "tests/test_engine.py::test_training_reports_divergence",
    "tests/test_engine_cnn.py::test_cnn_clipped_sum_equals_the_rules_reference_sum",
    "tests/test_engine_cnn.py::test_cnn_evaluator_equals_client_evaluate",
    "tests/test_engine_cnn.py::test_cnn_updates_equal_the_loop",
    "tests/test_engine_cnn.py::test_group_size_changes_nothing_on_a_valid_padding_cnn",
    "tests/test_engine_cnn.py::test_the_cnn_runs_on_the_fast_engine_and_auto_keeps_the_loop",
    "tests/test_experiment.py::test_budget_is_calibrated_and_reported_epsilon_is_the_accountants",
    "tests/test_experiment.py::test_exact_noise_refuses_an_accountant_that_does_not_bound_it",
    "tests/test_experiment.py::test_float_noise_warns_that_it_is_not_private",
    "tests/test_experiment.py::test_given_noise_multiplier_reports_the_accountants_epsilon",
    "tests/test_experiment.py::test_json_has_no_per_client_figures_unless_asked",
    "tests/test_experiment.py::test_local_noise_on_the_sum_has_std_z_c_sqrt_m",
    "tests/test_experiment.py::test_local_run_reports_the_busiest_clients_epsilon",
    "tests/test_experiment.py::test_non_private_run_neither_clips_nor_noises",
    "tests/test_experiment.py::test_same_seed_same_result_only_with_reproducible_noise",
    "tests/test_faults.py::test_a_malformed_reply_time_is_a_rejected_reply_never_a_crash",
    "tests/test_faults.py::test_a_private_run_is_silent_when_the_target_client_diverges",
    "tests/test_faults.py::test_a_round_where_every_client_fails_keeps_the_model",
    "tests/test_faults.py::test_dp_fedavg_rejects_without_reporting_and_keeps_its_denominator",
    "tests/test_faults.py::test_faulty_clients_are_rejected_logged_and_fedavg_renormalises",
    "tests/test_faults.py::test_one_diverging_client_is_rejected_and_all_diverging_is_an_error",
    "tests/test_faults.py::test_stragglers_past_the_deadline_are_rejected",
    "tests/test_fedavg_widgets.py::test_fedavg_explorer_reruns_with_the_chosen_settings",
    "tests/test_flower_adaptive_clipping.py::test_flower_1_42_client_side_adaptive_clipping_diverges_until_flower_fixes_it",
    "tests/test_flower_adaptive_clipping.py::test_flower_1_42_server_side_adaptive_clipping_diverges_until_flower_fixes_it",
    "tests/test_flower_adaptive_clipping.py::test_flowers_update_with_the_bit_inverted_is_ours",
    "tests/test_heterogeneity.py::test_algorithms_run_the_same_on_the_fast_engine_and_the_loop",
    "tests/test_heterogeneity.py::test_fedavg_drops_stragglers_and_fedprox_keeps_them",
    "tests/test_heterogeneity.py::test_fedprox_with_stragglers_equals_from_scratch",
    "tests/test_heterogeneity.py::test_local_work_is_the_same_on_both_engines",
    "tests/test_heterogeneity.py::test_server_yogi_runs_on_the_loop_with_either_engine",
    "tests/test_heterogeneity_widgets.py::test_dirichlet_federation_splits_everything_once",
    "tests/test_heterogeneity_widgets.py::test_first_summary_must_match_the_sliders",
    "tests/test_heterogeneity_widgets.py::test_slider_move_redraws_once_and_remembers",
    "tests/test_heterogeneity_widgets.py::test_summary_is_reproducible_and_fine_tuning_helps_non_iid_clients",
    "tests/test_local_sgd_widgets.py::test_local_sgd_explorer_retrains_with_the_chosen_settings",
    "tests/test_models.py::test_seeding_does_not_read_global_state",
    "tests/test_noise_widgets.py::test_noise_explorer_controls_and_redraw",
    "tests/test_noise_widgets.py::test_noise_explorer_draws_reproducible_samples_and_the_neighbour",
    "tests/test_notebook_numbers.py::test_markdown_number_matches_its_output",
    "tests/test_paillier.py::test_gmpy2_and_python_give_identical_integers",
    "tests/test_paillier.py::test_lightphe_and_ours_decrypt_each_others_ciphertexts_and_sums",
    "tests/test_paillier.py::test_our_keys_built_from_lightphe_keys_decrypt_its_ciphertexts",
    "tests/test_personalisation.py::test_ditto_equals_from_scratch",
    "tests/test_personalisation.py::test_fine_tune_equals_from_scratch",
    "tests/test_personalisation.py::test_per_client_evaluation_works_on_a_cnn_federation",
    "tests/test_privacy.py::test_audit_does_not_refute_correct_laplace_mechanism",
    "tests/test_privacy.py::test_audit_flags_helper_laplace_told_the_wrong_sensitivity",
    "tests/test_privacy.py::test_audit_of_helper_gaussian_mechanism_with_delta",
    "tests/test_privacy.py::test_discrete_gaussian_matches_its_closed_form_pmf",
    "tests/test_privacy.py::test_discrete_laplace_matches_its_closed_form_pmf",
    "tests/test_privacy.py::test_expected_error_and_interval_match_simulation",
    "tests/test_privacy.py::test_exponential_mechanism_likelihood_ratio_attack",
    "tests/test_privacy.py::test_exponential_mechanism_samples_its_closed_form",
    "tests/test_privacy.py::test_gaussian_noise_has_calibrated_std",
    "tests/test_privacy.py::test_laplace_noise_has_scale_sensitivity_over_epsilon",
    "tests/test_privacy.py::test_private_quantile_samples_the_exponential_mechanism_on_rank_error",
    "tests/test_production_widgets.py::test_explorer_redraws_when_a_slider_moves",
    "tests/test_psi.py::test_b_dictionary_attack_on_its_view_finds_nothing_but_reads_unblinded_hashes",
    "tests/test_psi.py::test_moderate_sets_and_the_byte_count_of_every_message",
    "tests/test_psi.py::test_modp_group_is_the_rfc_3526_safe_prime_and_gmpy2_changes_nothing",
    "tests/test_psi.py::test_openmined_psi_gives_the_same_intersection",
    "tests/test_quiet.py::test_real_tensorflow_start_up_is_quiet_and_later_errors_still_show",
    "tests/test_reporting.py::test_privacy_statement_of_a_real_dp_ftrl_run",
    "tests/test_reproducibility.py::test_seeds_beyond_32_bits_work_with_tensorflow_loaded",
    "tests/test_robust_widgets.py::test_attack_experiment_backdoor_beats_fedavg_but_not_the_median",
    "tests/test_robust_widgets.py::test_robustness_explorer_redraws_and_reports_its_time",
    "tests/test_schedule.py::test_a_private_run_resumes_only_with_fresh_randomness_and_a_checkpoint_every_round",
    "tests/test_schedule.py::test_a_second_private_run_with_one_secret_source_is_refused",
    "tests/test_schedule.py::test_dp_fedavg_divides_by_the_public_constant_never_by_a_count_of_the_clients",
    "tests/test_secagg_protocol.py::test_masked_sum_equals_plain_sum_on_1000_random_trials_with_dropouts",
    "tests/test_secure_aggregation.py::test_bad_input_is_rejected_naming_the_argument",
    "tests/test_secure_aggregation.py::test_rule_plugs_into_run_fedavg",
    "tests/test_secure_aggregation.py::test_valid_calls_succeed",
    "tests/test_split_learning.py::test_epsilon_matches_the_closed_form_and_dp_accounting",
    "tests/test_tiers.py::test_every_listed_slow_test_exists",
    "tests/test_training.py::test_a_short_run_learns",
    "tests/test_training.py::test_fedsgd_round_is_one_gradient_step_on_the_pooled_data",
    "tests/test_training.py::test_history_timings_and_total_seconds",
    "tests/test_training.py::test_run_fedavg_is_client_update_then_fedavg_with_the_documented_seeds",
    "tests/test_training.py::test_run_fedavg_progress_bar_shows_rounds_and_accuracy",
    "tests/test_training.py::test_run_fedavg_rejects_bad_arguments",
    "tests/test_training.py::test_run_fedavg_same_seed_same_history",
    "tests/test_training.py::test_run_fedavg_starts_from_initial_weights_without_changing_them",
    "tests/test_training.py::test_run_fedavg_weights_clients_of_different_sizes_by_n_k",
    "tests/test_transfer.py::test_ftl_beats_chance_on_the_bureaus_non_overlap_customers",
    "tests/test_type_check.py::test_mypy_passes_on_fl_helpers",
    "tests/test_vertical.py::test_joint_features_beat_the_bank_alone",
    "tests/test_vertical_protocol.py::test_the_coordinator_reads_unmasked_gradients_but_not_masked_ones",
    "tests/test_vertical_protocol.py::test_what_the_coordinator_sees_does_not_depend_on_the_gradient",
    "tests/test_vertical_widgets.py::test_draw_has_two_panels",
    "tests/test_vertical_widgets.py::test_more_budget_leaks_more",
    "tests/test_vertical_widgets.py::test_slider_move_redraws_once",
    "tests/test_vertical_widgets.py::test_summary_is_reproducible_and_accounted",
    "tests/test_widgets.py::test_a_failed_redraw_shows_its_error_in_place_of_the_plot",
    "tests/test_widgets.py::test_a_redraw_replaces_text_and_plot_in_one_message",
    "tests/test_widgets.py::test_importing_the_base_imports_no_panel_and_the_panels_have_one_name",
    "tests/test_widgets.py::test_importing_the_widgets_has_no_side_effect",
    "tests/test_widgets.py::test_prefetcher_background_gives_way_while_the_foreground_computes",
    "tests/test_zh_edition.py::test_code_cells_outputs_and_metadata_are_the_english_ones",
    "tests/test_zh_edition.py::test_code_comment_translations_change_comments_only",
    "tests/test_zh_edition.py::test_every_markdown_cell_has_a_current_translation",
    "tests/test_zh_edition.py::test_numbers_and_links_are_the_english_ones",
    "tests/test_zh_edition.py::test_the_chinese_notebook_is_the_generated_one",
})

#: A module's own bad-input table (notebook 09's modules, DP-FTRL, the CLI's flags, ...): the
#: same kind of test as tests/test_bad_inputs.py, thousands of cheap cases, in the fuzz tier.
_BAD_INPUT_TABLE = re.compile(r"^test_(\w*_)?(bad_(input|flag|argv)|fuzz)\w*\[")

#: Test files that execute notebooks.
NOTEBOOK_TEST_FILES = frozenset({"tests/test_student_edition.py"})


#: Seconds of the longest test files (each file's tests summed, in a full run of the README's
#: command on the course's 2-core machine, 2026-12-08 at 6fface1, two workers, 1,085 s), so that
#: the command, which runs on pytest-xdist's workers with ``--dist loadfile`` (pyproject.toml),
#: hands the longest files out first and the short ones fill the gaps. A notebook (or solutions
#: notebook) costs its measured runtime in ``benchmarks/results/time_notebooks.json`` (the file
#: the runtimes in the titles and the README come from). Only the order of the files depends on
#: these numbers, never a result.
LONG_FILES = {
    "tests/browser/test_widgets_in_jupyterlab.py": 369,
    "tests/browser/test_website.py": 208,
    "tests/test_deploy.py": 132,
    "tests/test_audit.py": 68,
    "tests/test_student_edition.py": 45,
    "tests/test_privacy.py": 38,
    "tests/test_attacks.py": 37,
    "tests/test_engine.py": 35,
    "tests/test_cli.py": 33,
    "tests/test_accounting.py": 29,
    "tests/test_bad_inputs.py": 22,
}
_NOTEBOOK_TIMES = _ROOT / "benchmarks" / "results" / "time_notebooks.json"


def _file_costs() -> dict[str, float]:
    """Seconds per test file: :data:`LONG_FILES` and every measured notebook."""
    costs = dict(LONG_FILES)
    try:
        measured = json.loads(_NOTEBOOK_TIMES.read_text(encoding="utf-8"))["notebooks"]
        costs.update({f"notebooks/{name}": float(record["seconds"])
                      for name, record in measured.items()})
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no measurements: the files keep their collection order
    return costs


def pytest_collection_modifyitems(config, items):
    """Marks each collected test with its tier (see the module docstring), and puts the longest
    files first (:data:`LONG_FILES`; a stable sort, so each file keeps its own order)."""
    costs = _file_costs()
    items.sort(key=lambda item: -costs.get(item.nodeid.partition("::")[0], 0.0))
    for item in items:
        path, _, _ = item.nodeid.partition("::")
        if item.nodeid.split("[")[0] in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
        if path.endswith(".ipynb") or path in NOTEBOOK_TEST_FILES:
            item.add_marker(pytest.mark.notebooks)
        name = item.nodeid.partition("::")[2]
        if path == "tests/test_bad_inputs.py" or _BAD_INPUT_TABLE.search(name):
            item.add_marker(pytest.mark.fuzz)
