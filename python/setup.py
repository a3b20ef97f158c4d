"""A platform wheel around a prebuilt library.

The package holds no Python extension module, only the atomik SQLite
extension (a C-ABI shared library that SQLite loads), so the wheel is tagged
for the platform (``py3-none-<platform>``), not for a Python ABI. The
library is copied into ``atomik_sqlite/`` by ``python/build-wheel.sh``
before the build.
"""

from setuptools import setup
from setuptools.dist import Distribution
try:  # setuptools 70.1 and later carry bdist_wheel themselves
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:
    from wheel.bdist_wheel import bdist_wheel


class PlatformWheel(bdist_wheel):
    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


class BinaryDistribution(Distribution):
    def has_ext_modules(self):
        return True


setup(cmdclass={"bdist_wheel": PlatformWheel}, distclass=BinaryDistribution)
