"""The smallest Django settings that serve djapp.urls."""

SECRET_KEY = "servercov-scenario-not-a-secret"
DEBUG = True  # runserver then logs that its autoreloader watches
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "djapp.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
