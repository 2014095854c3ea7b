"""Packaging detail pyproject.toml cannot express: ship the top-level recipes/ inside the wheel."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["tasktool*"]), "tasktool.recipes"],
    package_dir={"tasktool.recipes": "recipes"},
    package_data={"tasktool.recipes": ["*.yaml"], "tasktool": ["data/*"]},
)
