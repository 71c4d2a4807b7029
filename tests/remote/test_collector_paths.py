"""Pure logic of the remote agents and the collector: keys, addresses, tokens, [paths] advice."""

from __future__ import annotations

import textwrap

import pytest

from nose2_servercov.engine.config import load_config
from nose2_servercov.errors import ConfigError, ServeError
from nose2_servercov.remote.agent import is_loopback, parse_address, read_token
from nose2_servercov.remote.paths import explain_unmatched, suggest_paths_entry


def rcfile(tmp_path, body):
    path = tmp_path / ".apirc"
    path.write_text("[run]\nparallel = True\n\n[servercov]\n" + textwrap.dedent(body))
    return path


def test_remotes_make_the_command_optional(tmp_path):
    config = load_config(rcfile(tmp_path, """
        remotes = https://api-1:8765, https://api-2:8765/
            http://10.0.0.3:8765
        remote_stop = false
        """))
    assert config.command == []
    assert config.remotes == ("https://api-1:8765", "https://api-2:8765", "http://10.0.0.3:8765")
    assert config.remote_stop is False
    assert load_config(rcfile(tmp_path, "command = x\n")).remote_stop is True


def test_without_remotes_the_command_is_still_needed(tmp_path):
    with pytest.raises(ConfigError, match=r"\[servercov\] command: expected how to start"):
        load_config(rcfile(tmp_path, "remote_stop = true\n"))
    assert load_config(rcfile(tmp_path, "\n"), require_command=False).command == []


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("remotes", "api-1:8765", "agent URLs such as https://api-1:8765, comma- or line-separated"),
    ("remotes", "ftp://x:1", "agent URLs such as https://api-1:8765, comma- or line-separated"),
    ("remote_stop", "maybe", "true or false"),
])
def test_bad_remote_values_are_refused(tmp_path, key, value, expected):
    with pytest.raises(ConfigError) as caught:
        load_config(rcfile(tmp_path, f"command = x\n{key} = {value}\n"))
    assert str(caught.value) == (f"{tmp_path / '.apirc'}: [servercov] {key}: expected "
                                 f"{expected}, got {value!r}")


def test_control_addresses():
    assert parse_address("0.0.0.0:8765") == ("0.0.0.0", 8765)
    assert parse_address("[::1]:8765") == ("::1", 8765)
    for bad in ("8765", "host:", ":80", "host:0", "host:70000"):
        with pytest.raises(ServeError, match="expected HOST:PORT"):
            parse_address(bad)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    assert not is_loopback("api.example.com")


def test_token_from_file_or_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVERCOV_CONTROL_TOKEN", " from-env \n")
    assert read_token(None) == "from-env"
    (tmp_path / "token").write_text("from-file\n")
    assert read_token(str(tmp_path / "token")) == "from-file"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ServeError, match="the control token file is empty"):
        read_token(str(tmp_path / "empty"))
    monkeypatch.delenv("SERVERCOV_CONTROL_TOKEN")
    assert read_token(None) is None


def test_paths_advice_maps_the_folder_of_the_common_tail(tmp_path):
    (tmp_path / "src" / "shop" / "views").mkdir(parents=True)
    (tmp_path / "src" / "shop" / "views" / "cart.py").write_text("")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "cart.py").write_text("")
    # The whole checkout's tail matches: map its top folder.
    assert suggest_paths_entry("/app/src/shop/views/cart.py", tmp_path) == (
        "src = src/, /app/src/")
    # Only part of it matches: map the folder where the two trees meet.
    assert suggest_paths_entry("/srv/shop/views/cart.py", tmp_path) == (
        "shop = src/shop/, /srv/shop/")
    assert suggest_paths_entry("/app/nothing_like_it.py", tmp_path) is None
    assert suggest_paths_entry("C:\\build\\shop\\views\\cart.py", tmp_path) == (
        "shop = src/shop/, C:\\build\\shop\\")


def test_paths_advice_is_one_line(tmp_path):
    config = load_config(rcfile(tmp_path, "command = x\n"))
    (tmp_path / "app.py").write_text("")
    assert explain_unmatched(["/srv/app.py", "/srv/b.py"], config) == (
        "collected data names /srv/app.py (and 1 more), which matches no local file; add this "
        f"[paths] entry to {tmp_path / '.apirc'}: source = ./, /srv/")
    assert "\n" not in explain_unmatched(["/srv/zzz.py"], config)
