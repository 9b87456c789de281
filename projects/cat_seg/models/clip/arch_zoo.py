"""The CLIP variants CAT-Seg is built on, as data (open_clip ``model_configs/*.json``).

Each row names the few numbers that define a tower; heads are explicit (open_clip derives vision
heads as width // head_width, 64 unless the JSON says otherwise), never inferred from the width.
"""
from typing import Dict, Union

VISION_KEYS = ('embed_dims', 'num_layers', 'num_heads', 'patch_size', 'output_dims',
               'pretrain_img_size', 'mlp_ratio', 'act')
TEXT_KEYS = ('embed_dims', 'num_layers', 'num_heads', 'output_dims', 'context_length',
             'vocab_size', 'mlp_ratio', 'act')
ACTIVATIONS = ('quick_gelu', 'gelu')

_TEXT_VOCAB = dict(context_length=77, vocab_size=49408, mlp_ratio=4.0)

CLIP_ARCH_ZOO: Dict[str, Dict[str, dict]] = {
    # ViT-B-16-quickgelu.json (OpenAI weights).
    'vit-b16': dict(
        vision=dict(embed_dims=768, num_layers=12, num_heads=12, patch_size=16, output_dims=512,
                    pretrain_img_size=224, mlp_ratio=4.0, act='quick_gelu'),
        text=dict(embed_dims=512, num_layers=12, num_heads=8, output_dims=512, act='quick_gelu',
                  **_TEXT_VOCAB)),
    # ViT-L-14-336-quickgelu.json (OpenAI weights).
    'vit-l14-336': dict(
        vision=dict(embed_dims=1024, num_layers=24, num_heads=16, patch_size=14, output_dims=768,
                    pretrain_img_size=336, mlp_ratio=4.0, act='quick_gelu'),
        text=dict(embed_dims=768, num_layers=12, num_heads=12, output_dims=768, act='quick_gelu',
                  **_TEXT_VOCAB)),
    # ViT-L-14-quickgelu.json (OpenAI weights): the 224-px ViT-L/14, which the release also runs
    # on 336-px views (its table resized; official cat_seg_model.py uses 336 for any non-B/16).
    'vit-l14': dict(
        vision=dict(embed_dims=1024, num_layers=24, num_heads=16, patch_size=14, output_dims=768,
                    pretrain_img_size=224, mlp_ratio=4.0, act='quick_gelu'),
        text=dict(embed_dims=768, num_layers=12, num_heads=12, output_dims=768, act='quick_gelu',
                  **_TEXT_VOCAB)),
    # ViT-H-14.json (LAION-2B weights): head_width 80.
    'vit-h14': dict(
        vision=dict(embed_dims=1280, num_layers=32, num_heads=16, patch_size=14, output_dims=1024,
                    pretrain_img_size=224, mlp_ratio=4.0, act='gelu'),
        text=dict(embed_dims=1024, num_layers=24, num_heads=16, output_dims=1024, act='gelu',
                  **_TEXT_VOCAB)),
    # ViT-bigG-14.json (LAION-2B weights): head_width 104, mlp_ratio 4.9231.
    'vit-g14': dict(
        vision=dict(embed_dims=1664, num_layers=48, num_heads=16, patch_size=14, output_dims=1280,
                    pretrain_img_size=224, mlp_ratio=4.9231, act='gelu'),
        text=dict(embed_dims=1280, num_layers=32, num_heads=20, output_dims=1280, act='gelu',
                  **_TEXT_VOCAB)),
}
# The v1 code builds the OpenCLIP models with open_clip's force_image_size=336, which resizes their
# positional tables to 24x24 + 1 at load time (official cat_seg_predictor.py at ceaaad8), so its
# checkpoints (model_final_huge.pth, model_final_giant.pth) store 577-entry tables.
for _name in ('vit-h14', 'vit-g14'):
    CLIP_ARCH_ZOO[f'{_name}-336'] = dict(
        vision=dict(CLIP_ARCH_ZOO[_name]['vision'], pretrain_img_size=336),
        text=CLIP_ARCH_ZOO[_name]['text'])


def resolve_arch(arch: Union[str, dict], tower: str) -> dict:
    """Numbers of one tower ('vision' or 'text') from an arch name or an explicit dict."""
    keys = VISION_KEYS if tower == 'vision' else TEXT_KEYS
    if isinstance(arch, str):
        if arch not in CLIP_ARCH_ZOO:
            raise ValueError(f'arch={arch!r} is not one of {list(CLIP_ARCH_ZOO)}; use one of '
                             f'these or a dict with keys {list(keys)}')
        return dict(CLIP_ARCH_ZOO[arch][tower])
    if not isinstance(arch, dict):
        raise TypeError(f'arch must be a name or a dict, got {type(arch).__name__}')
    missing = [k for k in keys if k not in arch]
    unexpected = [k for k in arch if k not in keys]
    if missing or unexpected:
        raise ValueError(f'a {tower} arch dict needs exactly the keys {list(keys)}; missing '
                         f'{missing}, unexpected {unexpected}')
    if arch['embed_dims'] % arch['num_heads']:
        raise ValueError(f"arch['num_heads']={arch['num_heads']} must divide "
                         f"arch['embed_dims']={arch['embed_dims']}")
    if arch['act'] not in ACTIVATIONS:
        raise ValueError(f"arch['act']={arch['act']!r} is not one of {list(ACTIVATIONS)}")
    return dict(arch)
