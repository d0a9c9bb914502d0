"""The optional DRF API (``pip install django-plugipay[drf]``); only this package imports DRF."""
