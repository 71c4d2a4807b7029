from django.http import Http404, JsonResponse

CATALOGUE = {1: "pen", 2: "ink"}


def health(request):
    return JsonResponse({"status": "ok"})


def item(request, number: int):
    if number not in CATALOGUE:
        raise Http404("no such item")
    return JsonResponse({"number": number, "name": CATALOGUE[number]})
