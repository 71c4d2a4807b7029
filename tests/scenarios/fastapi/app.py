"""The servers' entry point, outside the measured source (webapp/): ``app:app``."""

from webapp import create_app

app = create_app()
