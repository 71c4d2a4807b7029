from django.urls import path

from items import views

urlpatterns = [
    path("health/", views.health),
    path("items/<int:number>/", views.item),
]
