"""Runner hooks for CAT-Seg, and how the runner loads checkpoints."""
from .checkpoint_loading import CATSegOfficialCheckpointHook, load_from_url
from .vocabulary_hook import CATSegVocabularyHook

__all__ = ['CATSegOfficialCheckpointHook', 'CATSegVocabularyHook', 'load_from_url']
