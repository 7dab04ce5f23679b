from setuptools import find_packages, setup

setup(
    name="visual_priors",
    version="0.1.0",
    description="How the text an LLM reads before it sees shapes its visual abilities: "
                "a JAX/Flax study suite from tiny CPU runs to pods.",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["visual_priors", "visual_priors.*"]),
    # The hand-labelled gold set that measures the labellers on real text.
    package_data={"visual_priors.data.labelling": ["gold/*.jsonl"]},
    install_requires=[
        "jax>=0.10,<0.11",
        "flax>=0.12,<0.13",
        "optax>=0.2.5,<0.3",
        "orbax-checkpoint>=0.12,<0.13",
        "grain>=0.2.12,<0.3",
        "ml_collections>=1.0,<2",
        "tensorflow-datasets>=4.9,<5",
        "sentencepiece>=0.2,<0.3",
        "numpy>=1.26,<3",
        "scipy>=1.11,<2",
        "matplotlib>=3.8,<4",
        "pillow>=10,<13",
        "tqdm>=4.66,<5",
        # 0.4.1 is the first whose numpy API reads BF16 tensors (as ml_dtypes.bfloat16).
        "safetensors>=0.4.1,<1",
        "tensorboardX>=2.6,<3",
        # The distilled segment labeller (hashed n-grams + logistic regression).
        "scikit-learn>=1.4,<2",
        # Scaling fits run many small L-BFGS problems: one BLAS thread each avoids spinning.
        "threadpoolctl>=3.1,<4",
        # Segment shards; grain reads them, and pins it on Linux only.
        "array-record>=0.5,<1",
        # Parquet corpora.
        "pyarrow>=14,<30",
        # Exported results and the analysis notebooks work on DataFrames.
        "pandas>=2.1,<4",
        # The starter corpus prepares sdist metadata in this environment (no build isolation,
        # so nothing is fetched); bdist_wheel is part of setuptools from 70.1 on.
        "setuptools>=70.1",
    ],
    extras_require={
        # xdist: `make test` runs test files on two processes (tests are dispatch-bound, so
        # a 2-core machine runs two files at once about 1.5x as fast as one).
        "test": ["pytest>=8,<10", "pytest-timeout>=2.3,<3", "pytest-xdist>=3.5,<4",
                 # The colabs/ notebooks are executed headless by the tests.
                 "nbformat>=5.9,<6", "nbclient>=0.10,<0.12", "ipykernel>=6.29,<8"],
        # torch pinned to the CPU build; checkpoint conversion only needs CPU tensors.
        # transformers 4.45 is the first whose Llama reads head_dim from config.json.
        "hf": ["torch==2.13.0", "transformers>=4.45,<6"],
        "seqio": ["seqio>=0.0.19,<0.1"],
        # The XManager launch script (launch/xm_launch.py); its local backend runs in the tests.
        "xm": ["xmanager>=0.8.5,<0.9"],
    },
    entry_points={"console_scripts": ["visual-priors=visual_priors.cli:main"]},
)
