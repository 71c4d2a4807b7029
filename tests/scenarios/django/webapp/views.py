"""Views whose every measured line depends only on the requests they get."""

from __future__ import annotations

import json
import os
import threading
import time

from django.http import Http404, HttpResponse, JsonResponse


def health(request):
    return JsonResponse({"status": "ok"})


def pid(request):
    return JsonResponse({"pid": os.getpid(), "thread": threading.get_ident()})


def slow(request):
    time.sleep(0.02)  # long enough that concurrent requests spread over the workers
    return HttpResponse("slow")


def item(request, number: int):
    if number % 2:  # noqa: SIM108 (two branches, on purpose)
        kind = "odd"
    else:
        kind = "even"
    if number > 100:
        raise Http404("no such item")
    return JsonResponse({"number": number, "kind": kind})


def echo(request):
    if request.method != "POST":
        return HttpResponse(status=405)
    try:
        payload = json.loads(request.body)
    except ValueError:
        return JsonResponse({"error": "not json"}, status=400)
    if "double" in payload:
        payload["double"] = payload["double"] * 2
    return JsonResponse(payload)


def boom(request):
    raise RuntimeError("a handler that fails: the server answers 500")


def once(request, name: str):
    if name == "a":
        return JsonResponse({"once": "a", "pid": os.getpid()})
    if name == "b":
        return JsonResponse({"once": "b", "pid": os.getpid()})
    if name == "c":
        return JsonResponse({"once": "c", "pid": os.getpid()})
    return JsonResponse({"once": name, "pid": os.getpid()})


def after_kill(request):
    return JsonResponse({"after": "kill", "pid": os.getpid()})


def never(request):
    return HttpResponse("never requested")
