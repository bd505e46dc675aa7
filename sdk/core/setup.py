"""stalela-core: the server's pure modules, built straight from ../../src (shared, never copied).

The packages are the server's own, so only an allow-list of their modules goes in: the fiscal core, the
jurisdictions' rules (not ``labels.py``, which needs the server's i18n), and the kit's canonical JSON,
money, clock (``rfc3339``) and ids (``new_id``) helpers, which the offline sealer uses; all four are
standard library only. tests/sdk/test_packaging.py checks that this closure imports nothing of the server.
"""
from setuptools import setup
from setuptools.command.build_py import build_py

ALL = None
MODULES = {
    "stalela": {"__init__", "errors"},
    "stalela.kit": {"__init__", "canonical", "clock", "ids", "money"},
    "stalela.fiscal": {"__init__"},
    "stalela.fiscal.core": ALL,
    "stalela.fiscal.jurisdictions": {"__init__", "ar", "ar_data", "arca_qr", "cuit", "drc"},
}


class CoreBuildPy(build_py):
    def find_package_modules(self, package, package_dir):
        wanted = MODULES[package]
        return [m for m in super().find_package_modules(package, package_dir) if wanted is None or m[1] in wanted]


setup(cmdclass={"build_py": CoreBuildPy})
