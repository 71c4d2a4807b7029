"""Packaging for nose2-servercov (``pip install .`` or ``pip install -e .``)."""

from pathlib import Path

from setuptools import find_packages, setup

SERVERS = ["flask>=2.2", "gunicorn>=21", "waitress>=2.1"]
TOOLS = ["pytest>=8", "pytest-timeout", "ruff"]
# FastAPI/ASGI, Django, gevent and eventlet: the helpers import them lazily, the
# tests and examples run them (httpx for Starlette's TestClient).
FRAMEWORKS = ["fastapi>=0.100", "httpx", "uvicorn>=0.30", "hypercorn>=0.16", "django>=4.2",
              "gevent>=23", "eventlet>=0.35", "packaging"]
# examples/browser: driven in Debian's Chromium (no browser download)
BROWSER = ["selenium>=4.11", "playwright>=1.40"]

setup(
    name="nose2-servercov",
    version="0.1.0",
    description="Code coverage of a live server, measured while nose2 (or any test "
                "command) tests it over HTTP",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["nose2_servercov", "nose2_servercov.*"]),
    package_data={"nose2_servercov": ["bootstrap/sitecustomize.py"]},
    install_requires=["coverage>=7.10.4", "nose2", "requests"],
    extras_require={
        "sample": ["flask>=2.2"],
        "uwsgi": ["uwsgi>=2.0.22"],
        "frameworks": FRAMEWORKS,
        "browser": BROWSER,
        "test": [*SERVERS, *FRAMEWORKS, *BROWSER, "uwsgi>=2.0.22", *TOOLS],
    },
    entry_points={"console_scripts": ["servercov = nose2_servercov.__main__:run"]},
    classifiers=[
        "Framework :: Flask",
        "Programming Language :: Python :: 3",
        "Topic :: Software Development :: Testing",
    ],
)
