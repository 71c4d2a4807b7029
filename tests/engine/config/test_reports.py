"""The table of report kinds: the config, the check before a start and the reporting read it.

Real coverage data of a real source file, real reports written by coverage's
API; no mock of coverage.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest
from coverage import CoverageData
from coverage.config import CoverageConfig

from nose2_servercov.engine import data
from nose2_servercov.engine.config import KEYS_BY_NAME, REPORTS, load_config, preflight
from nose2_servercov.engine.config.reports import KINDS, TERMINAL, place_line
from nose2_servercov.errors import DataError, ServerStartError

PLACES = {"html": "[html]\ndirectory = out/html\n", "xml": "[xml]\noutput = out/cov.xml\n",
          "json": "[json]\noutput = out/cov.json\n", "lcov": "[lcov]\noutput = out/cov.lcov\n"}
WITH_PLACE = [name for name, kind in KINDS.items() if kind.place_attribute]


def project(tmp_path: Path, servercov: str = "") -> Path:
    """Write an rcfile naming every report's place under out/, and a measured app.py."""
    (tmp_path / "app.py").write_text("a = 1\nif a:\n    b = 2\nelse:\n    c = 3\n")
    rcfile = tmp_path / ".apirc"
    rcfile.write_text("[run]\nparallel = True\n\n" + "".join(PLACES.values())
                      + "\n[servercov]\ncommand = {python} -m app --port {port}\n" + servercov)
    return rcfile


def process_file(settings: CoverageConfig, folder: Path, pid: int) -> str:
    """Write the data file a server process would have saved: app.py lines 1-3 ran."""
    name = f"{settings.data_file}.host.pid{pid}.Xtestx"
    found = CoverageData(name)
    found.add_lines({str(folder / "app.py"): [1, 2, 3]})
    found.write()
    return name


def test_the_config_accepts_exactly_the_kinds_of_the_table():
    assert tuple(KINDS) == REPORTS
    meaning = KEYS_BY_NAME["reports"].meaning
    assert all(name in meaning for name in KINDS)


@pytest.mark.parametrize("name", WITH_PLACE)
def test_each_place_is_a_coverage_setting_made_absolute_for_the_server(tmp_path, name):
    kind = KINDS[name]
    assert hasattr(CoverageConfig(), kind.place_attribute)
    section, key = kind.setting.removeprefix("[").split("] ")
    assert f"[{section}]\n{key} = " in PLACES[name]
    settings = data.server_settings(project(tmp_path))
    place = kind.place(settings)
    assert place is not None and place.is_absolute()
    assert place.parent == tmp_path / "out"


def test_every_kind_is_written_where_its_line_says(tmp_path):
    settings = data.server_settings(project(tmp_path))
    files = [process_file(settings, tmp_path, pid) for pid in (11, 12)]
    out = io.StringIO()
    result = data.combine_and_report(settings, tuple(KINDS), out)
    assert result.combined == files and result.total == pytest.approx(75.0)
    assert [name for name, _ in result.outputs] == list(KINDS)
    for name, place in result.outputs:
        if KINDS[name].place_attribute:
            assert Path(place).is_file(), name
        else:
            assert place == TERMINAL
    assert str(tmp_path / "out" / "html" / "index.html") in dict(result.outputs).values()
    assert result.place_lines() == [f"{name} report: {place}" for name, place in result.outputs
                                    if name in WITH_PLACE]
    # term, then term-missing naming the line not run (the file's name: relative to the cwd)
    app_lines = [line.split()[1:] for line in out.getvalue().splitlines() if "app.py" in line]
    assert app_lines == [["4", "1", "75%"], ["4", "1", "75%", "5"]]


def test_the_terminal_has_no_place_line():
    assert place_line("term", TERMINAL) is None
    assert place_line("xml", "/x/cov.xml") == "xml report: /x/cov.xml"


