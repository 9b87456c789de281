"""CAT-Seg model components, registered in ``mmseg.registry.MODELS``."""
from .clip_image_encoder import CATSegCLIPImageEncoder, CLIPImageFeatures
from .clip_text_encoder import CATSegCLIPTextEncoder
from .guidance import CATSegCLIPGuidance, Guidance

__all__ = ['CATSegCLIPImageEncoder', 'CLIPImageFeatures', 'CATSegCLIPTextEncoder',
           'CATSegCLIPGuidance', 'Guidance']
