"""The same routes as the servers scenario's Flask app."""

from django.urls import path

from webapp import views

urlpatterns = [
    path("health/", views.health),
    path("pid/", views.pid),
    path("slow/", views.slow),
    path("items/<int:number>/", views.item),
    path("echo/", views.echo),
    path("boom/", views.boom),
    path("once/<str:name>/", views.once),
    path("after/kill/", views.after_kill),
    path("never/", views.never),
]
