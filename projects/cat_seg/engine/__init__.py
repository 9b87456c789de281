"""Runner hooks for CAT-Seg."""
from .vocabulary_hook import CATSegVocabularyHook

__all__ = ['CATSegVocabularyHook']
