"""Settings of the scenario's Django project: no database, no apps, servercov's middleware."""

SECRET_KEY = "a scenario, not a secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "webapp.urls"
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, dict] = {}
MIDDLEWARE = ["nose2_servercov.django.ServercovMiddleware"]
USE_TZ = True
LOGGING_CONFIG = None  # a 500 is expected (/boom/): keep the server log short
