from django.urls import path

from logs.api.views import RequestLogList

app_name = "logs-api"

urlpatterns = [
    path("", RequestLogList.as_view(), name="list"),
]
