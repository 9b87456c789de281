"""Another project's config, outside this repository, inherits ours by path and builds CAT-Seg."""
import subprocess
import sys
import textwrap

import pytest

from catseg_testing import REPO_ROOT

pytestmark = pytest.mark.slow  # another project's build in a subprocess

# What another project's tool does: read the config (mmseg:: bases resolved through mmengine,
# before cat_seg is imported), then custom_imports, then build through mmseg's registry.
BUILD = textwrap.dedent('''
    import sys
    from mmengine.config import Config
    from mmengine.utils import import_modules_from_strings
    cfg = Config.fromfile(sys.argv[1])
    import_modules_from_strings(**cfg.custom_imports)
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules()
    import torch
    with torch.device('meta'):   # the structure is what is checked: no memory for weights
        model = MODELS.build(cfg.model)
    print(type(model).__name__, model.decode_head.layers.__len__(), cfg.train_cfg.max_iters,
          cfg.default_hooks.logger.interval)
''')


def test_out_of_repo_config_inherits_ours(tmp_path):
    project = tmp_path / 'my_project' / 'configs'
    project.mkdir(parents=True)
    config = project / 'my_catseg.py'
    config.write_text(textwrap.dedent(f'''
        _base_ = ['{REPO_ROOT / 'configs' / 'catseg_vitb.py'}']
        model = dict(decode_head=dict(num_layers=3))
        train_cfg = dict(max_iters=1000)
    '''))
    result = subprocess.run([sys.executable, '-c', BUILD, str(config)], capture_output=True,
                            text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    # Our model with the override, our schedule's override, and mmseg's default runtime (by
    # the mmseg:: base inside our config): logger interval from our schedule.
    assert result.stdout.split()[-4:] == ['CATSeg', '3', '1000', '50']
