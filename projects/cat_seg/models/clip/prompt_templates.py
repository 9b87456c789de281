"""Prompt template sets, as data: each '{}' is replaced by a class name."""
from typing import Dict, List, Sequence, Tuple, Union

from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

from ...vocabulary import prompt_name

PROMPT_TEMPLATES: Dict[str, Tuple[str, ...]] = {
    # CVPR 2024 release (official cat_seg_predictor.py, PROMPT_ENSEMBLE_TYPE "single").
    'release': ('A photo of a {} in the scene', ),
    # Paper v1 §4.1: the 80 templates CLIP used for ImageNet (Radford et al. 2021), as shipped by
    # open_clip (zero_shot_metadata.OPENAI_IMAGENET_TEMPLATES, callables turned into '{}' strings).
    'imagenet80': tuple(template('{}') for template in OPENAI_IMAGENET_TEMPLATES),
}


def resolve_templates(templates: Union[str, Sequence[str]]) -> Tuple[str, ...]:
    """Templates of a named set, or the given list; each must contain exactly one '{}'."""
    if isinstance(templates, str):
        if templates not in PROMPT_TEMPLATES:
            raise ValueError(f'templates={templates!r} is not one of {list(PROMPT_TEMPLATES)}; '
                             "use one of these or a list of strings with one '{}'")
        return PROMPT_TEMPLATES[templates]
    bad = [t for t in templates if not isinstance(t, str) or t.count('{}') != 1]
    if bad or not templates:
        raise ValueError(f"every prompt template needs exactly one '{{}}' and there must be at "
                         f'least one; got {list(templates)!r}')
    return tuple(templates)


def build_prompts(class_names: Sequence[str], templates: Sequence[str],
                  synonym_rule: str) -> List[str]:
    """Prompts class-major: prompt ``t * P + p`` is class t in template p."""
    return [template.format(prompt_name(name, synonym_rule))
            for name in class_names for template in templates]
