"""Tests of fl_helpers.quiet: TensorFlow's C++ start-up noise is filtered, nothing else is lost."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fl_helpers import quiet

ROOT = Path(__file__).resolve().parents[1]

NOISE = textwrap.dedent("""\
    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1795636847.768935    3652 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    I0000 00:00:1795636847.921961    3652 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions in performance-critical operations.
    To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
    I0000 00:00:1796219632.421259    7716 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results.
    E0000 00:00:1795636851.847831    3652 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
    """)  # noqa: E501


def test_known_startup_lines_are_dropped():
    kept, dropped = quiet.split_startup_noise(NOISE)
    assert kept == []
    assert dropped == NOISE.splitlines()


def test_other_lines_are_kept_with_their_continuations():
    real = ("E0000 00:00:1795636851.847831    3652 some_kernel.cc:12] Something really failed\n"
            "  with a second line\n"
            "Traceback (most recent call last): a Python message\n")
    kept, dropped = quiet.split_startup_noise(NOISE + real + NOISE)
    assert kept == real.splitlines()
    assert len(dropped) == 2 * len(NOISE.splitlines())


def test_split_rejects_bytes():
    with pytest.raises(TypeError, match="text must be a str"):
        quiet.split_startup_noise(b"bytes")


def _run(code: str, *, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    environment = {k: val for k, val in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=cwd, env=environment, timeout=300)


def test_importing_the_module_does_not_import_tensorflow():
    result = _run("import sys; from fl_helpers import quiet; print('tensorflow' in sys.modules)")
    assert result.stdout.strip() == "False"


def test_unknown_stderr_lines_of_the_import_are_passed_through(tmp_path):
    """A fake ``tensorflow`` writes noise and a real message to fd 2 while it is imported."""
    fake = tmp_path / "tensorflow"
    (fake / "config").mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "import os\nfrom tensorflow import config\n"
        f"os.write(2, {NOISE.encode()!r})\n"
        "os.write(2, b'E0000 00:00:1.0 1 loader.cc:1] a real problem\\n')\n")
    (fake / "config" / "__init__.py").write_text(
        "import os\ndef list_physical_devices():\n    os.write(2, b'device says hello\\n')\n"
        "    return []\n")
    code = ("import os, sys; from fl_helpers import quiet; quiet.import_tensorflow(); "
            "os.write(2, b'after the import\\n'); "
            "print(len(quiet.hidden_startup_messages()), os.environ['TF_CPP_MIN_LOG_LEVEL'])")
    result = _run(code, env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    assert result.stderr.splitlines() == ["E0000 00:00:1.0 1 loader.cc:1] a real problem",
                                          "device says hello", "after the import"]
    assert result.stdout.split() == [str(len(NOISE.splitlines())), "1"]


def test_a_user_setting_of_the_log_level_is_kept(tmp_path):
    fake = tmp_path / "tensorflow"
    (fake / "config").mkdir(parents=True)
    (fake / "__init__.py").write_text("from tensorflow import config\n")
    (fake / "config" / "__init__.py").write_text("def list_physical_devices():\n    return []\n")
    code = ("import os; from fl_helpers import quiet; quiet.import_tensorflow(); "
            "print(os.environ['TF_CPP_MIN_LOG_LEVEL'])")
    result = _run(code, env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
                             "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert result.stdout.strip() == "0"


def test_real_tensorflow_start_up_is_quiet_and_later_errors_still_show():
    baseline = _run("import tensorflow as tf; tf.config.list_physical_devices()")
    code = textwrap.dedent("""\
        import os, sys
        from fl_helpers import quiet
        tf = quiet.import_tensorflow()
        import keras
        keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])(tf.ones((1, 3)))
        os.write(2, b"fd 2 works after the import\\n")
        try:
            tf.reshape(tf.ones(3), (2,))
        except tf.errors.InvalidArgumentError:
            print("python error raised", file=sys.stderr)
        """)
    result = _run(code)
    _, noise_in_baseline = quiet.split_startup_noise(baseline.stderr)
    kept, noise_left = quiet.split_startup_noise(result.stderr)
    assert noise_left == [], result.stderr
    assert "fd 2 works after the import" in kept
    assert "python error raised" in kept
    # TensorFlow's own C++ warning for the failed op still reaches stderr (W level is not hidden).
    assert any("Input to reshape is a tensor with 3 values" in line for line in kept)
    if not noise_in_baseline:
        pytest.skip("this TensorFlow build printed no start-up noise to filter")


def test_a_failing_import_restores_fd_2_and_raises(tmp_path):
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text("import os\nos.write(2, b'half way\\n')\n"
                                      "raise ImportError('broken install')\n")
    code = ("import os\nfrom fl_helpers import quiet\ntry:\n    quiet.import_tensorflow()\n"
            "except ImportError as error:\n    print(error)\nos.write(2, b'still here\\n')\n")
    result = _run(code, env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    assert result.stdout.strip() == "broken install"
    assert result.stderr.splitlines() == ["half way", "still here"]
