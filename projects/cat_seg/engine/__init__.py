"""Runner hooks for CAT-Seg (the checkpoint hook lives with the weights: ``cat_seg.weights``)
and the mixed-precision optimiser wrapper."""
from .amp_optim_wrapper import CATSegAmpOptimWrapper
from .vocabulary_hook import CATSegVocabularyHook

__all__ = ['CATSegAmpOptimWrapper', 'CATSegVocabularyHook']
