"""Shared infrastructure of the book *Learning beyond end-to-end backprop*.

Importing the package sets the book's plot style. The modules:

- :mod:`helpers.data`: MNIST / Fashion-MNIST as in-memory tensors, mini-batches by index
  permutation.
- :mod:`helpers.params`: papermill parameters, profiles (``paper`` / ``smoke``),
  validation, device choice.
- :mod:`helpers.train`: seeding, timing, progress bars, the eval-mode context, the one
  scoring loop, the training loop (``fit``) and the learning-rule protocol every rule
  plugs into (``Rule``).
- :mod:`helpers.metrics`: accuracy under attack, noise score, per-layer accuracy, t-SNE
  metrics.
- :mod:`helpers.results`: ``results/<notebook-stem>.json`` with metrics, settings, wall
  time, versions.
- :mod:`helpers.plotting`: one plot style, one colour per learning rule, curves with
  seed bands.
- :mod:`helpers.source`: ``show_source``, a helper's code shown in a chapter with file
  and line numbers.

One module per technique, imported by name (``from helpers import spectrum``):

- :mod:`helpers.inspect_net`: features at any layer of an ``nn.Sequential``, t-SNE,
  class-coloured scatter.
- :mod:`helpers.local_errors`: layer-wise / simultaneous local-error training with fixed
  random readouts, backprop baseline, per-layer reads.
- :mod:`helpers.dfa`: direct feedback alignment and feedback alignment for
  ``nn.Sequential`` MLPs, NumPy reference formulas, alignment angles.
- :mod:`helpers.spectrum`: PCA eigen-spectra, power-law exponent alpha, participation
  ratio.
- :mod:`helpers.attacks`: Gaussian noise, FGSM, PGD and pixel noise on the [0, 1] pixel
  scale for models on normalised inputs.
- :mod:`helpers.kwinners`: k-winners (``KWinners``, ``KWinners2d``), boosting, duty
  cycles.
- :mod:`helpers.sparse_weights`: sparse weights (``SparseWeights``,
  ``SparseWeights2d``), the rule that keeps them sparse.
- :mod:`helpers.sparse`: the sparse net's pieces in one namespace, and its rule
  ``SparseNet``.
"""

from .data import (
    Data,
    DataError,
    SampleDataWarning,
    batches,
    load_mnist,
    stratified_indices,
)
from .params import ParameterError, Params, resolve_device, resolve_params
from .plotting import RULE_COLORS, apply_style, label_axes, plot_runs, rule_color
from .results import load_results, save_results, start_run
from .source import show_source
from .train import (
    Rule,
    Timer,
    TrainingDiverged,
    check_finite,
    eval_mode,
    evaluate,
    fit,
    progress,
    seed_everything,
    train_epoch,
)

__version__ = "0.1.0"

apply_style()

__all__ = [
    "Data",
    "DataError",
    "SampleDataWarning",
    "batches",
    "load_mnist",
    "stratified_indices",
    "ParameterError",
    "Params",
    "resolve_device",
    "resolve_params",
    "RULE_COLORS",
    "apply_style",
    "label_axes",
    "plot_runs",
    "rule_color",
    "load_results",
    "save_results",
    "start_run",
    "show_source",
    "Rule",
    "Timer",
    "TrainingDiverged",
    "check_finite",
    "eval_mode",
    "evaluate",
    "fit",
    "progress",
    "seed_everything",
    "train_epoch",
]
