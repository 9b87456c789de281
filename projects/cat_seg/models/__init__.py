"""CAT-Seg model components, registered in ``mmseg.registry.MODELS``."""
