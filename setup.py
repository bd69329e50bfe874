"""kmix: major-class feature mixing for class-imbalanced deep learning."""

import pathlib
import re

import setuptools

HERE = pathlib.Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"',
    (HERE / "kmix" / "__init__.py").read_text(),
    re.M,
).group(1)

setuptools.setup(
    name="kmix",
    version=VERSION,
    description=(
        "Keras 3 major-class feature mixing (Procrustean training) and "
        "imbalanced-data tooling."
    ),
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=setuptools.find_packages(include=["kmix", "kmix.*"]),
    python_requires=">=3.10",
    install_requires=[
        "keras>=3.10,<3.16",  # tested range: kmix/_keras_compat.py TESTED_KERAS
        "numpy>=1.26",
        "absl-py>=2.0",
        "keras-tuner[bayesian]>=1.4.7",
        "tensorflow-datasets>=4.9.4",
        # kmix never imports it, but tensorflow-datasets does (4.9.10:
        # `DatasetBuilder.code_path`, read to find a builder's checksums
        # when it downloads and prepares data) while declaring it only for
        # Python < 3.9; without it `kmix.data.load` of a tfds dataset that
        # needs preparing fails with ModuleNotFoundError.
        "importlib_resources",
        "matplotlib>=3.7",
        # keras.callbacks.TensorBoard (written by kmix.experiment) needs it.
        "tensorboard>=2.16",
    ],
    extras_require={
        "cpu": ["tensorflow-cpu==2.21.0"],
        "gpu": ["tensorflow[and-cuda]==2.21.0"],
        # The other Keras backends the model side runs on (KERAS_BACKEND=jax
        # or torch; tf.data stays the input pipeline, so TensorFlow is still
        # installed). CPU builds: jax[cpu] from PyPI; torch 2.13.0's CPU
        # wheel (a plain `torch` from PyPI pulls CUDA builds of several GB).
        "jax": ["jax[cpu]==0.10.2"],
        "torch": ["torch==2.13.0"],
        "dev": ["pytest>=8", "mkdocs>=1.6", "mkdocstrings[python]>=0.25",
                "pymdown-extensions>=10",
                # The docs theme (Material for MkDocs). 9.7.5 and later print
                # a banner about MkDocs 2.0 on every build (unless
                # NO_MKDOCS_2_WARNING is set), which the test command would
                # show as if something had failed; 9.6 prints nothing.
                "mkdocs-material>=9.6,<9.7",
                # Formatter and linter (ruff.toml; scripts/test.sh checks
                # both). Pinned to a minor version: ruff's formatting style
                # may change between minor versions.
                "ruff~=0.17.6"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
