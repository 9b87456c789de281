"""Weights: safe file reading (files), released checkpoints and downloads (download), conversion
of OpenAI CLIP towers (clip_towers) and of official release and arXiv-v1 checkpoints
(convert_release, convert_v1), strict loading into a model (loading), building on the meta device
(meta_device), the runner-side hooks (runner_hook, checkpoint_saving) and the resume check
(resume)."""
from .checkpoint_saving import CATSegCheckpointHook
from .runner_hook import CATSegOfficialCheckpointHook, load_from_url

__all__ = ['CATSegCheckpointHook', 'CATSegOfficialCheckpointHook', 'load_from_url']
