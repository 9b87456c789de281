"""A regular `pip install .` ships configs/ in the package: `python -m cat_seg.configs` names the
installed copy, and a config in another project inherits from it and builds CAT-Seg."""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from cat_seg.configs import config_dir
from catseg_testing import REPO_ROOT

pytestmark = pytest.mark.slow  # pip installs the package

# What setup.py, setup.cfg and MANIFEST.in build from (the sdist's content).
SOURCES = ('setup.py', 'setup.cfg', 'pyproject.toml', 'MANIFEST.in', 'README.md', 'projects',
           'configs')
NOT_SOURCES = shutil.ignore_patterns('__pycache__', '*.pyc', '*.egg-info', 'build')


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    """The package installed into a --target directory from a copy of the checkout (the build
    writes into its source tree, which must not be the shared one): offline, without
    dependencies, with the environment's setuptools."""
    root = tmp_path_factory.mktemp('install')
    source = root / 'source'
    source.mkdir()
    for name in SOURCES:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, source / name, ignore=NOT_SOURCES)
        else:
            shutil.copy2(REPO_ROOT / name, source / name)
    result = subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '--no-deps', '--no-build-isolation', '--no-index',
         '--no-compile', '--quiet', '--target', str(root / 'site'), str(source)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return root / 'site'


def run_installed(args, site, cwd):
    """Python with the installed copy first on the path (before the editable checkout)."""
    env = dict(os.environ, PYTHONPATH=str(site))
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def relative_files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob('*')
                  if p.is_file() and '__pycache__' not in p.parts)


def test_python_m_cat_seg_configs_prints_the_installed_copy(site, tmp_path):
    printed = run_installed(['-m', 'cat_seg.configs'], site, tmp_path).strip().splitlines()[-1]
    assert printed == str(site / 'cat_seg' / '.mim' / 'configs')
    assert relative_files(site / 'cat_seg' / '.mim' / 'configs') == relative_files(
        REPO_ROOT / 'configs')


BUILD = textwrap.dedent('''
    import sys
    from mmengine.config import Config
    from mmengine.utils import import_modules_from_strings
    cfg = Config.fromfile(sys.argv[1])
    import_modules_from_strings(**cfg.custom_imports)
    import cat_seg
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules()
    model = MODELS.build(cfg.model)
    print(cat_seg.__file__, type(model).__name__, len(model.decode_head.layers),
          cfg.train_cfg.max_iters)
''')


def test_another_project_inherits_the_installed_configs(site, tmp_path):
    installed = site / 'cat_seg' / '.mim' / 'configs'
    project = tmp_path / 'my_project' / 'configs'
    project.mkdir(parents=True)
    (project / 'my_catseg.py').write_text(textwrap.dedent(f'''
        _base_ = ['{installed / 'misc' / 'catseg_tiny_synthetic.py'}']
        model = dict(decode_head=dict(num_layers=2))
        train_cfg = dict(max_iters=1000)
    '''))
    printed = run_installed(['-c', BUILD, str(project / 'my_catseg.py')], site, tmp_path)
    # The installed package, our model with the project's override, the project's schedule.
    assert printed.split()[-4:] == [str(site / 'cat_seg' / '__init__.py'), 'CATSeg', '2', '1000']


def test_editable_install_uses_the_checkouts_configs():
    assert config_dir() == REPO_ROOT / 'configs'


def test_missing_configs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no CAT-Seg configs in '.*/cat_seg/\.mim/"
                                                r"configs' \(a regular install\) or"):
        config_dir(tmp_path / 'site' / 'cat_seg')
