import importlib


def test_package_imports_and_exposes_version():
    cat_seg = importlib.import_module('cat_seg')
    assert cat_seg.__version__ == '0.1.0'
