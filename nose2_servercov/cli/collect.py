"""``servercov collect``: the data of remote agents, combined and reported here.

The agents are ``servercov serve --control`` elsewhere; the fetching and
combining is :mod:`nose2_servercov.remote.collector`'s.
"""

from __future__ import annotations

import argparse
import sys

from nose2_servercov.cli.entry import ERROR, FAIL_UNDER, say
from nose2_servercov.engine.config import find_rcfile, load_config


def collect(args: argparse.Namespace) -> int:
    """Run ``servercov collect``; return its exit status."""
    from nose2_servercov.remote import agent
    from nose2_servercov.remote import collector as remote

    config = load_config(find_rcfile(args.rcfile), require_command=False)
    urls = remote.agent_urls(args.urls, config)
    token = agent.read_token(args.control_token_file)
    remote.refuse_token_in_clear(urls, token=token, insecure=args.control_insecure)
    collected = remote.collect(config, urls, token=token, stop=args.stop, out=sys.stdout,
                               err=sys.stderr, ca_file=args.control_ca)
    if collected.failed:
        say(f"error: {collected.failures()}")
        return ERROR
    assert collected.result is not None
    return FAIL_UNDER if collected.result.failed_under else 0
