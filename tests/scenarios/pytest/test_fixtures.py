"""pytest tests of the basic scenario's app through the plugin's fixtures."""


def test_url_is_the_servers(servercov_url):
    assert servercov_url.startswith("http://127.0.0.1:")


def test_once_b_through_the_session_fixture(servercov_session):
    assert servercov_session.get("/once/b/").text == "b"
