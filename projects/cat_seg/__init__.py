"""CAT-Seg as an MMSegmentation 1.x plugin.

Importing ``cat_seg`` (e.g. through ``custom_imports=dict(imports=['cat_seg'])``) registers every
CAT-Seg model, dataset and metric in MMSegmentation's registries (scope ``mmseg``).
"""
from . import compat  # noqa: F401  (must run before anything imports mmseg.models)
from . import apis, datasets, engine, evaluation, models, weights  # noqa: F401

__version__ = '0.1.0'
