"""
greetd's distribution, built by setuptools from setup.cfg.

The package list is the one thing said here: greetd and its subpackages,
and of C{twisted}, Twisted's own package, only the namespace
C{twisted.plugins} with greetd's plugin file, C{greetd_plugin.py} (the only
module in this tree's C{twisted/plugins}), which goes beside Twisted's own
plugins where C{twistd} finds it.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["greetd", "greetd.*"]), "twisted.plugins"])
