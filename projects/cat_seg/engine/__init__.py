"""Runner hooks for CAT-Seg (the checkpoint hook lives with the weights: ``cat_seg.weights``)."""
from .vocabulary_hook import CATSegVocabularyHook

__all__ = ['CATSegVocabularyHook']
