"""Packaging for nose2-servercov (``pip install .`` or ``pip install -e .``).

The metadata (name, version, description, license, URLs, classifiers, entry
points) is in pyproject.toml; this file computes the packages, the
dependencies and the extras.
"""

from setuptools import find_packages, setup

SERVERS = ["flask>=2.2", "gunicorn>=21", "waitress>=2.1"]
# FastAPI/ASGI, Django, gevent and eventlet: the helpers import them lazily, the
# tests and examples run them (httpx for Starlette's TestClient).
FRAMEWORKS = ["fastapi>=0.100", "httpx", "uvicorn>=0.30", "hypercorn>=0.16", "django>=4.2",
              "gevent>=23", "eventlet>=0.35", "packaging"]
# examples/browser: driven in Debian's Chromium (no browser download)
BROWSER = ["selenium>=4.11", "playwright>=1.40"]
# Workers behind the API (nose2_servercov.celery, nose2_servercov.rq import them
# lazily); the tests run them on a redis-server (.ci/install-worker-deps).
WORKERS = ["celery[redis]>=5.3", "rq>=1.16", "redis>=4.5"]
TOOLS = ["pytest>=8", "pytest-timeout", "pytest-xdist", "pytest-cov", "hypothesis", "mypy",
         "types-requests", "ruff"]

setup(
    packages=find_packages(include=["nose2_servercov", "nose2_servercov.*"]),
    package_data={"nose2_servercov": ["bootstrap/sitecustomize.py", "py.typed"]},
    install_requires=["coverage[toml]>=7.10.4", "nose2", "requests"],
    extras_require={
        "sample": ["flask>=2.2"],
        "pytest": ["pytest>=7"],
        "uwsgi": ["uwsgi>=2.0.22"],
        "frameworks": FRAMEWORKS,
        "browser": BROWSER,
        "workers": WORKERS,
        "bench": ["matplotlib"],  # bench/plot.py; the benchmarks themselves need wrk
        "test": [*SERVERS, *FRAMEWORKS, *BROWSER, *WORKERS, "uwsgi>=2.0.22", *TOOLS],
    },
)