def test_a_place_that_cannot_be_written_is_named_and_the_data_kept(tmp_path):
    settings = data.server_settings(project(tmp_path))
    process_file(settings, tmp_path, 11)
    (tmp_path / "out").write_text("in the way")  # coverage cannot create out/html
    with pytest.raises(DataError) as caught:
        data.combine_and_report(settings, ("html", "term"), io.StringIO())
    html = tmp_path / "out" / "html"
    assert str(caught.value) == (
        f"the html report could not be written to {html / 'index.html'} (Not a directory: "
        f"{html}); the combined data is kept in {settings.data_file}")
    kept = CoverageData(settings.data_file)
    kept.read()
    assert kept.lines(str(tmp_path / "app.py")) == [1, 2, 3]


@pytest.mark.parametrize("name", WITH_PLACE)
def test_the_check_before_start_names_the_setting_of_a_place(tmp_path, name):
    rcfile = project(tmp_path, servercov=f"reports = term, {name}\n")
    config = load_config(rcfile)
    assert config.reports == ("term", name)
    (tmp_path / "out").write_text("in the way")
    with pytest.raises(ServerStartError) as caught:
        preflight.check_before_start(config, data.server_settings(rcfile))
    place = KINDS[name].place(data.server_settings(rcfile))
    assert str(caught.value) == (f"{rcfile}: {KINDS[name].setting}: the {name} report cannot "
                                 f"be written to {place}: {tmp_path / 'out'} is not a folder")


def test_the_terminal_kinds_need_no_place(tmp_path):
    settings = data.server_settings(project(tmp_path))
    for name in ("term", "term-missing"):
        assert KINDS[name].place(settings) is None
        assert KINDS[name].shown_place(settings) == TERMINAL


def test_a_folder_report_shows_its_entry_file(tmp_path):
    settings = data.server_settings(project(tmp_path))
    html = KINDS["html"]
    assert html.folder and not any(KINDS[name].folder for name in WITH_PLACE if name != "html")
    assert html.shown_place(settings) == os.path.join(tmp_path, "out", "html", "index.html")
    assert html.setting == "[html] directory"


# --- the html report's title names the server's command (issue 24) ----------------------------

SERVER_COMMAND = [sys.executable, "-m", "sample_api.server", "--host", "127.0.0.1", "--port",
                  "5001"]


def test_the_html_title_names_the_command_unless_the_rcfile_sets_one(tmp_path):
    rcfile = project(tmp_path)
    settings = data.server_settings(rcfile)
    assert settings.html_title == "Coverage report"  # coverage's default, until the title
    data.settings.title_the_html_report(settings, rcfile, SERVER_COMMAND)
    assert settings.html_title == ("Server coverage: python -m sample_api.server --host "
                                   "127.0.0.1 --port 5001")


@pytest.mark.parametrize(("name", "text"), [
    (".apirc", "[html]\ntitle = Coverage report\n"),  # coverage's default, chosen by the user
    (".apirc", "[coverage:html]\ntitle = My API\n"),
    ("setup.cfg", "[coverage:html]\ntitle = My API\n"),
    ("pyproject.toml", "[tool.coverage.html]\ntitle = 'My API'\n"),
])
def test_a_title_set_in_the_rcfile_is_kept(tmp_path, name, text):
    rcfile = tmp_path / name
    rcfile.write_text(text)
    settings = data.server_settings(rcfile)
    chosen = settings.html_title
    data.settings.title_the_html_report(settings, rcfile, SERVER_COMMAND)
    assert settings.html_title == chosen
    assert chosen in ("Coverage report", "My API")


def test_a_long_command_is_shortened_in_the_title(tmp_path):
    rcfile = project(tmp_path)
    settings = data.server_settings(rcfile)
    data.settings.title_the_html_report(settings, rcfile, ["gunicorn", *["--workers 4"] * 40])
    assert len(settings.html_title) <= 100
    assert settings.html_title.startswith("Server coverage: gunicorn '--workers 4' ")
    assert settings.html_title.endswith(" …")
