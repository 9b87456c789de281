"""Which CLIP parameters train (paper §3.5, Table 3): named policies as data.

A policy is a tuple of ``fnmatch`` patterns over parameter names relative to the segmentor. Every
parameter under one of the CLIP prefixes (``backbone.``, ``text_encoder.``) trains iff a pattern
matches its name; parameters outside CLIP (guidance upsamplers, decode head) always train.

q/v-only fine-tuning relies on the CLIP encoders storing the attention input projection as
separate ``q_proj_weight`` / ``k_proj_weight`` / ``v_proj_weight`` parameters: a frozen parameter
has no gradient, so AdamW neither steps nor decays it.
"""
from fnmatch import fnmatchcase
from typing import Dict, List, Sequence, Tuple, Union

from torch import nn

CLIP_PREFIXES = ('backbone.', 'text_encoder.')

FINETUNE_POLICIES: Dict[str, Tuple[str, ...]] = {
    # CVPR 2024 release (official cat_seg_model.py, CLIP_FINETUNE "attention"): query and value
    # projection weights of both encoders; biases, keys and output projections stay frozen.
    'attention_qv': (
        'backbone.transformer.resblocks.*.attn.q_proj_weight',
        'backbone.transformer.resblocks.*.attn.v_proj_weight',
        'text_encoder.transformer.resblocks.*.attn.q_proj_weight',
        'text_encoder.transformer.resblocks.*.attn.v_proj_weight',
    ),
    # Paper v1 §3.5 / Fig. 9: all attention layers and the positional embedding of the image
    # encoder; the text encoder is frozen.
    'attention': (
        'backbone.transformer.resblocks.*.attn.*',
        'backbone.positional_embedding',
    ),
    # Table 3 rows "Freeze", "VPT-deep" (the prompts of CATSegCLIPImageEncoder(vpt_prompts=N))
    # and "Full fine-tuning".
    'frozen': (),
    'vpt': ('backbone.vpt_prompts',),
    # v1 keeps the text encoder frozen throughout, so its "full fine-tuning" is the image encoder.
    'full_image': ('backbone.*',),
    'full': ('backbone.*', 'text_encoder.*'),
    # Release CLIP_FINETUNE "full" (official cat_seg_model.py trains the parameters named
    # "transformer"): the residual blocks of both encoders; embeddings, ln_pre/ln_post/ln_final
    # and projections stay frozen. With VPT prompts the release trains them too: add
    # 'backbone.vpt_prompts' to these patterns.
    'full_blocks': ('backbone.transformer.*', 'text_encoder.transformer.*'),
}


def apply_finetune_policy(model: nn.Module,
                          policy: Union[str, Sequence[str]]) -> List[str]:
    """Set ``requires_grad`` of every CLIP parameter of ``model`` from a policy.

    Args:
        model (nn.Module): The segmentor, with CLIP towers under :data:`CLIP_PREFIXES`.
        policy (str | Sequence[str]): A key of :data:`FINETUNE_POLICIES`, or explicit patterns.

    Returns:
        list[str]: Names of the CLIP parameters that train, in ``named_parameters`` order.
    """
    patterns = resolve_policy(policy)
    clip_params = [(name, param) for name, param in model.named_parameters()
                   if name.startswith(CLIP_PREFIXES)]
    unmatched = [p for p in patterns if not any(fnmatchcase(n, p) for n, _ in clip_params)]
    if unmatched:
        # A pattern that selects nothing is a renamed key or a typo, not a smaller policy.
        raise ValueError(f'finetune policy patterns {unmatched} match no CLIP parameter of '
                         f'{type(model).__name__}; CLIP parameters look like '
                         f'{clip_params[0][0] if clip_params else "(none)"!r}')
    trainable = []
    for name, param in clip_params:
        param.requires_grad_(any(fnmatchcase(name, p) for p in patterns))
        if param.requires_grad:
            trainable.append(name)
    return trainable


def resolve_policy(policy: Union[str, Sequence[str]]) -> Tuple[str, ...]:
    """Patterns of a named policy, or the given patterns; unknown names raise."""
    if isinstance(policy, str):
        if policy not in FINETUNE_POLICIES:
            raise ValueError(f'finetune_policy={policy!r} is not one of '
                             f'{sorted(FINETUNE_POLICIES)}; use one of these or a list of '
                             'fnmatch patterns over parameter names')
        return FINETUNE_POLICIES[policy]
    if not all(isinstance(p, str) for p in policy):
        raise TypeError(f'finetune_policy must be a policy name or a list of str patterns, '
                        f'got {policy!r}')
    return tuple(policy)
