"""Packaging for ``pip install .``: the one module ``xcc``, no dependencies.

The metadata lives here, not in ``pyproject.toml``, because the pip that Python 3.6 ships
(18.1) builds only through ``setup.py``, and the newest setuptools for 3.6 (59.6) does not
read a ``[project]`` table. The version is read from ``xcc.py`` as text: importing the
module to build it is avoided on purpose.
"""

import re

from setuptools import setup

with open("xcc.py", encoding="utf-8") as file:
    source = file.read()
with open("README.md", encoding="utf-8") as file:
    readme = file.read()

setup(
    name="xcc-py",
    version=re.search(r'^__version__ = "([^"]+)"$', source, re.MULTILINE).group(1),
    description=re.search(r'^"""(.+)$', source, re.MULTILINE).group(1),
    long_description=readme,
    long_description_content_type="text/markdown",
    keywords="xanadu xanadu-cloud quantum http-client",
    license="Apache-2.0",
    classifiers=[
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.6",
        "Programming Language :: Python :: 3.13",
        "Programming Language :: Python :: Implementation :: CPython",
        "Programming Language :: Python :: Implementation :: PyPy",
        "Operating System :: OS Independent",
    ],
    python_requires=">=3.6",
    # No console script: next to the original client, whose ``xcc`` package wins over this
    # module, it would fail with a traceback. ``python -m xcc`` is the command line.
    py_modules=["xcc"],
)
