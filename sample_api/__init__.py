"""Sample Flask + SQLite API used to demonstrate and test nose2-servercov.

It mirrors the recipe in the original question: versioned JSON routes behind an
auth header, tested over HTTP against a live server whose coverage must be measured.
"""

from __future__ import annotations

from sample_api.app import create_app

__all__ = ["create_app"]
