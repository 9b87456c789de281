"""Where CAT-Seg's configs are, to inherit from: ``python -m cat_seg.configs`` prints it.

A regular install ships them in the package (``cat_seg/.mim/configs``, copied by setup.py, as
MMSeg's wheel ships ``mmseg/.mim/configs``); an editable install or a checkout uses the
repository's ``configs/``.
"""
from pathlib import Path
from typing import Optional

PACKAGE_DIR = Path(__file__).resolve().parent


def config_dir(package_dir: Path = PACKAGE_DIR) -> Path:
    """The directory holding ``catseg_vitb.py``, ``_base_/``, ``custom/`` and the others.

    Args:
        package_dir (Path): The ``cat_seg`` package directory. Defaults to this one.

    Raises:
        FileNotFoundError: If neither an installed copy nor a checkout's ``configs/`` is there.
    """
    installed, checkout = package_dir / '.mim' / 'configs', package_dir.parents[1] / 'configs'
    for candidate in (installed, checkout):
        if (candidate / 'catseg_vitb.py').is_file():
            return candidate
    raise FileNotFoundError(f'no CAT-Seg configs in {str(installed)!r} (a regular install) or '
                            f'{str(checkout)!r} (a checkout); reinstall with `pip install .` '
                            'from a checkout, which copies them into the package')


def sliding_test_cfg() -> dict:
    """The official sliding-window evaluation (``model.test_cfg``), as defined once in
    ``benchmarks/_sliding.py``; benchmark configs, tools and the inferencer all read it."""
    from mmengine.config import Config
    path = config_dir() / 'benchmarks' / '_sliding.py'
    return Config.fromfile(str(path)).sliding_test_cfg.to_dict()


def mode_test_cfg(mode: str) -> dict:
    """``model.test_cfg`` of an inference ``mode``: 'slide' is the official sliding-window
    protocol (:func:`sliding_test_cfg`), 'whole' one view per image."""
    if mode not in ('whole', 'slide'):
        raise ValueError(f"mode={mode!r} is not one of ['whole', 'slide']")
    return sliding_test_cfg() if mode == 'slide' else dict(mode='whole')


def model_config(path: str, mode: Optional[str] = None, cfg_options: Optional[dict] = None):
    """The ``model`` of config file ``path`` with ``cfg_options`` merged, inferring in ``mode``:
    'whole', 'slide' (the official sliding-window protocol) or None (as configured)."""
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if mode is not None:
        cfg.model.test_cfg = mode_test_cfg(mode)
    return cfg.model


if __name__ == '__main__':
    print(config_dir())
