"""Helpers for the federated learning & differential privacy course.

Import the modules you need, not names from them::

    from fl_helpers import data, privacy

Importing this package has no side effects and never touches the network; the heavy modules
(TensorFlow) are only imported by the submodules that need them.
"""

__version__ = "0.1.0"
