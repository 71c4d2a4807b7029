from django.urls import path

from djapp import views

urlpatterns = [
    path("health/", views.health),
    path("items/<int:number>/", views.item),
    path("echo/", views.echo),
    path("once/<str:name>/", views.once),
    path("never/", views.never),
]
