"""Views whose every measured line depends only on the requests they get."""

import json

from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt


def health(request):
    return JsonResponse({"status": "ok"})


def item(request, number):
    if number % 2:  # noqa: SIM108 (two branches, on purpose)
        kind = "odd"
    else:
        kind = "even"
    if number > 100:
        raise Http404("no such item")
    return JsonResponse({"number": number, "kind": kind})


@csrf_exempt
def echo(request):
    try:
        payload = json.loads(request.body)
    except ValueError:
        return JsonResponse({"error": "not json"}, status=400)
    return JsonResponse(payload)


def once(request, name):
    if name == "a":
        return HttpResponse("a")
    if name == "b":
        return HttpResponse("b")
    return HttpResponse("other")


def never(request):
    return HttpResponse("never requested")
