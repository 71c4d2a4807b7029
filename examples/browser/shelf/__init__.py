"""A small bookshelf: server-rendered pages, a form with validation, a JSON endpoint.

The example app of ``examples/browser``: browser suites click through it while
servercov measures it.  With ``SHELF_REQUEST_LOG`` set, every request that
reaches the app is appended to that file (method, path, query, headers, body),
so ``replay.py`` can send exactly the same requests through Flask's test client.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from typing import Any

from flask import Flask, abort, flash, jsonify, redirect, render_template, request, url_for

from nose2_servercov.flask import init_app

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOG_VARIABLE = "SHELF_REQUEST_LOG"
# Recomputed by whoever replays the request; everything else is kept.
UNLOGGED_HEADERS = {"host", "content-length"}
FIRST_YEAR, LAST_YEAR = 1450, 2100

SEED_BOOKS = [
    {"title": "The Left Hand of Darkness", "author": "Ursula K. Le Guin", "year": 1969},
    {"title": "Foundation", "author": "Isaac Asimov", "year": 1951},
    {"title": "Solaris", "author": "Stanisław Lem", "year": 1961},
]


def validate(form: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Return the book a form describes and the errors found in it, by field."""
    errors = {}
    title = form.get("title", "").strip()
    author = form.get("author", "").strip() or "Unknown"
    if not title:
        errors["title"] = "A title is required."
    year_text = form.get("year", "").strip()
    year = 0
    if not year_text.isdigit():
        errors["year"] = "The year must be a whole number, like 1965."
    else:
        year = int(year_text)
        if not FIRST_YEAR <= year <= LAST_YEAR:
            errors["year"] = f"The year must be between {FIRST_YEAR} and {LAST_YEAR}."
    return {"title": title, "author": author, "year": year}, errors


def create_app() -> Flask:
    """Return the bookshelf app, with servercov's control route when servercov runs it."""
    app = Flask(__name__, template_folder=os.path.join(HERE, "templates"),
                static_folder=os.path.join(HERE, "static"))
    # Flash messages live in a signed cookie; a fixed key lets a replay read
    # the cookies the browser sent.
    app.secret_key = "shelf-example-not-a-secret"
    books = [dict(book) for book in SEED_BOOKS]
    lock = threading.Lock()

    log_path = os.environ.get(LOG_VARIABLE)
    if log_path:
        open(log_path, "w").close()

        @app.before_request
        def log_request() -> None:
            entry = {
                "method": request.method,
                "path": request.path,
                "query": request.query_string.decode("latin-1"),
                "headers": [[name, value] for name, value in request.headers.items()
                            if name.lower() not in UNLOGGED_HEADERS],
                "body": base64.b64encode(request.get_data()).decode(),
            }
            with lock, open(log_path, "a") as log:
                log.write(json.dumps(entry) + "\n")

    @app.get("/health/")
    def health() -> str:
        return "ok"

    @app.get("/")
    def home() -> Any:
        return redirect(url_for("book_list"))

    @app.get("/books/")
    def book_list() -> str:
        return render_template("books.html", books=list(enumerate(books)))

    @app.get("/books/<int:number>/")
    def book_detail(number: int) -> str:
        if number >= len(books):
            abort(404)
        return render_template("book.html", book=books[number])

    @app.route("/books/new", methods=["GET", "POST"])
    def book_new() -> Any:
        if request.method == "GET":
            return render_template("new_book.html", book={}, errors={})
        book, errors = validate(request.form)
        if errors:
            return render_template("new_book.html", book=request.form, errors=errors), 400
        with lock:
            books.append(book)
        flash(f"Added “{book['title']}”.")
        return redirect(url_for("book_list"))

    @app.get("/stats/")
    def stats_page() -> str:
        return render_template("stats.html")

    @app.get("/api/stats")
    def api_stats() -> Any:
        years = [book["year"] for book in books]
        decades = sorted({year // 10 * 10 for year in years})
        return jsonify(count=len(books), oldest=min(years), newest=max(years),
                       decades=decades)

    @app.get("/api/books")
    def api_books() -> Any:
        decade = request.args.get("decade", "")
        if not decade.isdigit():
            return jsonify(error="decade must be a year like 1960"), 400
        start = int(decade)
        titles = [book["title"] for book in books if start <= book["year"] < start + 10]
        return jsonify(decade=start, titles=titles)

    @app.get("/books.csv")
    def export_csv() -> Any:  # no suite downloads it: the report shows it unreached
        rows = ["title,author,year"] + [f"{b['title']},{b['author']},{b['year']}" for b in books]
        return "\n".join(rows) + "\n", 200, {"Content-Type": "text/csv"}

    return init_app(app)
