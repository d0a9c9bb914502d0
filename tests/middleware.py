"""Middleware a project may have: one that sends every anonymous request to the login page,
whatever the view says (as some third-party login middleware does)."""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login


class LoginEverywhereMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.user.is_authenticated and not request.path.startswith(settings.LOGIN_URL):
            return redirect_to_login(request.get_full_path())
        return self.get_response(request)


class InsecureRequestsMiddleware:
    """Make every request look like plain http, as behind a TLS proxy without
    SECURE_PROXY_SSL_HEADER (SecurityMiddleware then redirects it to https)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.META["wsgi.url_scheme"] = "http"
        request.META.pop("HTTPS", None)
        return self.get_response(request)
