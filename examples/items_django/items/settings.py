"""Settings of the items example: servercov's middleware first in MIDDLEWARE.

Without SERVERCOV_TOKEN (production) Django drops the middleware at start-up.
"""

SECRET_KEY = "an example, not a secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "items.urls"
WSGI_APPLICATION = "items.wsgi.application"
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, dict] = {}
MIDDLEWARE = [
    "nose2_servercov.django.ServercovMiddleware",
    "django.middleware.common.CommonMiddleware",
]
