"""Weights: safe file reading, released checkpoints and their downloads, conversion of release
and arXiv-v1 checkpoints, building on the meta device, and the runner-side hook."""
from .runner_hook import CATSegOfficialCheckpointHook, load_from_url

__all__ = ['CATSegOfficialCheckpointHook', 'load_from_url']
