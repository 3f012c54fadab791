"""Notebook 05's *Try it* panel: gradient inversion of one client's update as DP noise grows.

:func:`noisy_inversion` is the plain function (tests call it too): clip a stored client update to
``C``, add ``N(0, (z C)^2)`` to every coordinate (what an observer of that single update would see
under local DP), and invert its first dense layer with the least-squares analytic attack
(:func:`fl_helpers.attacks.invert_dense_least_squares`). :func:`inversion_explorer` wraps it in an
:class:`fl_helpers.widgets.Explorer` with a noise-multiplier and a clipping-norm slider.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from fl_helpers import _validation as v
from fl_helpers import attacks
from fl_helpers.widgets import Explorer


@dataclasses.dataclass(frozen=True)
class Inversion:
    """One noisy inversion.

    Attributes:
        reconstruction: ``(28, 28)`` image (clipped to [0, 1]).
        ssim: Its SSIM with the original.
        psnr: Its PSNR with the original, in dB.
        update_norm: The L2 norm of the update before clipping.
    """

    reconstruction: np.ndarray
    ssim: float
    psnr: float
    update_norm: float


def noisy_inversion(update: Sequence[np.ndarray], original: np.ndarray, *,
                    clipping_norm: float, noise_multiplier: float,
                    noise_seed: int = 0) -> Inversion:
    """Clip ``update`` to ``C``, add ``N(0, (zC)^2)`` noise, invert its first dense layer.

    The noise is drawn from ``np.random.default_rng(noise_seed)``: a reproducible *simulation* of
    what the attacker would see (the same seed at every setting, so only the settings change the
    picture), not a private release.

    Args:
        update: One client's update of a Dense stack, per layer (kernel of the first layer first).
        original: The client's image, ``(28, 28)``: used only to score the reconstruction.
        clipping_norm: ``C`` > 0.
        noise_multiplier: ``z`` >= 0.
        noise_seed: Seed of the simulated noise.

    Returns:
        An :class:`Inversion`.
    """
    noise_seed = v.check_int("noise_seed", noise_seed, minimum=0)
    if len(update) < 2:
        raise ValueError(f"update must hold at least a kernel and a bias, got {len(update)} "
                         "layers.")
    noisy = attacks.clip_and_noise(update, clipping_norm=clipping_norm,
                                   noise_multiplier=noise_multiplier,
                                   rng=np.random.default_rng(noise_seed))
    image = np.clip(attacks.invert_dense_least_squares(noisy[0], noisy[1]), 0, 1)
    image = image.reshape(attacks.IMAGE_SIDE, attacks.IMAGE_SIDE)
    norm = math.sqrt(sum(float(np.sum(np.square(u, dtype=np.float64))) for u in update))
    return Inversion(reconstruction=image, ssim=float(attacks.ssim(image, original)[0]),
                     psnr=float(attacks.psnr(image, original)[0]), update_norm=norm)


def inversion_summary_line(result: Inversion, *, clipping_norm: float,
                           noise_multiplier: float) -> str:
    """One line: the settings, whether the update was clipped, SSIM and PSNR."""
    clipped = "clipped" if result.update_norm > clipping_norm else "not clipped"
    return (f"z = {noise_multiplier:.4g}, C = {clipping_norm:.3g} (update norm "
            f"{result.update_norm:.3g}: {clipped}; noise std {noise_multiplier * clipping_norm:.3g}"
            f" per coordinate): SSIM {result.ssim:.3f}, PSNR {result.psnr:.1f} dB")


def inversion_explorer(update: Sequence[np.ndarray], original: np.ndarray, *,
                       noise_multiplier: float = 0.003, clipping_norm: float = 0.1,
                       noise_seed: int = 0) -> Explorer:
    """Sliders for ``z`` (1e-4 .. 1, log) and ``C`` (0.01 .. 10, log) that re-run the inversion.

    Every move calls :func:`noisy_inversion` on the stored update and redraws the original, the
    reconstruction and its SSIM on a figure of its own (no pyplot), in well under a second.

    Returns:
        An :class:`fl_helpers.widgets.Explorer` with controls ``noise_multiplier`` and
        ``clipping_norm``.
    """
    import ipywidgets as widgets

    noise_multiplier = v.check_in_range("noise_multiplier", noise_multiplier, 1e-4, 1)
    clipping_norm = v.check_in_range("clipping_norm", clipping_norm, 0.01, 10)
    original = np.asarray(original, dtype=np.float32).reshape(attacks.IMAGE_SIDE,
                                                             attacks.IMAGE_SIDE)
    def log_slider(value: float, exponents: tuple[int, int], label: str, fmt: str):
        return widgets.FloatLogSlider(value=value, base=10, min=exponents[0], max=exponents[1],
                                      step=0.25, description=label, readout_format=fmt,
                                      continuous_update=False,
                                      style={"description_width": "150px"},
                                      layout=widgets.Layout(width="460px"))

    z_slider = log_slider(noise_multiplier, (-4, 0), "noise multiplier z", ".4f")
    c_slider = log_slider(clipping_norm, (-2, 1), "clipping norm C", ".3f")
    output = widgets.Output()
    panel: Explorer

    def redraw(_change=None) -> None:
        start = time.perf_counter()
        z, c = float(z_slider.value), float(c_slider.value)
        result = noisy_inversion(update, original, clipping_norm=c, noise_multiplier=z,
                                 noise_seed=noise_seed)
        with panel.failures_shown():
            fig = Figure(figsize=(4.6, 2.4), dpi=90)
            axes = fig.subplots(1, 2)
            axes[0].imshow(original, cmap="gray", vmin=0, vmax=1)
            axes[0].set_title("the client's image")
            axes[1].imshow(result.reconstruction, cmap="gray", vmin=0, vmax=1)
            axes[1].set_title(f"reconstruction, SSIM {result.ssim:.2f}")
            for ax in axes:
                ax.set_axis_off()
            fig.tight_layout()
            panel.show(inversion_summary_line(result, clipping_norm=c, noise_multiplier=z), fig)
        panel.last_seconds = time.perf_counter() - start

    panel = Explorer([z_slider, c_slider, output],
                     controls={"noise_multiplier": z_slider, "clipping_norm": c_slider},
                     output=output)
    for control in (z_slider, c_slider):
        control.observe(redraw, names="value")
    redraw()
    return panel
