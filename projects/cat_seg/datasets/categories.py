"""Category files: the vocabularies of A-847 and PC-459, derived from the downloads themselves.

A category file is a JSON list of ``{"name": str, "id": int}`` in training-id order: entry k is
class k of the converted label maps, ``id`` is the class's id in the raw download. The dataset
preparation scripts write one and accept one (``--categories``); the dataset classes read one.
"""
import hashlib
import json
from pathlib import Path
from typing import List, Sequence, TypedDict, Union

import numpy as np


class Category(TypedDict):
    name: str
    id: int


def load_categories(path: Union[str, Path]) -> List[Category]:
    """Read a category file, checking its shape so a wrong file fails here, not mid-evaluation."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'category file {str(path)!r} does not exist (the dataset '
                                'preparation scripts in tools/dataset_converters/ write it)')
    try:
        entries = json.loads(path.read_text(encoding='utf-8'))
    except json.JSONDecodeError as error:
        raise ValueError(f'category file {str(path)!r} is not valid JSON: {error}') from None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f'category file {str(path)!r} must hold a non-empty JSON list of '
                         '{"name": ..., "id": ...} objects')
    for position, entry in enumerate(entries):
        if (not isinstance(entry, dict) or not isinstance(entry.get('name'), str)
                or not entry['name'].strip() or type(entry.get('id')) is not int):
            raise ValueError(f'category file {str(path)!r}, entry {position}: expected '
                             f'{{"name": <non-empty string>, "id": <int>}}, got {entry!r}')
    ids = [entry['id'] for entry in entries]
    if len(set(ids)) != len(ids):
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f'category file {str(path)!r} repeats the ids {duplicates[:10]}')
    return [Category(name=entry['name'], id=entry['id']) for entry in entries]


def save_categories(categories: Sequence[Category], path: Union[str, Path]) -> None:
    """Write a category file (one entry per line, so diffs between versions stay readable)."""
    lines = ',\n'.join('  ' + json.dumps(dict(name=c['name'], id=c['id']), ensure_ascii=False)
                       for c in categories)
    Path(path).write_text(f'[\n{lines}\n]\n', encoding='utf-8')


def names_checksum(names: Sequence[str]) -> str:
    """A short fingerprint of an ordered vocabulary, to compare with other sources at a glance."""
    return hashlib.sha256('\n'.join(names).encode('utf-8')).hexdigest()[:12]


def remap_to_label_order(raw: np.ndarray, categories: Sequence[Category],
                         ignore_index: int = 65535) -> np.ndarray:
    """Raw ids (H, W) -> positions in ``categories`` (H, W) uint16; ids not listed -> ignore."""
    size = max(int(raw.max(initial=0)), max(c['id'] for c in categories)) + 1
    table = np.full(size, ignore_index, dtype=np.uint16)
    table[[c['id'] for c in categories]] = np.arange(len(categories), dtype=np.uint16)
    return table[raw]
