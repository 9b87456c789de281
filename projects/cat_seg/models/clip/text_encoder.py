"""CLIP text encoder: class names x prompt templates -> embeddings (paper §3.2)."""
from collections import OrderedDict
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from mmseg.utils import OptConfigType
from open_clip.tokenizer import SimpleTokenizer
from open_clip.transformer import TextTransformer
from torch import Tensor

from ...vocabulary import SYNONYM_RULES, class_synonyms
from ...weights.clip_towers import load_clip_tower
from ...weights.files import load_weights_file
from ..checkpointing import checkpointed
from .arch_zoo import resolve_arch
from .attention import split_qkv_
from .image_encoder import activation
from .prompt_templates import build_prompts, resolve_templates

ClassName = Union[str, Sequence[str]]   # a name, or the synonyms of one class


@MODELS.register_module()
class CATSegCLIPTextEncoder(BaseModule):
    """open_clip's text tower with split q/k/v, prompt templates and an embedding cache.

    Parameter names are OpenAI's text keys (``token_embedding``, ``positional_embedding``,
    ``transformer.resblocks.*``, ``ln_final``, ``text_projection``).

    Cache: embeddings are kept per ``(classes, templates)`` for the current weights; the key
    includes every parameter's storage and version counter, so loading weights, an optimizer
    step or a device move invalidates it. It is bypassed while the text tower trains (grad
    enabled and a parameter requires grad). ``num_prompts_encoded`` counts prompts actually run.

    Args:
        arch (str | dict): A row of ``CLIP_ARCH_ZOO`` or a dict with the keys of ``TEXT_KEYS``.
        templates (str | Sequence[str]): A name of ``PROMPT_TEMPLATES`` ('release',
            'imagenet80') or templates with one '{}'. Defaults to 'release'.
        synonym_rule (str): How a name written "a, b" is prompted: 'first' (release: as "a"),
            'full' (as written) or 'average' (paper v1: the renormalised mean of "a" and "b",
            per template). Defaults to 'first'.
        pretrained (str, optional): Local CLIP weights, ``weights_only=True``. Defaults to None.
        encode_chunk_size (int): Prompts per transformer call, bounding memory. Defaults to 256.
        cache_size (int): Vocabularies kept in the cache. Defaults to 8.
        with_cp (bool): Activation checkpointing of every block in training (mmpretrain's
            convention): while the text tower trains (q/v fine-tuning), its activations for
            every prompt are recomputed in the backward pass instead of kept, trading time for
            memory; gradients are unchanged. Defaults to False.
        init_cfg (dict, optional): Initialisation config. Defaults to None.

    Examples:
        >>> encoder = CATSegCLIPTextEncoder('vit-b16')
        >>> encoder(['sky', 'tree']).shape
        torch.Size([2, 1, 512])
    """

    def __init__(self,
                 arch: Union[str, dict] = 'vit-b16',
                 templates: Union[str, Sequence[str]] = 'release',
                 synonym_rule: str = 'first',
                 pretrained: Optional[str] = None,
                 encode_chunk_size: int = 256,
                 cache_size: int = 8,
                 with_cp: bool = False,
                 init_cfg: OptConfigType = None):
        super().__init__(init_cfg=init_cfg)
        cfg = resolve_arch(arch, 'text')
        if synonym_rule not in SYNONYM_RULES:
            raise ValueError(f'synonym_rule={synonym_rule!r} is not one of {list(SYNONYM_RULES)}')
        if encode_chunk_size < 1:
            raise ValueError(f'encode_chunk_size={encode_chunk_size} must be at least 1')
        self.templates = resolve_templates(templates)
        self.synonym_rule = synonym_rule
        self.encode_chunk_size = encode_chunk_size
        self.cache_size = cache_size
        self.with_cp = with_cp
        self.context_length = cfg['context_length']
        self.tokenizer = SimpleTokenizer(context_length=cfg['context_length'])

        tower = TextTransformer(
            context_length=cfg['context_length'], vocab_size=cfg['vocab_size'],
            width=cfg['embed_dims'], heads=cfg['num_heads'], layers=cfg['num_layers'],
            mlp_ratio=cfg['mlp_ratio'], output_dim=cfg['output_dims'],
            act_layer=activation(cfg['act']))
        # Adopt the tower's members so parameter names are OpenAI's text keys.
        self.token_embedding = tower.token_embedding
        self.positional_embedding = tower.positional_embedding
        self.transformer = split_qkv_(tower.transformer)
        self.ln_final, self.text_projection = tower.ln_final, tower.text_projection
        self.register_buffer('attn_mask', tower.attn_mask, persistent=False)
        self._cache: 'OrderedDict[tuple, Tensor]' = OrderedDict()
        self.num_prompts_encoded = 0
        if pretrained is not None:
            load_clip_tower(self, load_weights_file(pretrained), 'text', pretrained)

    @property
    def num_prompts(self) -> int:
        """P, the number of templates."""
        return len(self.templates)

    def tokenize(self, class_names: Sequence[ClassName]) -> Tensor:
        """CLIP BPE tokens of every prompt, (N, context_length): class by class, each of its
        names (synonyms) in turn, template by template; N = T * P without synonyms.

        Prompts longer than the context are cut, keeping the end token (open_clip's rule).
        """
        names = [name for entry in self._entries(class_names) for name in entry]
        prompts = build_prompts(names, self.templates, self.synonym_rule)
        return self.tokenizer(prompts, context_length=self.context_length)

    def forward(self, class_names: Sequence[ClassName]) -> Tensor:
        """L2-normalised embeddings of every class in every template.

        Args:
            class_names (Sequence[str | Sequence[str]]): T classes. A class given as a list of
                synonyms is the renormalised mean of its synonyms' embeddings (per template),
                as is a name "a, b" under ``synonym_rule='average'``; other names follow
                ``synonym_rule``.

        Returns:
            Tensor: (T, P, C), in the weights' dtype unless the tower trains (then as autocast
            makes it).
        """
        entries = self._entries(class_names)
        trains = torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters())
        if trains:
            return self._encode(entries)
        key = self.cache_key(entries)
        if key not in self._cache:
            # Cached embeddings serve later calls of every precision: computed at the weights'
            # own, also under a caller's autocast.
            device_type = self.text_projection.device.type
            with torch.no_grad(), torch.autocast(device_type, enabled=False):
                self.remember(entries, self._encode(entries))
        self._cache.move_to_end(key)
        return self._cache[key]

    def cache_key(self, class_names: Sequence[ClassName]) -> tuple:
        """The in-memory cache key: classes, templates and the current weights' versions."""
        return (self._entries(class_names), self.templates, self.synonym_rule,
                tuple((p.data_ptr(), p._version) for p in self.parameters()))

    def remember(self, class_names: Sequence[ClassName], embeds: Tensor) -> None:
        """Store embeddings (T, P, C) computed elsewhere (e.g. a disk cache) for these weights."""
        self._cache[self.cache_key(class_names)] = embeds
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _entries(self, class_names: Sequence[ClassName]) -> Tuple[Tuple[str, ...], ...]:
        """Each class as the tuple of its synonyms: those given, else ``class_synonyms``."""
        if isinstance(class_names, str):
            raise TypeError(f'class_names must be a list, got the string {class_names!r:.80}')
        entries = tuple(class_synonyms(name, self.synonym_rule) if isinstance(name, str)
                        else tuple(name) for name in class_names)
        if not entries:
            raise ValueError('class_names is empty: give at least one class name')
        if not all(entry and all(isinstance(n, str) for n in entry) for entry in entries):
            raise TypeError(f'every class must be a str or a non-empty list of str, got '
                            f'{list(class_names)!r:.120}')
        return entries

    def _encode(self, entries: Tuple[Tuple[str, ...], ...]) -> Tensor:
        names = [name for entry in entries for name in entry]
        tokens = self.tokenize(entries).to(self.token_embedding.weight.device)
        embeds = torch.cat([self.encode_tokens(chunk)
                            for chunk in tokens.split(self.encode_chunk_size)])
        self.num_prompts_encoded += tokens.shape[0]
        embeds = embeds.view(len(names), self.num_prompts, -1)
        if len(names) == len(entries):
            return embeds
        groups = torch.repeat_interleave(torch.arange(len(entries)),
                                         torch.tensor([len(e) for e in entries]))
        summed = embeds.new_zeros(len(entries), *embeds.shape[1:]).index_add_(
            0, groups.to(embeds.device), embeds)
        return F.normalize(summed, dim=-1)

    def encode_tokens(self, tokens: Tensor) -> Tensor:
        """Normalised embeddings of token rows (N, L) -> (N, C), pooled at the end token.

        The causal mask makes every position blind to later ones, so positions after the
        longest prompt's end token cannot change the result and are not computed.
        """
        end = tokens.argmax(dim=-1)             # the end-of-text id is the largest id
        length = int(end.max()) + 1
        x = self.token_embedding(tokens[:, :length]) + self.positional_embedding[:length]
        mask = self.attn_mask[:length, :length]
        for block in self.transformer.resblocks:
            x = checkpointed(self.with_cp and self.training, block, x, None, None, mask)
        x = self.ln_final(x[torch.arange(x.shape[0], device=x.device), end])
        return F.normalize(x @ self.text_projection, dim=-1)
