"""CAT-Seg model components, registered in ``mmseg.registry.MODELS``."""
from .segmentor.catseg import CATSeg
from .head.catseg_head import CATSegHead, CATSegHeadInputs
from .clip.image_encoder import CATSegCLIPImageEncoder, CLIPImageFeatures
from .clip.text_encoder import CATSegCLIPTextEncoder
from .head.frozen_batch_norm import CATSegFrozenBatchNorm2d
from .head.guidance import CATSegBackboneGuidance, CATSegCLIPGuidance, Guidance
from .segmentor.losses import CATSegBCELoss

__all__ = ['CATSeg', 'CATSegHead', 'CATSegHeadInputs', 'CATSegCLIPImageEncoder',
           'CLIPImageFeatures', 'CATSegCLIPTextEncoder', 'CATSegCLIPGuidance',
           'CATSegFrozenBatchNorm2d',
           'CATSegBackboneGuidance', 'Guidance',
           'CATSegBCELoss']
