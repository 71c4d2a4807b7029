"""pytest configuration: tests/views holds the sample API's nose2 view tests, not ours."""

collect_ignore = ["views", "functional/scenarios"]
