"""Installs wssdl_d2, a Detectron2 extension for joint weakly and semi-supervised mass detection.

Detectron2 and torch are installed by tools/setup_env.sh (Detectron2 is not on PyPI), so they are not listed in
install_requires; requirements.txt holds the rest.
"""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def read_requirements(name):
    lines = (HERE / name).read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


setup(
    name="wssdl_d2",
    version="0.1.0",
    description="Joint weakly and semi-supervised detection of breast-ultrasound masses on Detectron2",
    python_requires=">=3.11",  # tools/setup_env.sh builds 3.11; requirements.lock is resolved for 3.11
    packages=find_packages(include=["wssdl_d2", "wssdl_d2.*"]),
    include_package_data=True,
    # the checkpoint index and the models shipped with it (weights-only safetensors, their config and calibration)
    package_data={"wssdl_d2": ["model_zoo/*.json", "model_zoo/trained/*/*/*.safetensors",
                               "model_zoo/trained/*/*/*.yaml", "model_zoo/trained/*/*/*.json"]},
    install_requires=read_requirements("requirements.txt"),
    # label-studio: the REST client of the Label Studio loop (wssdl_d2.active.label_studio); the server itself
    # (label-studio) pins versions that clash with ours and goes into .venv-ls (tools/setup_env.sh --label-studio).
    extras_require={"test": read_requirements("requirements-test.txt"), "label-studio": ["requests>=2.25"]},
)
