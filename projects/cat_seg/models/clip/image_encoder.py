"""CLIP image encoder with dense output for the cost volume (paper §3.2; fixture README §4)."""
import math
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from mmseg.utils import OptConfigType
from open_clip.transformer import QuickGELU, VisionTransformer
from torch import Tensor, nn

from ...weights.clip_towers import load_clip_tower
from ...weights.files import load_weights_file
from ..checkpointing import checkpointed
from .arch_zoo import resolve_arch
from .attention import split_qkv_

DENSE_RESIDUALS = ('cls', 'token')


class CLIPImageFeatures(NamedTuple):
    """Dense CLIP output and raw intermediate blocks, CLS token dropped.

    Attributes:
        dense (Tensor): ``ln_post`` + ``proj`` of the dense last block, (B, C, H, W).
        intermediates (tuple[Tensor]): Outputs of the guidance blocks, each (B, W, H, W).
    """

    dense: Tensor
    intermediates: Tuple[Tensor, ...]


def activation(name: str) -> type:
    return QuickGELU if name == 'quick_gelu' else nn.GELU


@MODELS.register_module()
class CATSegCLIPImageEncoder(BaseModule):
    """open_clip's ViT with a dense last block, a run-time positional table and split q/k/v.

    Parameter names are OpenAI's visual keys (``conv1``, ``class_embedding``,
    ``positional_embedding``, ``ln_pre``, ``transformer.resblocks.*``, ``ln_post``, ``proj``) with
    the attention input projection split (see ``clip_attention.py``).

    The last block computes no attention: its output is ``out_proj(v) + residual`` followed by the
    MLP, where the residual is the block input's CLS token broadcast to every token (release,
    ``dense_residual='cls'``) or each token's own input (paper v1, ``'token'``).

    Args:
        arch (str | dict): A row of ``CLIP_ARCH_ZOO`` ('vit-b16', 'vit-l14', 'vit-l14-336',
            'vit-h14', 'vit-g14', and the v1 code's 'vit-h14-336', 'vit-g14-336') or a dict
            with the keys of ``VISION_KEYS``. Defaults to 'vit-b16'.
        img_size (int): Side of the (square) CLIP input, e.g. 384 -> a 24x24 grid at patch 16.
        guidance_layers (Sequence[int]): 0-based blocks whose outputs are returned as
            intermediates, e.g. (3, 7) for ViT-B/16 (official cat_seg_model.py).
        dense_residual (str): 'cls' or 'token', see above. Defaults to 'cls'.
        vpt_prompts (int): Learnable prompt tokens per block, VPT-deep (Jia et al., ECCV 2022;
            v1 Table 3; official PROMPT_LENGTH): blocks ``0 .. vpt_depth - 1`` each see their
            own prompts after the CLS token, in place of the previous block's; later blocks
            carry the last ones; all are dropped before the outputs, so the patch grid and the
            output shapes are unchanged. 0 (default) disables them; ``finetune_policy='vpt'``
            trains only them.
        vpt_depth (int, optional): Blocks with their own prompts (official PROMPT_DEPTH), 1 to
            the number of blocks. None (default): all but the last, whose dense form mixes no
            tokens, so its prompts could not change an output.
        with_cp (bool): Activation checkpointing of every block in training (mmpretrain's
            convention): activations are recomputed in the backward pass instead of kept,
            trading time for memory; gradients are unchanged. Defaults to False.
        pretrained (str, optional): Local CLIP weights (open_clip / OpenAI state dict, full model
            or visual tower), loaded with ``weights_only=True``. Defaults to None.
        init_cfg (dict, optional): Initialisation config. Defaults to None.

    Examples:
        >>> encoder = CATSegCLIPImageEncoder('vit-b16', img_size=384, guidance_layers=(3, 7))
        >>> feats = encoder(torch.randn(1, 3, 384, 384))
        >>> feats.dense.shape, feats.intermediates[0].shape
        (torch.Size([1, 512, 24, 24]), torch.Size([1, 768, 24, 24]))
    """

    def __init__(self,
                 arch: Union[str, dict] = 'vit-b16',
                 img_size: int = 384,
                 guidance_layers: Sequence[int] = (3, 7),
                 dense_residual: str = 'cls',
                 vpt_prompts: int = 0,
                 vpt_depth: Optional[int] = None,
                 with_cp: bool = False,
                 pretrained: Optional[str] = None,
                 init_cfg: OptConfigType = None):
        super().__init__(init_cfg=init_cfg)
        cfg = resolve_arch(arch, 'vision')
        if dense_residual not in DENSE_RESIDUALS:
            raise ValueError(f'dense_residual={dense_residual!r} is not one of '
                             f'{list(DENSE_RESIDUALS)}')
        bad = [i for i in guidance_layers if not 0 <= i < cfg['num_layers']]
        if bad:
            raise ValueError(f'guidance_layers {bad} are outside the {cfg["num_layers"]} blocks of '
                             f'the CLIP image encoder (0-based)')
        if img_size % cfg['patch_size']:
            raise ValueError(f'img_size={img_size} is not a multiple of the patch size '
                             f'{cfg["patch_size"]}')
        self.img_size = (img_size, img_size)
        self.patch_size = cfg['patch_size']
        self.guidance_layers = tuple(guidance_layers)
        self.dense_residual = dense_residual
        self.with_cp = with_cp

        vit = VisionTransformer(
            image_size=cfg['pretrain_img_size'], patch_size=cfg['patch_size'],
            width=cfg['embed_dims'], layers=cfg['num_layers'], heads=cfg['num_heads'],
            mlp_ratio=cfg['mlp_ratio'], output_dim=cfg['output_dims'],
            act_layer=activation(cfg['act']))
        # Adopt the tower's members so parameter names are OpenAI's visual keys.
        self.conv1, self.class_embedding = vit.conv1, vit.class_embedding
        self.positional_embedding, self.ln_pre = vit.positional_embedding, vit.ln_pre
        self.transformer = split_qkv_(vit.transformer)
        self.ln_post, self.proj = vit.ln_post, vit.proj
        self.pretrain_grid = vit.grid_size
        if vpt_prompts < 0:
            raise ValueError(f'vpt_prompts={vpt_prompts} must be >= 0')
        vpt_depth = cfg['num_layers'] - 1 if vpt_depth is None else vpt_depth
        if vpt_prompts and not 1 <= vpt_depth <= cfg['num_layers']:
            raise ValueError(f'vpt_depth={vpt_depth} must be between 1 and the '
                             f'{cfg["num_layers"]} blocks of the CLIP image encoder')
        self.vpt_prompts = None
        if vpt_prompts:
            # VPT's initialisation: uniform in +-sqrt(6 / (3 * patch**2 + width)).
            bound = math.sqrt(6 / (3 * cfg['patch_size'] ** 2 + cfg['embed_dims']))
            self.vpt_prompts = nn.Parameter(torch.empty(
                vpt_depth, vpt_prompts, cfg['embed_dims']).uniform_(-bound, bound))
        if pretrained is not None:
            load_clip_tower(self, load_weights_file(pretrained), 'visual', pretrained)

    def positional_table(self, grid: Tuple[int, int]) -> Tensor:
        """Positional embeddings for a ``grid`` of patches, (1 + H * W, W).

        The stored table's grid is resized bicubically (align_corners=False) on every call,
        the CLS position kept, as the release does (fixture README §4).
        """
        if tuple(grid) == tuple(self.pretrain_grid):
            return self.positional_embedding
        cls_pos, patch_pos = self.positional_embedding[:1], self.positional_embedding[1:]
        patch_pos = patch_pos.T.reshape(1, -1, *self.pretrain_grid)
        patch_pos = F.interpolate(patch_pos, size=grid, mode='bicubic', align_corners=False)
        return torch.cat([cls_pos, patch_pos.flatten(2)[0].T])

    def forward(self, inputs: Tensor) -> CLIPImageFeatures:
        """Dense features of normalised images.

        Args:
            inputs (Tensor): (B, 3, H_img, W_img), sides multiples of the patch size.

        Returns:
            CLIPImageFeatures: dense (B, C, H, W) and intermediates (B, W, H, W).
        """
        x = self.conv1(inputs)
        grid = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)                                  # (B, H*W, W)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = self.ln_pre(torch.cat([cls, x], dim=1) + self.positional_table(grid))
        intermediates = []
        for index in range(len(self.transformer.resblocks)):
            x = self._run_block(index, x)
            if index in self.guidance_layers:
                intermediates.append(self._to_map(self._drop_prompts(x), grid))
        dense = self.ln_post(self._drop_prompts(x)) @ self.proj
        return CLIPImageFeatures(self._to_map(dense, grid), tuple(intermediates))

    def _run_block(self, index: int, x: Tensor) -> Tensor:
        """Block ``index`` on tokens (B, 1 + H*W, W), checkpointed when ``with_cp`` trains."""
        return checkpointed(self.with_cp and self.training, self._block, index, x)

    def _block(self, index: int, x: Tensor) -> Tensor:
        """Block ``index`` on tokens (B, 1 + H*W, W), after block 0 with the carried prompts
        (B, 1 + prompts + H*W, W); its own prompts, if it has any, replace the carried ones."""
        blocks = self.transformer.resblocks
        if self.vpt_prompts is not None and index < len(self.vpt_prompts):
            carried = self.vpt_prompts.shape[1] if index else 0
            prompts = self.vpt_prompts[index].to(x.dtype).expand(x.shape[0], -1, -1)
            x = torch.cat([x[:, :1], prompts, x[:, 1 + carried:]], dim=1)
        if index == len(blocks) - 1:   # token-wise: prompts cannot change the patch tokens
            return self._dense_block(blocks[index], x)
        return blocks[index](x)

    def _drop_prompts(self, tokens: Tensor) -> Tensor:
        """Tokens (B, 1 + prompts + H*W, W) as every block leaves them -> (B, 1 + H*W, W)."""
        if self.vpt_prompts is None:
            return tokens
        return torch.cat([tokens[:, :1], tokens[:, 1 + self.vpt_prompts.shape[1]:]], dim=1)

    def _dense_block(self, block: nn.Module, x: Tensor) -> Tensor:
        """The last block without attention: values projected, plus the chosen residual."""
        attn = block.attn
        values = attn.out_proj(attn.project(block.ln_1(x), 'v'))
        residual = x[:, :1] if self.dense_residual == 'cls' else x
        x = residual + block.ls_1(values)
        return x + block.ls_2(block.mlp(block.ln_2(x)))

    @staticmethod
    def _to_map(tokens: Tensor, grid: Tuple[int, int]) -> Tensor:
        """Tokens (B, 1 + H*W, C) -> map (B, C, H, W), CLS dropped, row-major patches."""
        return tokens[:, 1:].transpose(1, 2).reshape(tokens.shape[0], -1, *grid)
