"""CLIP towers (paper §3.5): dense image encoder with split q/k/v, text encoder with its prompt
templates and cache, the per-arch numbers (``arch_zoo``) and the fine-tuning policies."""
