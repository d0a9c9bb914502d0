from config.urls import urlpatterns as shop_urls
from django.urls import path

from benchmarks.baseline.views import baseline_webhook

urlpatterns = [path("baseline/webhook/", baseline_webhook), *shop_urls]
