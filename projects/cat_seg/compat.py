"""Compatibility shims for the dormant mmsegmentation 1.2.2 stack on current torch/setuptools."""
