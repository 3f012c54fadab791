"""Numbers quoted in a notebook's markdown must agree with the stored outputs they come from.

Issue 13 found markdown that had drifted from the outputs next to it ("grows roughly like
sqrt(k)" next to x4.1, "about 0.8" next to 0.761, ...). Each row of :data:`NUMBERS` names one
number: a regex on the notebook's markdown that captures the number as written, and either a
regex on the stored text outputs of its code cells or a function of those outputs. The test
fails when the two disagree by more than half a unit in the last digit written in the markdown
(so "2.9 x 10^-4" agrees with an output of 2.86e-04, "4.53" with 4.533), or when a regex finds
nothing (the wording or the printout changed: update the row together with the text).

To add a number: append a ``Number(...)`` row. Markdown regexes match against the notebook's
markdown cells joined by blank lines; output regexes against the text outputs (stdout and
``text/plain``) of its code cells joined the same way. Each regex needs one named group
``value``; a markdown regex may add a group ``exponent`` for numbers written as
``m \\times 10^{e}``.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


@dataclasses.dataclass(frozen=True)
class Number:
    """One number written in markdown and where its value comes from."""

    notebook: str  # path under notebooks/
    what: str  # a short name (shown in the test id and the failure message)
    markdown: str  # regex with a group "value" (and optionally "exponent")
    output: str | None = None  # regex on the outputs with a group "value"
    # Or a function of the outputs' text giving the value (for derived numbers).
    derive: Callable[[str], float] | None = None


def _out(pattern: str) -> Callable[[str], float]:
    def get(text: str) -> float:
        match = re.search(pattern, text)
        if match is None:
            raise AssertionError(f"output regex {pattern!r} found nothing")
        return float(match.group("value").rstrip(".").replace(",", ""))
    return get


NB00 = "00_welcome_to_federated_learning.ipynb"
NB01 = "01_differential_privacy_noise.ipynb"
NB02 = "02_local_gradient_descent.ipynb"
NB03 = "03_federated_averaging.ipynb"
NB04 = "04_multi_client_experiment.ipynb"
NB04B = "04b_dp_fedavg_at_scale.ipynb"
NB04B_SOLUTIONS = "solutions/04b_dp_fedavg_at_scale_solutions.ipynb"
NB09 = "09_vertical_and_transfer_learning.ipynb"
NB10 = "10_heterogeneity_and_personalisation.ipynb"

NUMBERS: list[Number] = [
    # Issue 13: delta is not a failure probability.
    Number(NB01, "P[L > eps]", r"\\Pr\[L > \\varepsilon\] \\approx (?P<value>[\d.]+) \\times "
           r"10\^\{(?P<exponent>-?\d+)\}", r"P\[L > epsilon\]\s+= (?P<value>[\d.e+-]+)"),
    Number(NB01, "P[L > eps] / delta", r"(?P<value>\d+) times \$\\delta\$",
           r"\((?P<value>\d+) x delta\)"),
    Number(NB01, "delta by expectation", r"closed form\s+#?\s*\$(?P<value>[\d.]+) \\times "
           r"10\^\{(?P<exponent>-?\d+)\}\$", r"Balle-Wang delta\(sigma\)\s+= (?P<value>[\d.e+-]+)"),
    # Issue 13: the 3.5 sigma wording, from which dataset's answer.
    Number(NB01, "band distance in counts", r"The band is left about (?P<value>\d+) counts",
           r": (?P<value>[\d.]+) counts ="),
    Number(NB01, "sigmas from D", r"(?P<value>[\d.]+)σ from D's answer",
           r"= (?P<value>[\d.]+) sigma from D's answer"),
    Number(NB01, "sigmas from D'", r"(?P<value>[\d.]+)σ from\s+#?\s*its neighbour's",
           r"(?P<value>[\d.]+) sigma from its neighbour's"),
    # Issue 13: "grows roughly like sqrt(k)".
    Number(NB01, "RDP at k = 100", r"RDP goes from (?P<value>[\d.]+) to",
           r"k =  100: basic\s+[\d.]+, RDP\s+(?P<value>[\d.]+)"),
    Number(NB01, "RDP at k = 1000", r"RDP goes from [\d.]+ to (?P<value>[\d.]+)",
           r"k = 1000: basic\s+[\d.]+, RDP\s+(?P<value>[\d.]+)"),
    Number(NB01, "RDP at k = 1000 (first mention)", r"where RDP gives (?P<value>[\d.]+)",
           r"k = 1000: basic\s+[\d.]+, RDP\s+(?P<value>[\d.]+)"),
    Number(NB01, "growth from 100 to 1000", r"×(?P<value>[\d.]+) where",
           r"RDP grows x(?P<value>[\d.]+)"),
    # Issue 13: the DP-SGD example and the TF Privacy tutorial.
    Number(NB01, "DP-SGD epsilon", r"Why (?P<value>[\d.]+) and not",
           r"epsilon after 14062 steps: (?P<value>[\d.]+)"),
    Number(NB01, "tutorial epsilon reproduced", r"we get its (?P<value>[\d.]+) back",
           r"Mironov conversion: epsilon = (?P<value>[\d.]+)"),
    Number(NB01, "conversion gain", r"worth\s+#?\s*(?P<value>[\d.]+) of",
           derive=lambda text: _out(r"Mironov conversion: epsilon = (?P<value>[\d.]+)")(text)
           - _out(r"CKS conversion:\s+epsilon = (?P<value>[\d.]+)")(text)),
    Number(NB01, "PLD gain", r"the PLD accountant another (?P<value>[\d.]+)",
           derive=lambda text: _out(r"CKS conversion:\s+epsilon = (?P<value>[\d.]+)")(text)
           - _out(r"PLD accountant:\s+epsilon = (?P<value>[\d.]+)")(text)),
    # Issue 13: the clipping figure.
    Number(NB01, "number of sevens", r"Every one of the (?P<value>\d+) sevens",
           r"(?P<value>\d+) sevens, norms"),
    Number(NB01, "mean norm of the sevens", r"\(mean (?P<value>[\d.]+)\), so all",
           r"\(mean (?P<value>[\d.]+)\)"),
    Number(NB01, "share clipped", r"so all are clipped",
           derive=lambda text: 1.0 if _out(r"share clipped at C = 5: (?P<value>\d+)%")(
               text) == 100 else 0.0),
    Number(NB01, "mean clipping factor", r"(?P<value>[\d.]+) on average",
           r"mean scaling factor (?P<value>[\d.]+)"),
    Number(NB01, "clipped mean fainter by", r"about (?P<value>\d+)% fainter",
           derive=lambda text: 100 * (1 - _out(r"mean scaling factor (?P<value>[\d.]+)")(text))),
    # Issue 12: the floating-point attack finds nothing on the helper's mechanism.
    Number(NB01, "helper outputs ruled out", r"so the replay\s+#?\s*finds (?P<value>nothing)",
           r"privacy.laplace_mechanism: (?P<value>\d+) of"),
    # Issue 27: the rest of the DP toolbox (randomized response, group privacy, the exponential
    # mechanism, a private median).
    Number(NB01, "local vs central noise", r"local estimate is\s+#?\s*(?P<value>\d+) times",
           r"central Laplace count [\d.]+ \(x(?P<value>\d+)\)"),
    Number(NB01, "DP-SGD epsilon in group privacy",
           r"\(\$\\varepsilon = (?P<value>[\d.]+)\$\s+#?\s*for one \*example\*\)",
           r"epsilon after 14062 steps: (?P<value>[\d.]+)"),
    Number(NB01, "group delta, k = 3", r"is already \$(?P<value>[\d.]+) \\times "
           r"10\^\{(?P<exponent>-?\d+)\}\$", r"k =  3 examples: epsilon = +[\d.]+, "
           r"delta = (?P<value>[\d.e+-]+)"),
    Number(NB01, "group delta, k = 10", r"with ten, \$\\delta\$ reaches (?P<value>1) and",
           r"k = 10 examples: epsilon = +[\d.]+, delta = (?P<value>[\d.e+-]+)"),
    Number(NB01, "count of sevens", r"Sevens \((?P<value>\d+)\) beat",
           r"counts: \[(?:\d+, ){7}(?P<value>\d+)"),
    Number(NB01, "count of ones", r"beat ones \((?P<value>\d+)\)",
           r"counts: \[\d+, (?P<value>\d+)"),
    Number(NB01, "P[choose 7]", r"picks 7 with probability (?P<value>[\d.]+)",
           r"P\[digit\] at epsilon = 0.5: \[(?:[\d.]+, ){7}(?P<value>[\d.]+)"),
    Number(NB01, "P[choose 1]", r"and 1 with (?P<value>[\d.]+), and",
           r"P\[digit\] at epsilon = 0.5: \[[\d.]+, (?P<value>[\d.]+)"),
    Number(NB01, "worst log ratio", r"\(the worst one,\s+#?\s*(?P<value>[\d.]+), is",
           r"worst log ratio with and without Alice: (?P<value>[\d.]+)"),
    Number(NB01, "private median, low end", r"lie in \[(?P<value>[\d.]+), [\d.]+\] around",
           r"90% of them in \[(?P<value>[\d.]+),"),
    Number(NB01, "private median, high end", r"lie in \[[\d.]+, (?P<value>[\d.]+)\] around",
           r"90% of them in \[[\d.]+, (?P<value>[\d.]+)\]"),
    Number(NB01, "exact median norm", r"around the exact\s+#?\s*(?P<value>[\d.]+): with",
           r"exact median norm (?P<value>[\d.]+)"),
    # Notebook 02 (issue 13: the memory argument counts weights and gradients too).
    Number(NB02, "batch where activations catch up", r"up to \$B \\approx (?P<value>\d+)\$",
           r"activations equal weights \+ gradients at B = (?P<value>\d+)"),
    Number(NB02, "loss = model(batch) runaway", r"fell to about \$-(?P<value>[\d.]+) \\times "
           r"10\^\{(?P<exponent>\d+)\}\$",
           r"softmax_regression mean 'loss' after 30 steps\s+-(?P<value>[\d.e+]+)"),
    Number(NB02, "share of 0s", r"and (?P<value>[\d.]+)% of the test images are 0s",
           r"share of 0s among the test images: (?P<value>[\d.]+)%"),
    Number(NB02, "client 0 alone", r"2NN reaches about (?P<value>\d+)% accuracy",
           r"client 0 alone\s+test accuracy (?P<value>[\d.]+)%"),
    Number(NB02, "all the data", r"the same model reaches about (?P<value>\d+)% after",
           r"all 60,000 examples\s+test accuracy (?P<value>[\d.]+)%"),
    Number("06_secure_aggregation.ipynb", "distributed over central exact noise",
           r"and (?P<value>[\d.]+) times that of the course's central exact",
           r"/ central exact: (?P<value>[\d.]+)"),
    # Notebook 04 (issue 24: the figures of exact noise).
    Number(NB04, "cost of epsilon 0.5",
           r"\$\\varepsilon = 0\.5\$\s+#?\s*about (?P<value>\d+) points",
           derive=lambda text: _out(r"\n\s+inf\s+[\d.]+\s+(?P<value>[\d.]+)%")(text)
           - _out(r"\n\s+0\.5\s+[\d.]+\s+(?P<value>[\d.]+)%")(text)),
    # Issue 27: notebook 04 split in two; every number its markdown quotes is tied.
    Number(NB04, "mean client size", r"each a phone with about\s+#?\s*(?P<value>\d+) handwritten",
           derive=lambda text: _out(r"clients, (?P<value>\d+) images;")(text)
           / _out(r"(?P<value>\d+) clients, \d+ images;")(text)),
    Number(NB04, "parameters", r"softmax regression \((?P<value>[\d,]+) parameters\)",
           r"updates of shape \(\d+, (?P<value>\d+)\)"),
    Number(NB04, "sd of clients per round", r"\\approx (?P<value>[\d.]+)\$\. Why not",
           r"expected \d+ and (?P<value>[\d.]+)\)"),
    Number(NB04, "epsilon 2 costs about one point (run)",
           r"Privacy costs about\s+#?\s*one percentage point",
           derive=lambda text: 1.0 if 0.5 <= _out(r"non-private (?P<value>[\d.]+)%\n")(text)
           - _out(r"DP-FedAvg \(epsilon = 2\) (?P<value>[\d.]+)%")(text) <= 1.5 else 0.0),
    Number(NB04, "epsilon 2 costs about one point (summary)",
           r"\$\\varepsilon = 2\$ costs about one point",
           derive=lambda text: 1.0 if 0.5 <= _out(r"\n\s+inf\s+[\d.]+\s+(?P<value>[\d.]+)%")(text)
           - _out(r"\n\s+2\s+[\d.]+\s+(?P<value>[\d.]+)%")(text) <= 1.5 else 0.0),
    Number(NB04, "group delta, k = 3",
           r"to \$(?P<value>[\d.]+) \\times 10\^\{(?P<exponent>-?\d+)\}\$, and a median",
           r"a writer of  3 images under example-level \(2, 1e-05\): \(6, "
           r"(?P<value>[\d.e+-]+)\)"),
    Number(NB04, "group delta growth, k = 3", r"multiply \$\\delta\$ by (?P<value>\d+),",
           derive=lambda text: _out(r"a writer of  3 images under example-level \(2, 1e-05\): "
                                    r"\(6, (?P<value>[\d.e+-]+)\)")(text) / 1e-5),
    Number(NB04, "median client in group privacy",
           r"a median client's\s+#?\s*(?P<value>\d+) images",
           r"a writer of (?P<value>\d+) images under example-level \(2, 1e-05\): \(\d+, 1\)"),
    # Notebook 04b (issue 27: the second part of 04).
    Number(NB04B, "headline epsilon at delta 1e-7",
           r"the same model is\s+\$\((?P<value>[\d.]+), 10\^\{-7\}\)\$-DP",
           r"delta N = [\d.]+\): epsilon = (?P<value>[\d.]+)"),
    Number(NB04B, "headline delta below 1/N",
           r"only (?P<value>[\d.]+) times below\s+\$1/N\$",
           derive=lambda text: 1 / (float(re.search(r"at delta = ([\de.-]+) \(", text).group(1))
                                    * float(re.search(r"N = ([\d,]+) clients", text)
                                            .group(1).replace(",", "")))),
    Number(NB04B, "headline below its twin (body)",
           r"The private model is (?P<value>[\d.]+) points below",
           derive=lambda text: _out(r"non-private twin (?P<value>[\d.]+)%")(text)
           - _out(r"test accuracy (?P<value>[\d.]+)% \(mean of 3 runs")(text)),
    Number(NB04B, "headline below its twin",
           r"\$\\varepsilon = 2\$,\s+(?P<value>[\d.]+)\s+points\s+#?\s*below",
           derive=lambda text: _out(r"non-private twin (?P<value>[\d.]+)%")(text)
           - _out(r"test accuracy (?P<value>[\d.]+)% \(mean of 3 runs")(text)),
    Number(NB04B, "headline accuracy", r"reaches about (?P<value>\d+)% at",
           r"test accuracy (?P<value>[\d.]+)% \(mean of 3 runs"),
    Number(NB04B, "delta N", r"\(\$\\delta N = (?P<value>[\d.]+)\$\)",
           derive=lambda text: _out(r"N = (?P<value>[\d,]+) clients, q")(text)
           * _out(r"at delta = (?P<value>[\d.e+-]+) \(")(text)),
    Number(NB04B, "clients per round", r"\$q = 0\.05\$ \((?P<value>[\d,]+) clients per round\)",
           derive=lambda text: _out(r"N = (?P<value>[\d,]+) clients, q")(text)
           * _out(r"clients, q = (?P<value>[\d.]+),")(text)),
    Number(NB04B, "perceptron parameters", r"perceptron \(`models\.make_mlp`\): (?P<value>[\d,]+) "
           r"parameters", r"perceptron (?P<value>[\d,]+),"),
    Number(NB04B, "2NN parameters", r"instead of the 2NN's\s+#?\s*(?P<value>[\d,]+)\.",
           r"2NN 784-200-200-10 (?P<value>[\d,]+)"),
    Number(NB04B, "float-era z", r"PLD accountant\s+#?\s*\(\$z = (?P<value>[\d.]+)\$\)",
           r"accountant, z = (?P<value>[\d.]+)\)"),
    Number(NB04B, "server Adam", r"costs about (?P<value>[\d.]+) points;",
           r"server Adam \(DP-FedAdam\), lr 0\.01\s+[\d.]+%\s+-(?P<value>[\d.]+)"),
    Number(NB04B, "public proxy images", r"2,000 become the \*\*public proxy\*\*",
           derive=lambda text: 1.0 if _out(r"public proxy: (?P<value>[\d,]+) test images")(text)
           == 2000 else 0.0),
    Number(NB04B, "proxy clients", r"split into (?P<value>\d+)\s+#?\s*proxy clients",
           r"test images in (?P<value>\d+) proxy clients"),
    Number(NB04B, "held-out test images",
           r"the other\s+#?\s*(?P<value>[\d,]+) are the \*\*test set",
           r"test set: (?P<value>[\d,]+) other test images"),
    Number(NB04B, "notebook 04's z", r"had \$z = (?P<value>[\d.]+)\$, \$C = 0\.5\$",
           r"\n\s+2\s+[\d.]+\s+[\d.]+\s+(?P<value>[\d.]+)\s+[\d.]+%"),
    Number(NB04B_SOLUTIONS, "noise ratio", r"\*\*About (?P<value>\d+) times smaller",
           r"ratio (?P<value>[\d.]+)"),
    Number(NB04B_SOLUTIONS, "noise ratio, exact", r"\\approx (?P<value>[\d.]+)\$: thirty",
           r"ratio (?P<value>[\d.]+)"),
    Number(NB04B_SOLUTIONS, "z of 04", r"Notebook 04's run: \$z = (?P<value>[\d.]+)\$",
           r"notebook 04: z = (?P<value>[\d.]+)"),
    Number(NB04B_SOLUTIONS, "z at 60,000",
           r"The\s+#?\s*60,000-client run: \$z = (?P<value>[\d.]+)\$",
           r"60,000 clients: z = (?P<value>[\d.]+)"),
    Number(NB04B_SOLUTIONS, "noise on the average, 04", r"so \$(?P<value>0\.00816)\$",
           r"notebook 04: z = [\d.]+, noise std on the average (?P<value>[\d.]+)"),
    Number(NB04B_SOLUTIONS, "noise on the average, 60,000", r"so \$(?P<value>0\.000634)\$",
           r"qN = [\d,]+, noise std on the average (?P<value>[\d.]+)"),
    Number(NB04B_SOLUTIONS, "z takes back", r"takes back a factor of about (?P<value>[\d.]+)\.",
           derive=lambda text: _out(r"60,000 clients: z = (?P<value>[\d.]+)")(text)
           / _out(r"notebook 04: z = (?P<value>[\d.]+)")(text)),
    # Notebook 00 (issue 27): the data and the three splits.
    Number(NB00, "training images", r"MNIST has (?P<value>[\d,]+) training and",
           r"x_train \((?P<value>\d+), 28, 28\)"),
    Number(NB00, "test images", r"training and (?P<value>[\d,]+) test images",
           r"x_test  \((?P<value>\d+), 28, 28\)"),
    Number(NB00, "clients", r"three cases, with \$N = (?P<value>\d+)\$ clients",
           r"IID\s+clients=(?P<value>\d+)"),
    Number(NB00, "IID examples per client", r"then deal (?P<value>\d+) examples to each client",
           r"IID\s+clients=\d+  examples per client (?P<value>\d+)\.\."),
    Number(NB00, "examples per shard", r"hold two colours, of (?P<value>\d+) examples each",
           derive=lambda text: _out(r"shards\s+clients=\d+  examples per client (?P<value>\d+)"
                                    r"\.\.")(text) / 2),
    Number(NB00, "fewest examples of a digit", r"every digit has between (?P<value>[\d,]+) and",
           r"training examples per digit (?P<value>[\d,]+)\.\."),
    Number(NB00, "most examples of a digit", r"every digit has between [\d,]+ and\s+"
           r"#?\s*(?P<value>[\d,]+) examples",
           r"training examples per digit [\d,]+\.\.(?P<value>[\d,]+)"),
    Number(NB00, "IID largest digit's share", r"\(IID gives about\s+#?\s*(?P<value>[\d.]+), a",
           r"IID\s+clients=.*largest digit's share (?P<value>[\d.]+)"),
    # Notebook 01 (issue 27): where the sqrt(k) regime ends, and the public count of sevens.
    Number(NB01, "k eps0^2 at k = 100", r"\$k\\varepsilon_0\^2\$ is (?P<value>\d+) at \$k = 100\$",
           r"k \* eps0\^2 = (?P<value>\d+) at k = 100"),
    Number(NB01, "k eps0^2 at k = 1000", r"and (?P<value>\d+) at \$k = 1\{,\}000\$",
           r"and (?P<value>\d+) at\s+k = 1000"),
    Number(NB01, "ln(1/delta)", r"against \$\\ln\(1/\\delta\) = (?P<value>[\d.]+)\$",
           r"against ln\(1/delta\) = (?P<value>[\d.]+)"),
    Number(NB01, "public number of sevens", r"the number of sevens, (?P<value>\d+), is public",
           r"(?P<value>\d+) sevens, norms"),
    # Notebook 02 (issue 27): how small delta is against 1/n for client 0.
    Number(NB02, "client 0's examples", r"We train the 2NN on the client's (?P<value>\d+) examples",
           r"\(of the (?P<value>\d+) the party holds\)"),
    Number(NB02, "n in the delta paragraph", r"With only \$n = (?P<value>\d+)\$ examples",
           r"\(of the (?P<value>\d+) the party holds\)"),
    Number(NB02, "1/n", r"\$1/n \\approx (?P<value>[\d.]+) \\times 10\^\{(?P<exponent>-?\d+)\}\$",
           r"\(1/n = (?P<value>[\d.e+-]+),"),
    Number(NB02, "1/n over delta", r"10⁻⁴ is only (?P<value>\d+) times smaller",
           derive=lambda text: 1e4 / _out(r"\(of the (?P<value>\d+) the party holds\)")(
               text)),
    Number(NB02, "n delta", r"\(\$n\\delta \\approx (?P<value>[\d.]+)\$\)",
           r"n delta = (?P<value>[\d.]+)\):"),
    Number(NB02, "2NN parameters", r"all (?P<value>[\d,]+) gradient coordinates",
           r"2NN\s+P = (?P<value>[\d,]+):"),
    Number(NB01, "D's answer", r"σ from D's answer \((?P<value>\d+)\)",
           r"sevens among all 1000 records:\s+(?P<value>\d+)"),
    Number(NB01, "its neighbour's answer", r"its neighbour's \((?P<value>\d+)\)",
           r"sevens without Alice's record:\s+(?P<value>\d+)"),
    Number(NB01, "classic sigma below 1 adds", r"than needed \((?P<value>\d+)% more",
           derive=lambda text: 100 * (_out(r"\n\s+0\.1\s+(?P<value>[\d.]+)")(text)
                                      / _out(r"\n\s+0\.1\s+[\d.]+\s+(?P<value>[\d.]+)")(text) - 1)),
    Number(NB01, "classic sigma at epsilon 10", r"it gives \$\\sigma = (?P<value>[\d.]+)\$",
           r"\n\s+10\.0\s+(?P<value>[\d.]+)"),
    Number(NB01, "its true delta", r"whose true \$\\delta\$ is \$(?P<value>[\d.]+) \\times "
           r"10\^\{(?P<exponent>-?\d+)\}\$",
           r"\n\s+10\.0\s+[\d.]+\s+[\d.]+\s+(?P<value>[\d.e+-]+)"),
    Number(NB01, "classic delta over target at epsilon 20", r"it is (?P<value>\d+) times too large",
           derive=lambda text: _out(r"\n\s+20\.0\s+[\d.]+\s+[\d.]+\s+(?P<value>[\d.e+-]+)")(text)
           / 1e-5),
    Number(NB01, "DP-SGD steps", r"60 epochs = (?P<value>[\d,]+) steps",
           r"epsilon after (?P<value>\d+) steps"),
    Number(NB01, "sevens clipped", r"Each of the (?P<value>\d+) images is clipped",
           r"(?P<value>\d+) sevens, norms"),
    # Notebook 03 (issue 27): the splits, one round, the costs, federated evaluation on held-out
    # shares, the q = 0.01 figure and the paper's numbers.
    Number(NB03, "clients", r"split over \$N = (?P<value>\d+)\$ clients",
           r"IID\s+N = (?P<value>\d+) clients"),
    Number(NB03, "IID examples each", r"IID \((?P<value>\d+) random examples each\)",
           r"IID\s+N = \d+ clients, (?P<value>\d+)\.\."),
    Number(NB03, "smallest sampled client", r"on the (?P<value>[\d,]+)-example client above",
           derive=lambda text: min(int(n) for n in re.search(
               r"their sizes n_k: \[([\d, ]+)\]", text).group(1).split(","))),
    Number(NB03, "largest sampled client", r"one on the\s+#?\s*(?P<value>[\d,]+)-example client",
           derive=lambda text: max(int(n) for n in re.search(
               r"their sizes n_k: \[([\d, ]+)\]", text).group(1).split(","))),
    Number(NB03, "held out per client", r"a random (?P<value>\d+) of\s+#?\s*its 600 examples",
           r"every client: \d+ examples to train on, (?P<value>\d+) held out"),
    Number(NB03, "trained on per client", r"The runs train on the other (?P<value>\d+),",
           r"every client: (?P<value>\d+) examples to train on"),
    Number(NB03, "local steps with B = 10", r"\$u_k = 500 / 10 = (?P<value>\d+)\$ local steps",
           derive=lambda text: _out(r"every client: (?P<value>\d+) examples to train on")(text)
           / 10),
    Number(NB03, "local steps in the bullet", r"FedAvg is far ahead: (?P<value>\d+) local",
           derive=lambda text: _out(r"every client: (?P<value>\d+) examples to train on")(text)
           / 10),
    Number(NB03, "FedSGD's pooled examples", r"one gradient step on (?P<value>[\d,]+)\s",
           derive=lambda text: 10 * _out(r"every client: (?P<value>\d+) examples to train on")(
               text)),
    Number(NB03, "FedAvg IID after 12 rounds", r"it reaches about (?P<value>\d+)% within",
           derive=lambda text: 100 * _out(r"IID\s+FedAvg \(E=1, B=10\)\s+final test accuracy "
                                          r"(?P<value>[\d.]+)")(text)),
    Number(NB03, "held-out IID median", r"held-out median (?P<value>[\d.]+), worst",
           r"IID\s+per-client accuracy on its held-out share\s+median (?P<value>[\d.]+)"),
    Number(NB03, "held-out IID worst", r"held-out median [\d.]+, worst\s+#?\s*(?P<value>[\d.]+)\)",
           r"IID\s+per-client accuracy on its held-out share.*worst (?P<value>[\d.]+)"),
    Number(NB03, "held-out non-IID median", r"spread is wide \(median (?P<value>[\d.]+),",
           r"non-IID\s+per-client accuracy on its held-out share\s+median (?P<value>[\d.]+)"),
    Number(NB03, "held-out non-IID 10th percentile",
           r"spread is wide \(median [\d.]+, 10th percentile (?P<value>[\d.]+),",
           r"non-IID\s+per-client accuracy on its held-out share.*10th percentile "
           r"(?P<value>[\d.]+)"),
    Number(NB03, "held-out non-IID worst", r"10th percentile [\d.]+,\s+#?\s*worst "
           r"(?P<value>[\d.]+)\)",
           r"non-IID\s+per-client accuracy on its held-out share.*worst (?P<value>[\d.]+)"),
    Number(NB03, "training-share IID median", r"\(IID medians (?P<value>[\d.]+) and",
           r"IID\s+per-client accuracy on its training share\s+median (?P<value>[\d.]+)"),
    Number(NB03, "held-out IID median again", r"\(IID medians [\d.]+ and\s+#?\s*"
           r"(?P<value>[\d.]+)\)",
           r"IID\s+per-client accuracy on its held-out share\s+median (?P<value>[\d.]+)"),
    Number(NB03, "bytes of a 12-round run", r"run above moved (?P<value>\d+) MB",
           derive=lambda text: 12 * _out(r"2NN: P = [\d, ]+ parameters, q = 0\.1 .*?= +"
                                         r"(?P<value>[\d.]+) MB")(text)),
    Number(NB03, "CNN over 2NN bytes", r"the CNN costs (?P<value>\d+) times more per round",
           derive=lambda text: _out(r"CNN: P = [\d, ]+ parameters, q = 0\.1 .*?= +"
                                    r"(?P<value>[\d.]+) MB")(text)
           / _out(r"2NN: P = [\d, ]+ parameters, q = 0\.1 .*?= +(?P<value>[\d.]+) MB")(text)),
    Number(NB03, "q = 0.01 on IID", r"\((?P<value>[\d.]+) after 12 rounds against",
           r"IID\s+final test accuracy: q = 0\.1 [\d.]+, q = 0\.01 (?P<value>[\d.]+)"),
    Number(NB03, "q = 0.1 on IID", r"after 12 rounds against (?P<value>[\d.]+) with",
           r"IID\s+final test accuracy: q = 0\.1 (?P<value>[\d.]+),"),
    Number(NB03, "q = 0.01 on non-IID", r"two-digit clients it fails \((?P<value>[\d.]+)\)",
           r"non-IID\s+final test accuracy: q = 0\.1 [\d.]+, q = 0\.01 (?P<value>[\d.]+)"),
    Number(NB03, "paper 2NN IID rounds", r"\*\*(?P<value>\d+) rounds on IID clients and \d+ on "
           r"pathological", r"IID \(paper (?P<value>\d+) rounds\)"),
    Number(NB03, "paper 2NN non-IID rounds", r"rounds on IID clients and (?P<value>\d+) on "
           r"pathological", r"non-IID \(paper (?P<value>\d+) rounds\)"),
    Number(NB03, "CNN parameters", r"convolutions, (?P<value>[\d,]+) parameters\)",
           r"CNN: P = (?P<value>[\d,]+) parameters"),
    Number(NB03, "paper CNN IID rounds", r"99% in \*\*(?P<value>\d+) rounds on IID",
           r"CNN, IID, .*\(paper: (?P<value>\d+) rounds\)"),
    Number(NB03, "paper CNN non-IID rounds", r"rounds on IID clients and (?P<value>\d+) on\s+"
           r"#?\s*non-IID clients\*\*", r"CNN, non-IID, .*\(paper: (?P<value>\d+) rounds\)"),
    Number(NB03, "summary: 2NN round", r"bytes: (?P<value>[\d.]+) MB for the 2NN",
           r"2NN: P = [\d, ]+ parameters, q = 0\.1 .*?= +(?P<value>[\d.]+) MB"),
    Number(NB03, "summary: CNN round", r"with \$m = 10\$, (?P<value>\d+) MB",
           r"CNN: P = [\d, ]+ parameters, q = 0\.1 .*?= +(?P<value>[\d.]+) MB"),
    # Notebooks 05-08 (issue 27): the numbers their markdown quotes.
    Number("05_attacks_and_defences.ipynb",
           "clipping alone: SSIM", r"gives the image back with\s+>?\s*SSIM (?P<value>\d), "
           r"exactly", r"SSIM of the analytic attack on it: (?P<value>[\d.]+)"),
    Number("05_attacks_and_defences.ipynb",
           "stopping noise: epsilon in the hundreds",
           r"An \$\\varepsilon\$ in\s+the hundreds certifies",
           derive=lambda text: 1.0 if 100 <= _out(
               r"this one update, released once: (?P<value>[\d,]+)")(text) < 1000 else 0.0),
    Number("05_attacks_and_defences.ipynb",
           "released update at z = 1",
           r"the \$z = 1\$ of a useful budget (?P<value>nothing) is left",
           r"z = 1.0: clients whose image comes out with SSIM > 0.9: (?P<value>\d+) of 10"),
    Number("05_attacks_and_defences.ipynb",
           "no-DP LiRA above the epsilon = 1 curve",
           r"lies above the bound at (?P<value>\d+) of the \d+ FPR points",
           r"epsilon = 1 trade-off curve beyond chance at (?P<value>\d+) of"),
    Number("05_attacks_and_defences.ipynb",
           "FPR points tested", r"lies above the bound at \d+ of the (?P<value>\d+) FPR",
           r"epsilon = 1 trade-off curve beyond chance at \d+ of (?P<value>\d+) FPR"),
    Number("05_attacks_and_defences.ipynb",
           "no-DP LiRA above the epsilon = 2 curve",
           r"and at \$\\varepsilon = 2\$ at (?P<value>\d+):",
           r"epsilon = 2 trade-off curve beyond chance at (?P<value>\d+) of"),
    Number("05_attacks_and_defences.ipynb",
           "no-DP LiRA within the epsilon = 8 curve",
           r"Against \$\\varepsilon = 8\$ the same attack proves\s+(?P<value>nothing)",
           r"epsilon = 8 trade-off curve beyond chance at (?P<value>\d+) of"),
    Number("05_attacks_and_defences.ipynb",
           "both broken rules caught", r"both broken rules are\s+caught",
           derive=lambda text: 1.0 if text.count(": CAUGHT") == 2 and re.search(
               r"DPFedAvg \(ours\)\s+epsilon_LB = [\d.]+ \(FPR [\d.]+, FNR [\d.]+\): "
               r"consistent", text) else 0.0),
    # Issue 27: membership inference at matched accuracy (the no-DP models stopped early).
    Number("05_attacks_and_defences.ipynb", "matched: no-DP accuracy after one round",
           r"accurate than the \$\\varepsilon = 8\$\s+models \((?P<value>[\d.]+) against",
           r"no DP, after 1 round: test accuracy (?P<value>[\d.]+)"),
    Number("05_attacks_and_defences.ipynb", "matched: DP accuracy at epsilon = 8",
           r"models \([\d.]+ against (?P<value>[\d.]+)\), and they leak",
           r"DP, epsilon = 8: test accuracy (?P<value>[\d.]+)"),
    Number("05_attacks_and_defences.ipynb", "matched: no-DP client LiRA AUC",
           r"reaches an AUC of\s+(?P<value>[\d.]+) against",
           r"no DP, after 1 round: test accuracy [\d.]+\n.*\n\s+client_lira\s+AUC "
           r"(?P<value>[\d.]+)"),
    Number("05_attacks_and_defences.ipynb", "matched: DP client LiRA AUC",
           r"reaches an AUC of\s+[\d.]+ against (?P<value>[\d.]+),",
           r"DP, epsilon = 8: test accuracy [\d.]+\n.*\n\s+client_lira\s+AUC (?P<value>[\d.]+)"),
    Number("05_attacks_and_defences.ipynb", "matched: AUC gap in standard errors",
           r"(?P<value>[\d.]+) standard errors apart",
           r"= (?P<value>[\d.]+) standard errors of the difference"),
    Number("05_attacks_and_defences.ipynb", "matched: no-DP clients named at 1% FPR",
           r"names (?P<value>\d+) % of the member clients",
           derive=lambda text: 100 * _out(
               r"no DP, after 1 round: test accuracy [\d.]+\n.*\n\s+client_lira .*"
               r"TPR at 1% FPR (?P<value>[\d.]+)")(text)),
    Number("05_attacks_and_defences.ipynb", "matched: DP clients named at 1% FPR",
           r"at 1 % FPR against (?P<value>\d+) %\.",
           derive=lambda text: 100 * _out(
               r"DP, epsilon = 8: test accuracy [\d.]+\n.*\n\s+client_lira .*"
               r"TPR at 1% FPR (?P<value>[\d.]+)")(text)),
    Number("05_attacks_and_defences.ipynb", "matched: no-DP example LiRA AUC",
           r"smaller but clear \(AUC (?P<value>[\d.]+) against",
           r"no DP, after 1 round: test accuracy [\d.]+\n\s+example_lira\s+AUC "
           r"(?P<value>[\d.]+)"),
    Number("05_attacks_and_defences.ipynb", "matched: DP example LiRA AUC",
           r"smaller but clear \(AUC [\d.]+ against\s+(?P<value>[\d.]+)\)",
           r"DP, epsilon = 8: test accuracy [\d.]+\n\s+example_lira\s+AUC (?P<value>[\d.]+)"),
    Number("05_attacks_and_defences.ipynb", "matched: accuracy at epsilon = 2",
           r"the DP models are at chance \((?P<value>[\d.]+) and",
           r"\n\s+2\s+4\.06\s+(?P<value>[\d.]+) \|"),
    Number("05_attacks_and_defences.ipynb", "matched: accuracy at epsilon = 1",
           r"the DP models are at chance \([\d.]+ and\s+(?P<value>[\d.]+)\)",
           r"\n\s+1\s+7\.30\s+(?P<value>[\d.]+) \|"),
    Number("06_secure_aggregation.ipynb",
           "local over central noise", r"About (?P<value>\d+) times the noise, of which",
           r"z_local / z = \d+ x [\d.]+ = (?P<value>\d+)"),
    Number("06_secure_aggregation.ipynb",
           "sqrt(d) for softmax regression", r"\\sqrt\{d\} \\approx (?P<value>\d+)",
           r"parameters, sqrt\(d\) = (?P<value>[\d.]+)"),
    Number("06_secure_aggregation.ipynb",
           "distributed over central (PLD) noise",
           r"asks for about (?P<value>[\d.]+) times the noise of the central run",
           r"ratio distributed / central \(PLD\): (?P<value>[\d.]+)"),
    Number("06_secure_aggregation.ipynb",
           "summary: distributed over central noise",
           r"asks for about (?P<value>[\d.]+) times the central noise",
           r"ratio distributed / central \(PLD\): (?P<value>[\d.]+)"),
    Number("06_secure_aggregation.ipynb",
           "central accuracy", r"as central DP \((?P<value>[\d.]+) against",
           r"central DP-FedAvg\s+\d+\s+[\d.]+\s+(?P<value>[\d.]+)"),
    Number("06_secure_aggregation.ipynb",
           "distributed accuracy at the central z",
           r"as central DP \([\d.]+ against\s+(?P<value>[\d.]+)\)",
           r"central z\s+\d+\s+[\d.]+\s+(?P<value>[\d.]+)"),
    Number("06_secure_aggregation.ipynb",
           "distributed accuracy at the provable z", r"ends lower \((?P<value>[\d.]+)\)",
           r"provable z\s+\d+\s+[\d.]+\s+(?P<value>[\d.]+)"),
    Number("06_secure_aggregation.ipynb",
           "epsilon of the central z under our bound",
           r"certified\s+only at (?P<value>[\d.]+) by our bound",
           r"central z\s+\d+\s+[\d.]+\s+[\d.]+\s+(?P<value>[\d.]+)"),
    Number("06_secure_aggregation.ipynb",
           "epsilon against the server", r"rounds, (?P<value>[\d.]+) for the certified run",
           r"provable z\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+(?P<value>[\d.]+)"),
    Number("06_secure_aggregation.ipynb",
           "epsilon against the server alone", r"That (?P<value>[\d.]+) is against the "
           r"server", r"provable z\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+(?P<value>[\d.]+)"),
    Number("07_robustness.ipynb",
           "non-IID median under sign flipping, lowest seed",
           r"ends anywhere between\s+(?P<value>[\d.]+) % and",
           r"dirichlet sign flip\s+30% median\s+accuracy (?P<value>[\d.]+)-"),
    Number("07_robustness.ipynb",
           "non-IID median under sign flipping, highest seed",
           r"ends anywhere between\s+[\d.]+ % and (?P<value>[\d.]+) %",
           r"dirichlet sign flip\s+30% median\s+accuracy [\d.]+-(?P<value>[\d.]+)"),
    Number("07_robustness.ipynb",
           "non-IID Krum, lowest seed", r"without attackers between (?P<value>[\d.]+) % and",
           r"dirichlet none\s+0% Krum\s+accuracy (?P<value>[\d.]+)-"),
    Number("07_robustness.ipynb",
           "non-IID Krum, highest seed",
           r"without attackers between [\d.]+ % and (?P<value>[\d.]+) %",
           r"dirichlet none\s+0% Krum\s+accuracy [\d.]+-(?P<value>[\d.]+)"),
    Number("08_cross_silo_deployment.ipynb",
           "Swiss base rate", r"The base rates differ enormously: (?P<value>\d+) %",
           r"switzerland\s+\d+\s+(?P<value>\d+)%"),
    Number("08_cross_silo_deployment.ipynb",
           "Cleveland base rate", r"disease, (?P<value>\d+) % of Cleveland's",
           r"cleveland\s+\d+\s+(?P<value>\d+)%"),
    Number("08_cross_silo_deployment.ipynb",
           "no Swiss cholesterol", r"Switzerland measured nobody's cholesterol",
           derive=lambda text: 1.0 if re.search(
               r"switzerland\s+chol recorded as 0:\s+(\d+) of \1\b", text) else 0.0),
    Number("08_cross_silo_deployment.ipynb",
           "a quarter of VA's cholesterol", r"VA a quarter of its patients'",
           derive=lambda text: 1.0 if 0.2 <= _out(
               r"va\s+chol recorded as 0:\s+(?P<value>\d+) of")(text) / _out(
               r"va\s+chol recorded as 0:\s+\d+ of (?P<value>\d+)")(text) <= 0.3 else 0.0),
    Number("08_cross_silo_deployment.ipynb",
           "FLamby drop costs Switzerland", r"costs Switzerland (?P<value>\d+) of its",
           derive=lambda text: _out(r"switzerland\s+(?P<value>\d+)\s+\d+%")(text) - sum(
               int(n) for n in re.search(r"switzerland\s+\d+/\d+\s+(\d+)/(\d+)", text).groups())),
    Number("08_cross_silo_deployment.ipynb",
           "Swiss FedAvg AUC", r"\(AUC ≈ (?P<value>[\d.]+)\)",
           r"fedavg\s+[\d.]+ ± [\d.]+\s+[\d.]+ ± [\d.]+\s+(?P<value>[\d.]+) ± [\d.]+\s+[\d.]+ ± "
           r"[\d.]+\s+AUC"),
    Number("08_cross_silo_deployment.ipynb",
           "healthy Swiss test patients", r"rests on \*\*(?P<value>\d+)\*\* Swiss test",
           r"switzerland\s+\d+/(?P<value>\d+)\s+[\d.]+\s+\["),
    Number("08_cross_silo_deployment.ipynb",
           "Swiss AUC interval, low", r"interval runs from (?P<value>[\d.]+) to",
           r"switzerland\s+\d+/\d+\s+[\d.]+\s+\[(?P<value>[\d.]+),"),
    Number("08_cross_silo_deployment.ipynb",
           "Swiss AUC interval, high", r"interval runs from [\d.]+ to\s+(?P<value>\d)\b",
           r"switzerland\s+\d+/\d+\s+[\d.]+\s+\[[\d.]+, (?P<value>[\d.]+)\]"),
    Number("08_cross_silo_deployment.ipynb",
           "Swiss test patients", r"treats the (?P<value>\d+) test patients",
           r"Switzerland's test set: (?P<value>\d+) patients"),
    Number("08_cross_silo_deployment.ipynb",
           "local statistics: more than twice C", r"moves the sum by more than twice",
           derive=lambda text: 1.0 if _out(r"local\s+preprocessing: removing one patient moves "
                                           r"the sum by up to (?P<value>[\d.]+) C")(text) > 2
           else 0.0),
    Number("08_cross_silo_deployment.ipynb",
           "ours over FLamby, smallest gap", r"by (?P<value>[\d.]+) to\s+[\d.]+ points",
           r"ours minus FLamby: from \+(?P<value>[\d.]+)"),
    Number("08_cross_silo_deployment.ipynb",
           "ours over FLamby, largest gap", r"by [\d.]+ to\s+(?P<value>[\d.]+) points",
           r"ours minus FLamby: from \+[\d.]+ to \+(?P<value>[\d.]+)"),
    Number("08_cross_silo_deployment.ipynb",
           "Swiss local AUC", r"its AUC is about (?P<value>[\d.]+), "
           r"no better",
           r"local\s+[\d.]+ ± [\d.]+\s+[\d.]+ ± [\d.]+\s+(?P<value>[\d.]+) ± [\d.]+\s+"
           r"[\d.]+ ± [\d.]+\s+AUC"),
    Number("08_cross_silo_deployment.ipynb",
           "VA's AUC gain", r"VA gains about (?P<value>[\d.]+) in AUC",
           derive=lambda text: _out(r"fedavg(?:\s+[\d.]+ ± [\d.]+){3}\s+(?P<value>[\d.]+) ± [\d.]+"
                                    r"\s+AUC")(text)
           - _out(r"local(?:\s+[\d.]+ ± [\d.]+){3}\s+(?P<value>[\d.]+) ± [\d.]+\s+AUC")(text)),
    Number("08_cross_silo_deployment.ipynb",
           "FLamby's complete patients",
           r"drops\s+every patient with a remaining gap \(`missing=\"drop\"`, "
           r"(?P<value>\d+) patients",
           derive=lambda text: sum(int(a) + int(b) for a, b in re.findall(
               r"\n\w+\s+\d+/\d+\s+(\d+)/(\d+)\s+\d+", text))),
    Number("08_cross_silo_deployment.ipynb",
           "pooled training patients",
           r"all (?P<value>\d+) training patients in one place",
           derive=lambda text: sum(int(a) for a in re.findall(
               r"\n\w+\s+(\d+)/\d+\s+\d+/\d+\s+\d+", text))),
    Number("08_cross_silo_deployment.ipynb",
           "Swiss patients without disease after dropping",
           r"leaves it \*\*one\*\* patient without disease",
           derive=lambda text: 1.0 if _out(
               r"switzerland\s+\d+/\d+\s+\d+/\d+\s+(?P<value>\d+)")(text) == 1 else 0.0),
    # Notebook 09 (issue 26): the yardsticks, the alignment and the transfer curve.
    Number(NB09, "bank alone", r"lift the bank's AUC from (?P<value>[\d.]+)",
           r"bank alone\s+AUC (?P<value>[\d.]+)"),
    Number(NB09, "vertical", r"lift the bank's AUC from [\d.]+ to (?P<value>[\d.]+)",
           r"vertical \(logistic loss\)\s+AUC (?P<value>[\d.]+)"),
    Number(NB09, "pooled",
           r"loses almost nothing against pooling everyone \((?P<value>[\d.]+)\)",
           r"pooled\s+AUC (?P<value>[\d.]+)"),
    Number(NB09, "shared training customers", r"only the (?P<value>[\d,]+) shared customers",
           r"training (?P<value>[\d,]+), held-out"),
    Number(NB09, "held-out customers", r"on the same\s+(?P<value>[\d,]+) held-out",
           r"held-out test (?P<value>[\d,]+)\)"),
    Number(NB09, "bank alone in the leakage text",
           r"edge over the bank alone \((?P<value>[\d.]+)\)",
           r"bank alone\s+AUC (?P<value>[\d.]+)"),
    Number(NB09, "bank-only customers", r"hands the bureau the (?P<value>[\d,]+) bank customers",
           r"only the bank (?P<value>[\d,]+),"),
    Number(NB09, "bureau-only customers", r"The bureau's (?P<value>[\d,]+) customers that",
           r"outside the overlap: (?P<value>[\d,]+)"),
    Number(NB09, "FTL at 500", r"from (?P<value>[\d.]+) with\s+500 shared customers",
           r"\n\s+500\s+(?P<value>[\d.]+)"),
    Number(NB09, "FTL at all", r"to (?P<value>[\d.]+) with all of them",
           r"\n\s+12,804\s+(?P<value>[\d.]+)"),
    Number(NB09, "months late", r"label-free months-late score reaches (?P<value>[\d.]+)",
           r"months-late score: (?P<value>[\d.]+)"),
    Number(NB09, "summary: bank alone", r"raise the AUC from (?P<value>[\d.]+)",
           r"bank alone\s+AUC (?P<value>[\d.]+)"),
    Number(NB09, "summary: vertical", r"raise the AUC from [\d.]+\s+to (?P<value>[\d.]+)",
           r"vertical \(logistic loss\)\s+AUC (?P<value>[\d.]+)"),
    Number(NB09, "summary: gap to pooled", r"within (?P<value>[\d.]+) of pooling everything",
           derive=lambda text: _out(r"pooled\s+AUC (?P<value>[\d.]+)")(text)
           - _out(r"vertical \(logistic loss\)\s+AUC (?P<value>[\d.]+)")(text)),
    Number(NB09, "summary: shared customers", r"the\s+bank learns the (?P<value>[\d,]+) shared",
           r"the intersection \((?P<value>\d+) ids\)"),
    # Notebook 04b, issue 28: production DP-FedAvg (adaptive clipping, Flower, DP-FTRL).
    Number(NB04B, "adaptive clipping's extra noise",
           r"costs the updates (?P<value>[\d.]+)% more noise",
           r"\(\+(?P<value>[\d.]+)% noise\)"),
    Number(NB04B, "rounds for C to reach the median", r"so it needs (?P<value>\d+) of the 30",
           r"90% of the median norm in round (?P<value>\d+)"),
    Number(NB04B, "Flower figure's median norm",
           r"log-normal around 1\s+#?\s*\(median (?P<value>[\d.]+)\)",
           r"median norm (?P<value>[\d.]+), 300 rounds"),
    Number(NB04B, "DP-FTRL z per node", r"needs \$z = (?P<value>[\d.]+)\$ per tree node",
           r"z = (?P<value>[\d.]+) per node"),
    Number(NB04B, "DP-FedAvg z beside DP-FTRL's",
           r"instead of DP-FedAvg's\s+#?\s*(?P<value>[\d.]+):",
           r"z = (?P<value>[\d.]+) in total"),
    Number(NB04B, "fixed proxy C accuracy",
           r"public proxy's \$C = 0\.5\$\s+#?\s*\((?P<value>[\d.]+)%\)",
           r"fixed C = 0\.5 \(public proxy\)\s+(?P<value>[\d.]+)%"),
    Number(NB04B, "best fixed C in hindsight, accuracy",
           r"in hindsight\s+#?\s*\((?P<value>[\d.]+)% at",
           r"best fixed C = [\d.]+ \(hindsight\)\s+(?P<value>[\d.]+)%"),
    Number(NB04B, "best fixed C in hindsight",
           r"in hindsight\s+#?\s*\([\d.]+% at \$C = (?P<value>[\d.]+)\$\)",
           r"best fixed C = (?P<value>[\d.]+) \(hindsight\)"),
    Number(NB04B, "adaptive clipping, defaults",
           r"from the defaults reaches (?P<value>[\d.]+)%",
           r"adaptive, C_0 = 0\.1 \(defaults\)\s+(?P<value>[\d.]+)%"),
    Number(NB04B, "adaptive clipping from the proxy's C",
           r"\$C_0 = 0\.5\$ it reaches (?P<value>[\d.]+)%",
           r"adaptive, C_0 = 0\.5 \(proxy\)\s+(?P<value>[\d.]+)%"),
    Number(NB04B, "DP-FTRL cyclic", r"(?P<value>[\d.]+)% \(cyclic\)",
           r"DP-FTRL, cyclic\s+(?P<value>[\d.]+)%"),
    Number(NB04B, "DP-FTRL availability", r"(?P<value>[\d.]+)% \(availability\)",
           r"DP-FTRL, availability\s+(?P<value>[\d.]+)%"),
    Number(NB04B, "exercise 2's z", r"total noise multiplier is \$z = (?P<value>[\d.]+)\$",
           r"z = (?P<value>[\d.]+) in total"),
    Number(NB04B, "exercise 2's z_Delta", r"the updates keep \$z_\\Delta = (?P<value>[\d.]+)\$",
           r"z_Delta = (?P<value>[\d.]+) on the updates"),
    Number(NB04B, "exercise 2's extra noise",
           r"z_\\Delta = [\d.]+\$, (?P<value>[\d.]+)%\s+#?\s*more noise",
           r"\(\+(?P<value>[\d.]+)% noise\)"),
    Number(NB04B_SOLUTIONS, "z_Delta at qN = 20", r"\*\*\$z_\\Delta \\approx (?P<value>[\d.]+)\$",
           r"qN =  20: sigma_b = 1, z_Delta = (?P<value>[\d.]+)"),
    Number(NB04B_SOLUTIONS, "extra noise at qN = 20", r"(?P<value>\d+)% more noise on the updates",
           r"qN =  20: sigma_b = 1, z_Delta = [\d.]+ \(\+(?P<value>[\d.]+)%"),
    # Notebook 10, issue 29: when clients differ (drift, FedProx, SCAFFOLD, personalisation).
    Number(NB10, "drift: median MNIST client", r"the median client is (?P<value>[\d.]+) away",
           r"MNIST 2 shards\n  median client\s+[\d.]+\s+[\d.]+\s+(?P<value>[\d.]+)"),
    Number(NB10, "drift: median IID MNIST client",
           r"away after 200 steps, against (?P<value>[\d.]+) for a client",
           r"MNIST 2 shards\n.*\n  median client, IID\s+[\d.]+\s+[\d.]+\s+(?P<value>[\d.]+)"),
    Number(NB10, "drift: median Synthetic client", r"starker, (?P<value>[\d.]+) against",
           r"Synthetic\(1, 1\)\n  median client\s+[\d.]+\s+[\d.]+\s+(?P<value>[\d.]+)"),
    Number(NB10, "drift: median Synthetic-IID client", r"starker, [\d.]+ against (?P<value>[\d.]+)",
           r"Synthetic\(1, 1\)\n.*\n  median client, IID\s+[\d.]+\s+[\d.]+\s+(?P<value>[\d.]+)"),
    Number(NB10, "drift: FedAvg's average", r"on MNIST (?P<value>[\d.]+) after 200 steps",
           r"MNIST 2 shards\n(?:.*\n){3}  average\s+[\d.]+\s+[\d.]+\s+(?P<value>[\d.]+)"),
    Number(NB10, "drift: IID average", r"twice the\s+IID average's (?P<value>[\d.]+)",
           r"MNIST 2 shards\n(?:.*\n){4}  average, IID\s+[\d.]+\s+[\d.]+\s+(?P<value>[\d.]+)"),
    Number(NB10, "drift: FedProx median client", r"client stays within (?P<value>[\d.]+)",
           r"MNIST 2 shards\n(?:.*\n){2}  median client, FedProx mu = 1\s+[\d.]+\s+[\d.]+\s+"
           r"(?P<value>[\d.]+)"),
    Number(NB10, "90 %: FedAvg's spikes", r"spikes up to (?P<value>[\d.]+) \(standard",
           r"\n90% stragglers.*\n  FedAvg\s+[\d.]+\s+(?P<value>[\d.]+)"),
    Number(NB10, "90 %: FedAvg's std",
           r"spikes up to [\d.]+ \(standard deviation (?P<value>[\d.]+)\)",
           r"\n90% stragglers.*\n  FedAvg\s+[\d.]+\s+[\d.]+\s+(?P<value>[\d.]+)"),
    Number(NB10, "90 %: FedProx's max", r"steady: at\s+most (?P<value>[\d.]+) \(standard",
           r"\n90% stragglers.*\n(?:.*\n){2}  FedProx mu=1\s+[\d.]+\s+(?P<value>[\d.]+)"),
    Number(NB10, "90 %: FedProx's std",
           r"most [\d.]+ \(standard deviation (?P<value>[\d.]+)\)\. That",
           r"\n90% stragglers.*\n(?:.*\n){2}  FedProx mu=1\s+[\d.]+\s+[\d.]+\s+(?P<value>[\d.]+)"),
    Number(NB10, "90 %: FedAvg's final loss", r"FedAvg ends at (?P<value>[\d.]+), above",
           r"\n90% stragglers.*\n  FedAvg\s+(?P<value>[\d.]+)"),
    Number(NB10, "90 %: FedProx's final loss", r"above FedProx's\s+(?P<value>[\d.]+), held-out",
           r"\n90% stragglers.*\n(?:.*\n){2}  FedProx mu=1\s+(?P<value>[\d.]+)"),
    Number(NB10, "90 %: FedAvg's accuracy", r"held-out accuracy (?P<value>[\d.]+) against",
           r"\n90% stragglers.*\n  FedAvg\s+(?:[\d.]+\s+){3}(?P<value>[\d.]+)"),
    Number(NB10, "90 %: FedProx's accuracy",
           r"held-out accuracy [\d.]+ against (?P<value>[\d.]+)\), but",
           r"\n90% stragglers.*\n(?:.*\n){2}  FedProx mu=1\s+(?:[\d.]+\s+){3}(?P<value>[\d.]+)"),
    Number(NB10, "0 %: SCAFFOLD's final loss", r"0 %: final loss (?P<value>[\d.]+), held-out",
           r"\n0% stragglers.*\n(?:.*\n){3}  SCAFFOLD\s+(?P<value>[\d.]+)"),
    Number(NB10, "0 %: SCAFFOLD's accuracy", r"0 %: final loss [\d.]+, held-out\s+accuracy "
           r"(?P<value>[\d.]+)",
           r"\n0% stragglers.*\n(?:.*\n){3}  SCAFFOLD\s+(?:[\d.]+\s+){3}(?P<value>[\d.]+)"),
    Number(NB10, "0 %: FedAvg's final loss", r"against FedAvg's (?P<value>[\d.]+) and",
           r"\n0% stragglers.*\n  FedAvg\s+(?P<value>[\d.]+)"),
    Number(NB10, "0 %: FedAvg's accuracy", r"against FedAvg's [\d.]+ and (?P<value>[\d.]+)\)",
           r"\n0% stragglers.*\n  FedAvg\s+(?:[\d.]+\s+){3}(?P<value>[\d.]+)"),
    Number(NB10, "90 %: SCAFFOLD's spikes", r"\(spikes to\s+(?P<value>[\d.]+)\)",
           r"\n90% stragglers.*\n(?:.*\n){3}  SCAFFOLD\s+[\d.]+\s+(?P<value>[\d.]+)"),
    Number(NB10, "MNIST: FedAvgM median", r"median client most \((?P<value>[\d.]+) against",
           r"\nFedAvgM\s+[\d.]+\s+(?P<value>[\d.]+)"),
    Number(NB10, "MNIST: FedAvg median", r"against\s+FedAvg's (?P<value>[\d.]+)\), SCAFFOLD",
           r"\nFedAvg\s+[\d.]+\s+(?P<value>[\d.]+)"),
    Number(NB10, "MNIST: SCAFFOLD worst", r"\*\*worst\*\* client most \((?P<value>[\d.]+) against",
           r"\nSCAFFOLD\s+(?:[\d.]+\s+){3}(?P<value>[\d.]+)"),
    Number(NB10, "MNIST: FedAvg worst",
           r"\*\*worst\*\* client most \([\d.]+ against (?P<value>[\d.]+)\)",
           r"\nFedAvg\s+(?:[\d.]+\s+){3}(?P<value>[\d.]+)"),
    Number(NB10, "MNIST: FedAdam worst", r"in\s+their tails \(worst (?P<value>[\d.]+) and",
           r"\nFedAdam\s+(?:[\d.]+\s+){3}(?P<value>[\d.]+)"),
    Number(NB10, "MNIST: FedYogi worst", r"tails \(worst [\d.]+ and (?P<value>[\d.]+)\)",
           r"\nFedYogi\s+(?:[\d.]+\s+){3}(?P<value>[\d.]+)"),
    Number(NB10, "MNIST: local models on everyone", r"last column: (?P<value>[\d.]+), a model",
           r"\nlocal only\s+(?:[\d.]+\s+){4}(?P<value>[\d.]+)"),
    Number(NB10, "MNIST: Ditto median", r"Ditto \((?P<value>[\d.]+) median",
           r"\nDitto\s+[\d.]+\s+(?P<value>[\d.]+)"),
    Number(NB10, "MNIST: Ditto worst", r"median, (?P<value>[\d.]+) worst\)",
           r"\nDitto\s+(?:[\d.]+\s+){3}(?P<value>[\d.]+)\s+[\d.]+\n"),
    Number(NB10, "hospitals: Switzerland alone, accuracy",
           r"best accuracy in the table \((?P<value>[\d.]+)\)",
           r"\nalone\s+(?:[\d.]+ \([\d.]+\)\s+){2}(?P<value>[\d.]+)"),
    Number(NB10, "hospitals: Switzerland alone, AUC", r"with an AUC of (?P<value>[\d.]+), no",
           r"\nalone\s+(?:[\d.]+ \([\d.]+\)\s+){2}[\d.]+ \((?P<value>[\d.]+)\)"),
    Number(NB10, "hospitals: Ditto's AUC gap", r"within (?P<value>[\d.]+) of the global model's",
           derive=lambda text: max(abs(float(a) - float(b)) for a, b in zip(
               re.findall(r"\(([\d.]+)\)", re.search(r"\nDitto\s+[\d.]+ \(.*", text)[0]),
               re.findall(r"\(([\d.]+)\)", re.search(r"\nglobal \(FedAvg\)\s+[\d.]+ .*",
                                                     text)[0][17:]), strict=True))),
    Number(NB10, "hospitals: global worst", r"rises from (?P<value>[\d.]+) \(VA",
           r"\nglobal \(FedAvg\)\s+(?:[\d.]+ \([\d.]+\)\s+){4}(?P<value>[\d.]+)"),
    Number(NB10, "hospitals: Ditto worst", r"to (?P<value>[\d.]+)\s+\(Hungary, Ditto\)",
           r"\nDitto\s+(?:[\d.]+ \([\d.]+\)\s+){4}(?P<value>[\d.]+)"),
    Number(NB10, "hospitals: Switzerland global", r"Switzerland's from (?P<value>[\d.]+) to",
           r"\nglobal \(FedAvg\)\s+(?:[\d.]+ \([\d.]+\)\s+){2}(?P<value>[\d.]+)"),
    Number(NB10, "hospitals: Switzerland Ditto", r"Switzerland's from [\d.]+ to (?P<value>[\d.]+)",
           r"\nDitto\s+(?:[\d.]+ \([\d.]+\)\s+){2}(?P<value>[\d.]+)"),
    Number(NB10, "hospitals: fine-tuned worst", r"help less\s+\(worst (?P<value>[\d.]+)\)",
           r"\nfine-tuned\s+(?:[\d.]+ \([\d.]+\)\s+){4}(?P<value>[\d.]+)"),
]


def _texts(path: Path) -> tuple[str, str]:
    nb = nbformat.read(path, as_version=4)
    markdown = "\n\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")
    outputs = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                outputs.append(output.get("text", ""))
            elif "data" in output and "text/plain" in output["data"]:
                outputs.append(output["data"]["text/plain"])
    return markdown, "\n\n".join(outputs)


def _written(match: re.Match) -> tuple[float, float]:
    """The markdown number and half a unit of its last written digit."""
    # A full stop after the number is not a digit; a comma inside it groups thousands.
    text = match.group("value").rstrip(".").replace(",", "")
    if text == "nothing":
        return 0.0, 0.5
    exponent = int(match.groupdict().get("exponent") or 0)
    decimals = len(text.split(".")[1]) if "." in text else 0
    return float(text) * 10.0**exponent, 0.5 * 10.0 ** (exponent - decimals)


@pytest.mark.parametrize("number", NUMBERS, ids=lambda n: f"{n.notebook.split('_')[0]}-{n.what}")
def test_markdown_number_matches_its_output(number):
    markdown, outputs = _texts(NOTEBOOKS / number.notebook)
    match = re.search(number.markdown, markdown)
    assert match is not None, (
        f"{number.notebook}: the markdown no longer contains {number.markdown!r} "
        f"({number.what}); update the text or this row of tests/test_notebook_numbers.py")
    if "value" not in match.groupdict():  # a statement whose truth is derived (e.g. "all")
        assert number.derive is not None and number.derive(outputs) == 1.0, (
            f"{number.notebook}: {number.what}: the statement {match.group(0)!r} no longer "
            "holds for the stored outputs")
        return
    written, half_unit = _written(match)
    if number.derive is not None:
        actual = number.derive(outputs)
    else:
        actual = _out(number.output)(outputs)
    assert abs(actual - written) <= half_unit * (1 + 1e-9), (
        f"{number.notebook}: the markdown says {match.group(0)!r} ({number.what}) but the "
        f"stored output gives {actual:g}; rerun the notebook and fix the text")


def test_rows_name_existing_notebooks_and_one_source_each():
    for number in NUMBERS:
        assert (NOTEBOOKS / number.notebook).is_file(), number.notebook
        assert (number.output is None) != (number.derive is None), number.what


def test_a_drifted_number_is_caught(monkeypatch):
    # The check must be able to fail: change one written number and it does.
    original = _texts

    def drifted(path):
        markdown, outputs = original(path)
        return markdown.replace("RDP goes from 4.53", "RDP goes from 4.63"), outputs

    monkeypatch.setattr(sys.modules[__name__], "_texts", drifted)
    row = next(n for n in NUMBERS if n.what == "RDP at k = 100")
    with pytest.raises(AssertionError, match="markdown says"):
        test_markdown_number_matches_its_output(row)
