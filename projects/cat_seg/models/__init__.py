"""CAT-Seg model components, registered in ``mmseg.registry.MODELS``."""
from .catseg import CATSeg
from .catseg_head import CATSegHead, CATSegHeadInputs
from .clip_image_encoder import CATSegCLIPImageEncoder, CLIPImageFeatures
from .clip_text_encoder import CATSegCLIPTextEncoder
from .frozen_batch_norm import CATSegFrozenBatchNorm2d
from .guidance import CATSegBackboneGuidance, CATSegCLIPGuidance, Guidance
from .losses import CATSegBCELoss

__all__ = ['CATSeg', 'CATSegHead', 'CATSegHeadInputs', 'CATSegCLIPImageEncoder',
           'CLIPImageFeatures', 'CATSegCLIPTextEncoder', 'CATSegCLIPGuidance',
           'CATSegFrozenBatchNorm2d',
           'CATSegBackboneGuidance', 'Guidance',
           'CATSegBCELoss']
