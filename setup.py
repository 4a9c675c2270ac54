"""Package metadata comes from settings.ini (nbdev 2's convention); this file only turns it into a setuptools call."""
from configparser import ConfigParser
from pathlib import Path

import setuptools

cfg = ConfigParser(delimiters=["="])
cfg.read(Path(__file__).parent / "settings.ini", encoding="utf-8")
cfg = cfg["DEFAULT"]


def _reqs(key):
    return cfg.get(key, "").split()


setuptools.setup(
    name=cfg["lib_name"],
    version=cfg["version"],
    description=cfg["description"],
    long_description=(Path(__file__).parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    author=cfg["author"],
    author_email=cfg["author_email"],
    license="Apache-2.0",
    url=cfg["git_url"],
    keywords=cfg["keywords"].split(),
    project_urls={"Source": cfg["git_url"]},
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Science/Research",
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
    python_requires=f">={cfg['min_python']}",
    packages=setuptools.find_packages(include=[cfg["lib_name"], f"{cfg['lib_name']}.*"]),
    include_package_data=True,
    package_data={cfg["lib_name"]: ["configs/*.yaml", "weights/*"]},
    install_requires=_reqs("requirements"),
    extras_require={
        "dev": _reqs("dev_requirements") + _reqs("docs_requirements"),
        "lab": _reqs("lab_requirements"),
        "docs": _reqs("docs_requirements"),
        "export": _reqs("export_requirements"),
        "openvino": _reqs("openvino_requirements"),
        "pyiqa": _reqs("pyiqa_requirements"),
        "slurm": _reqs("slurm_requirements"),
    },
    entry_points={
        "console_scripts": cfg.get("console_scripts", "").split(),
        "nbdev": [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"],
        # pyiqa's plugin group: pyiqa calls this the first time it queries its registries (see eat.pyiqa_metric)
        "pyiqa.archs": [f"eat={cfg['lib_path']}.pyiqa_metric:pyiqa_plugin"],
    },
    zip_safe=False,
)
